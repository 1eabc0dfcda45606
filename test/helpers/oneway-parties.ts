/**
 * One-way channel parties for tests: a provider (payee) and a device (payer), each with a messenger on
 * a shared transport, a software signer, a store, and the device wallet funded on a chain.
 */
import { Messenger, type MessengerOptions } from '../../src/node/messenger.js';
import { softwareIdentity, type NodeIdentity } from '../../src/session/identity.js';
import { SoftwareSigner } from '../../src/signer/software.js';
import type { ChainSource, OutPoint } from '../../src/chain/port.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Store } from '../../src/store/port.js';
import { InMemoryBroker } from '../../src/transport/memory.js';
import type { Transport } from '../../src/transport/port.js';
import { signNodeStatus, type ServiceOffer } from '../../src/wire/index.js';
import { DeviceWallet } from '../../src/wallet/device-wallet.js';
import { SimnetUtxoSource, type SimnetUtxoChain } from '../../src/wallet/utxo-source.js';
import { OnewayNode, type OnewayNodeOptions } from '../../src/channel/oneway/node.js';
import type { OnewayChannel } from '../../src/channel/oneway/channel.js';
import { p2wpkhOutput } from '../../src/onchain/script.js';
import { FAST_TIMINGS, until } from './session-nodes.js';
import type { BroadcastResult } from '../../src/chain/port.js';
import { Simnet } from '../../src/chain/simnet/index.js';
import { startMqttMessenger, type MqttMessengerOptions } from '../../src/transport/mqtt/node.js';

export const OFFER: ServiceOffer = {
  serviceId: 'hotspot',
  unit: 'MB',
  tariffMsatPerUnit: 1000n,
  creditWindowUnits: 100n,
  minCapacitySat: 10_000n,
  maxCapacitySat: 10_000_000n,
};

export interface ChainWithCoins extends ChainSource {
  faucet(script: Uint8Array, valueSat: bigint): Promise<OutPoint>;
  utxosForScript: SimnetUtxoChain['utxosForScript'];
  mine(count?: number): Promise<string[]>;
}

export interface Party {
  identity: NodeIdentity;
  signer: SoftwareSigner;
  store: Store;
  messenger: Messenger;
  node: OnewayNode;
  wallet: DeviceWallet;
}

export function seeded(byte: number): { identity: NodeIdentity; signer: SoftwareSigner } {
  return {
    identity: softwareIdentity(new Uint8Array(32).fill(byte)),
    signer: SoftwareSigner.fromSeed(new Uint8Array(32).fill(byte ^ 0x5a)),
  };
}

export function walletFor(signer: SoftwareSigner, chain: ChainWithCoins, store: Store): Promise<DeviceWallet> {
  return DeviceWallet.open({ signer, source: new SimnetUtxoSource(chain), chain, store });
}

/** Every coin the wallet's chain lists for it, whatever its state. */
export async function walletTotalSat(wallet: DeviceWallet): Promise<bigint> {
  const b = await wallet.balance();
  return b.spendableSat + b.unconfirmedSat + b.immatureSat + b.lockedSat;
}

export async function startParty(options: {
  seed: number;
  chain: ChainWithCoins;
  transport: (identity: NodeIdentity) => Transport;
  store?: Store;
  offers?: ServiceOffer[];
  node?: Partial<OnewayNodeOptions>;
  presence?: MessengerOptions['presence'];
}): Promise<Party> {
  const { identity, signer } = seeded(options.seed);
  const store = options.store ?? new MemoryStore();
  const messenger = await Messenger.start({
    identity,
    transport: options.transport(identity),
    session: FAST_TIMINGS,
    ...(options.presence !== undefined && { presence: options.presence }),
  });
  return withChannels(messenger, identity, signer, store, options);
}

/** The channel runtime on a started messenger (shared by the in-memory and MQTT parties). */
async function withChannels(
  messenger: Messenger,
  identity: NodeIdentity,
  signer: SoftwareSigner,
  store: Store,
  options: { chain: ChainWithCoins; offers?: ServiceOffer[]; node?: Partial<OnewayNodeOptions> },
): Promise<Party> {
  const wallet = await walletFor(signer, options.chain, store);
  const node = await OnewayNode.start({
    messenger,
    chain: options.chain,
    store,
    signer,
    wallet,
    ...(options.offers ? { offers: options.offers } : {}),
    payTimeoutMs: 20_000,
    ...options.node,
  });
  if (options.offers) await messenger.announce(options.offers);
  return { identity, signer, store, messenger, node, wallet };
}

export function memoryTransport(broker: InMemoryBroker, now = 1_800_000_000): (identity: NodeIdentity) => Transport {
  return (identity) => {
    const status = (s: 'online' | 'offline') => signNodeStatus({ nodeId: identity.publicKey, status: s, timestamp: now }, identity);
    return broker.transport(identity.nodeId, { onlineStatus: status('online'), offlineStatus: status('offline') });
  };
}

export async function fundWallet(chain: ChainWithCoins, party: { signer: SoftwareSigner }, valueSat: bigint): Promise<OutPoint> {
  const pubkey = await party.signer.getPublicKey({ family: 'wallet', index: 0 });
  const outpoint = await chain.faucet(p2wpkhOutput(pubkey), valueSat);
  await chain.mine(1);
  return outpoint;
}

/**
 * A provider (seed 1) and a device (seed 2) on a Simnet and an in-memory broker, both with `node`
 * options; the device opens a 200,000 sat channel (expiry in 100 blocks), it confirms, and 3,000,000 msat
 * are paid on it.
 */
export async function openPaidChannel(node: Partial<OnewayNodeOptions> = {}) {
  const chain = new Simnet();
  const broker = new InMemoryBroker();
  const provider = await startParty({ seed: 1, chain, transport: memoryTransport(broker), offers: [OFFER], node });
  const device = await startParty({ seed: 2, chain, transport: memoryTransport(broker), node });
  const channel = await openOnewayChannel(chain, provider, device);
  await channel.pay(3_000_000n);
  return { chain, broker, provider, device, channel };
}

/**
 * The device's wallet gets 1,000,000 sat; once the provider's announcement is in its directory it opens a
 * `capacitySat` channel (expiry in 100 blocks), and the funding confirms (one block on the Simnet).
 */
export async function openOnewayChannel(chain: Simnet, provider: Party, device: Party, capacitySat = 200_000n): Promise<OnewayChannel> {
  await fundWallet(chain, device, 1_000_000n);
  await until(() => device.messenger.directory().has(provider.messenger.nodeId), 'announcement');
  const opening = device.node.open(provider.messenger.nodeId, { capacitySat, expiryBlocks: 100 });
  await until(() => chain.mempool().length > 0, 'funding broadcast');
  await chain.mine(1);
  return opening;
}

export async function stopParty(party: Party): Promise<void> {
  await party.node.stop();
  await party.messenger.stop();
}

// ---- Over MQTT, and a chain that records what each party broadcast (test/oneway-mqtt.test.ts) ----

/** One broadcast by a party: the bytes, the tip when it was made, and what the chain answered. */
export interface BroadcastRecord {
  txid: string;
  tx: Uint8Array;
  tipHeight: number;
  result: BroadcastResult;
}

export interface RecordingChain extends ChainWithCoins {
  /** Every broadcast made through this view, in order. */
  readonly broadcasts: BroadcastRecord[];
}

/**
 * A view of `chain` for one party that logs its broadcasts. `beforeBroadcast` runs first, with the tip,
 * so a test can check what the party had stored at the moment it let a transaction go.
 */
export function recordingChain(
  chain: Simnet,
  beforeBroadcast?: (tx: Uint8Array, tipHeight: number) => void | Promise<void>,
): RecordingChain {
  const broadcasts: BroadcastRecord[] = [];
  return {
    broadcasts,
    tipHeight: () => chain.tipHeight(),
    async broadcast(tx) {
      const tipHeight = await chain.tipHeight();
      await beforeBroadcast?.(tx, tipHeight);
      const result = await chain.broadcast(tx);
      broadcasts.push({ txid: result.txid, tx: Uint8Array.from(tx), tipHeight, result });
      return result;
    },
    getTransaction: (txid) => chain.getTransaction(txid),
    getUtxo: (outpoint) => chain.getUtxo(outpoint),
    getSpend: (outpoint) => chain.getSpend(outpoint),
    estimateFeeratePerKw: (target) => chain.estimateFeeratePerKw(target),
    watchOutpoint: (outpoint) => chain.watchOutpoint(outpoint),
    subscribe: (listener) => chain.subscribe(listener),
    faucet: (script, valueSat) => chain.faucet(script, valueSat),
    utxosForScript: (script) => chain.utxosForScript(script),
    mine: (count) => chain.mine(count),
  };
}

/** Session timings for a real broker (as test/session-mqtt.test.ts): loopback, but not instant. */
export const MQTT_SESSION_TIMINGS = {
  reliability: { initialRtoMs: 300, maxRtoMs: 2000 },
  handshakeTimeoutMs: 500,
  connectTimeoutMs: 10_000,
} as const;

/** startParty, but on an MQTT broker at `url` through startMqttMessenger. */
export async function startMqttParty(options: {
  seed: number;
  chain: ChainWithCoins;
  url: string;
  protocolVersion?: 4 | 5;
  store?: Store;
  offers?: ServiceOffer[];
  node?: Partial<OnewayNodeOptions>;
  /** Session timings instead of MQTT_SESSION_TIMINGS (e.g. to let a session go stale quickly). */
  session?: MqttMessengerOptions['session'];
}): Promise<Party> {
  const { identity, signer } = seeded(options.seed);
  const store = options.store ?? new MemoryStore();
  const messenger = await startMqttMessenger({
    url: options.url,
    identity,
    protocolVersion: options.protocolVersion ?? 4,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    session: options.session ?? MQTT_SESSION_TIMINGS,
  });
  return withChannels(messenger, identity, signer, store, options);
}

/**
 * What every `trickle` command needs: the node's secret material in its data directory, the LMDB store,
 * the chain (simnet, bitcoind or Esplora: ./chain.ts), the device wallet, the MQTT messenger, the
 * one-way channel runtime and (for `trickle peer`) the revocable one on the same messenger, wired
 * together. Also the hooks the crash tests use (TRICKLE_CRASH_AT, TRICKLE_TRACE, TRICKLE_SESSION_RTO_MS),
 * which do nothing unless those variables are set.
 */
import { appendFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bytesToHex, hexToBytes } from '../bytes.js';
import { hmacSha256 } from '../crypto/hash.js';
import { isValidSecretKey } from '../crypto/secp256k1.js';
import { isLive as isLiveOneway, OnewayNode, type OnewayNodeOptions } from '../channel/oneway/node.js';
import type { OnewayRecord } from '../channel/oneway/state.js';
import { createPeer, type RsmcNode, type RsmcNodeOptions } from '../channel/rsmc/node.js';
import { isLive as isLiveRsmc } from '../channel/rsmc/machine.js';
import type { RsmcPolicy, RsmcRecord } from '../channel/rsmc/types.js';
import type { PayeeOffer } from '../channel/oneway/payee.js';
import type { Messenger, MessengerOptions } from '../node/messenger.js';
import type { WireMessage } from '../wire/index.js';
import { p2wpkhOutput } from '../onchain/script.js';
import { softwareIdentity, type NodeIdentity } from '../session/identity.js';
import { SoftwareSigner } from '../signer/software.js';
import type { Signer } from '../signer/port.js';
import { HidSigner } from '../signer/hid/signer.js';
import { SocketHidConnector } from '../signer/hid/transport.js';
import { TRICKLE_KEY_PRODUCT_ID, TRICKLE_KEY_VENDOR_ID } from '../signer/hid/ids.js';
import { LmdbStore } from '../store/lmdb.js';
import { startMqttMessenger } from '../transport/mqtt/node.js';
import { DeviceWallet, deviceWalletScripts } from '../wallet/device-wallet.js';
import { connectChain, type ChainChoice, type ChainConnection } from './chain.js';
import { jsonLine } from './common.js';

const encoder = new TextEncoder();

export interface NodeKeys {
  identity: NodeIdentity;
  signer: SoftwareSigner;
  walletScript: Uint8Array;
}

/** Create (mode 0600) or read the 32-byte seed in `<dataDir>/seed`; keys are derived from it. */
export async function loadKeys(dataDir: string, options: { create: boolean }): Promise<NodeKeys> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, 'seed');
  let seed: Uint8Array;
  try {
    const text = (await readFile(path, 'utf8')).trim();
    if (!/^[0-9a-f]{64}$/.test(text)) throw new Error(`${path} is not 64 hex characters`);
    seed = hexToBytes(text);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !options.create) throw error;
    seed = crypto.getRandomValues(new Uint8Array(32));
    await writeFile(path, `${bytesToHex(seed)}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(path, 0o600);
  }
  // Separate keys for the node identity and the channel signer, both from the one seed.
  let identitySecret = hmacSha256(seed, encoder.encode('trickle/node-identity'));
  for (let i = 0; !isValidSecretKey(identitySecret); i++) identitySecret = hmacSha256(seed, encoder.encode(`trickle/node-identity/${i}`));
  const signer = SoftwareSigner.fromSeed(hmacSha256(seed, encoder.encode('trickle/channel-signer')));
  const walletScript = p2wpkhOutput(await signer.getPublicKey({ family: 'wallet', index: 0 }));
  return { identity: softwareIdentity(identitySecret), signer, walletScript };
}

/**
 * Test hooks, unset in normal use (both runtimes, one-way and revocable: they look at the persist reason,
 * the message type and the committed record only):
 *  - TRICKLE_CRASH_AT="<persist reason>[:n]" kills this process with SIGKILL right after the n-th
 *    (default 1st) durable commit with that reason; "sent:<message type>[:n]" right after the n-th such
 *    message was handed to the broker (test/oneway-crash.test.ts, test/helpers/crash-harness.ts).
 *  - TRICKLE_TRACE=<file> appends one JSON line per durable commit, before any crash hook runs: the
 *    reason and the record's channel state (phase, payments, commitment numbers and txids, no keys or
 *    transactions). The crash harness checks against it what a restarted process loads, what it signed
 *    and what it broadcast. The write is synchronous, so a line survives a SIGKILL that follows it.
 */
export function crashHooksFromEnv(env: NodeJS.ProcessEnv = process.env): CrashHooks | undefined {
  const crash = crashAt(env['TRICKLE_CRASH_AT']);
  const trace = env['TRICKLE_TRACE'];
  if (!trace) return crash;
  return {
    afterPersist: (reason, record) => {
      appendFileSync(trace, `${jsonLine({ reason, ...tracedFields(record) })}\n`);
      crash?.afterPersist?.(reason, record);
    },
    ...(crash?.afterSend && { afterSend: crash.afterSend }),
  };
}

function crashAt(spec: string | undefined): CrashHooks | undefined {
  if (!spec) return undefined;
  const parts = spec.split(':');
  const sent = parts[0] === 'sent';
  const what = sent ? parts[1] : parts[0];
  const nth = Number(parts[sent ? 2 : 1] ?? '1');
  let seen = 0;
  const hit = (): void => {
    if (++seen === nth) process.kill(process.pid, 'SIGKILL');
  };
  return sent
    ? { afterSend: (message) => void (message.type === what && hit()) }
    : { afterPersist: (reason) => void (reason === what && hit()) };
}

/**
 * Test hook: TRICKLE_SESSION_RTO_MS="<initial>,<max>,<retransmits>[,<handshake>]" shortens the session
 * layer's retransmission schedule (default 1000, 30000, 6: a minute) after which an unanswered session
 * counts as dead and is handshaken anew, and the first wait for a handshake's answer (default 2000, then
 * doubling). A peer that was killed and restarted with nothing to resume never reconnects by itself, so
 * until then its messages vanish; the crash harness, which restarts processes hundreds of times, sets a
 * few seconds. Unset in normal use.
 */
export function sessionOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): MessengerOptions['session'] | undefined {
  const spec = env['TRICKLE_SESSION_RTO_MS'];
  if (!spec) return undefined;
  const values = spec.split(',').map(Number);
  const [initialRtoMs, maxRtoMs, maxRetransmits, handshakeTimeoutMs] = values;
  if ((values.length !== 3 && values.length !== 4) || !values.every((n) => Number.isSafeInteger(n) && n > 0)) {
    throw new RangeError('TRICKLE_SESSION_RTO_MS expected "<initial ms>,<max ms>,<retransmits>[,<handshake ms>]"');
  }
  return {
    reliability: { initialRtoMs: initialRtoMs!, maxRtoMs: maxRtoMs!, maxRetransmits: maxRetransmits! },
    ...(handshakeTimeoutMs !== undefined && { handshakeTimeoutMs }),
  };
}

/** The record fields TRICKLE_TRACE writes: one-way payments, revocable commitments, the closing spend. */
const TRACED_FIELDS = ['role', 'phase', 'tempChannelId', 'channelId', 'fundingOutpoint', 'payment', 'acked', 'localCommit', 'remoteCommit', 'remoteNext', 'sentCount', 'receivedCount', 'stale', 'outcome'];

function tracedFields(record: unknown): Record<string, unknown> {
  const r = record as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of TRACED_FIELDS) if (r[key] !== undefined) out[key] = r[key];
  const closing = r['closing'] as { kind: string; txid: string; commitmentNumber?: bigint } | undefined;
  if (closing) out['closing'] = { kind: closing.kind, txid: closing.txid, commitmentNumber: closing.commitmentNumber };
  return out;
}

/**
 * Release coin locks that no live channel owns. A funding's coins are locked (durably) before the channel
 * record that uses them is stored; a process killed in between left them locked for ever, and the next open
 * failed with INSUFFICIENT_FUNDS (found by the crash harness). Run at start, after both runtimes loaded
 * their records and before any new open. Locks of coins a closed channel spent go too: they are spent.
 * Returns the released outpoints ("txid:vout").
 */
export async function releaseOrphanedCoinLocks(
  wallet: Pick<DeviceWallet, 'lockedOutpoints' | 'release'>,
  records: { oneway: readonly Readonly<OnewayRecord>[]; rsmc: readonly Readonly<RsmcRecord>[] },
): Promise<string[]> {
  const owned = new Set<string>();
  for (const r of records.oneway) {
    if (r.role === 'payer' && isLiveOneway(r)) for (const i of r.fundingInputs ?? []) owned.add(`${i.outpoint.txid}:${i.outpoint.vout}`);
  }
  for (const r of records.rsmc) {
    if (isLiveRsmc(r)) for (const i of r.localInputs) owned.add(`${i.coin.outpoint.txid}:${i.coin.outpoint.vout}`);
  }
  const orphans = wallet.lockedOutpoints().filter((key) => !owned.has(key));
  if (orphans.length > 0) {
    await wallet.release(orphans.map((key) => ({ txid: key.slice(0, 64), vout: Number(key.slice(65)) })));
  }
  return orphans;
}

export interface CrashHooks {
  afterPersist?(reason: string, record: unknown): void;
  afterSend?(message: WireMessage): void;
}

export interface LocalNode {
  keys: NodeKeys;
  messenger: Messenger;
  chain: ChainConnection;
  store: LmdbStore;
  wallet: DeviceWallet;
  node: OnewayNode;
  /** The revocable-channel runtime, when LocalNodeOptions.rsmc asked for it. */
  rsmc: RsmcNode | undefined;
  close(): Promise<void>;
}

export interface LocalNodeOptions {
  dataDir: string;
  brokerUrl: string;
  chain: ChainChoice;
  offers?: PayeeOffer[];
  node?: Partial<OnewayNodeOptions>;
  log?: OnewayNodeOptions['log'];
  /** bitcoind: the first block to scan for the wallet's coins; stored on first use. */
  walletBirthHeight?: number;
  /** Confirmations before a channel outcome is final (default 1 on regtest-like chains, else 3). */
  closeDepth?: number;
  /** The provider's funding depth before payments (same defaults). */
  minDepth?: number;
  /** Fee rate when the chain has no estimate (default 2500 sat/kW on regtest-like chains, else none). */
  fallbackFeeratePerKw?: bigint;
  /** Progress while the chain's events or the wallet's block scan catch up. */
  onScanProgress?: (p: { height: number; tipHeight: number }) => void;
  /**
   * Also run the revocable (RSMC) channel runtime on the same messenger, store, signer and wallet. Its
   * funding depth and close depth follow minDepth and closeDepth unless `policy` says otherwise.
   */
  rsmc?: { policy?: Partial<RsmcPolicy>; node?: Partial<RsmcNodeOptions> };
  /** Where the channel keys live (default: the software signer from the data directory's seed). */
  signer?: SignerChoice;
}

/**
 * The channel signer: software (keys from the seed), the key's emulator on a local socket, or the
 * USB key (node-hid, hidraw). With a key, the wallet and node identity stay with the software signer.
 */
export type SignerChoice = { kind: 'software' } | { kind: 'emulator'; socket: string } | { kind: 'usb'; serial?: string };

async function openChannelSigner(choice: SignerChoice | undefined, keys: NodeKeys, log: LocalNodeOptions['log']): Promise<{ signer: Signer; close(): Promise<void> }> {
  if (!choice || choice.kind === 'software') return { signer: keys.signer, close: async () => undefined };
  const connector =
    choice.kind === 'emulator'
      ? new SocketHidConnector({ path: choice.socket })
      : new (await import('../signer/hid/node-hid.js')).NodeHidConnector({
          vendorId: TRICKLE_KEY_VENDOR_ID,
          productId: TRICKLE_KEY_PRODUCT_ID,
          ...(choice.serial !== undefined && { serialNumber: choice.serial }),
        });
  const signer = await HidSigner.connect({
    connector,
    hostSigner: keys.signer,
    ...(choice.kind === 'usb' && choice.serial !== undefined && { serial: choice.serial }),
    onStatus: (status) => {
      // A key that goes away pauses the channels until it is back; say so, once per change.
      if (status.kind === 'disconnected') log?.({ level: 'warn', msg: `signing key disconnected (${status.error}); waiting for it`, code: 'KEY_AWAY' });
      else if (status.kind === 'connected') log?.({ level: 'info', msg: `signing key ${status.serial} connected`, code: 'KEY_CONNECTED' });
      else log?.({ level: 'info', msg: 'confirm on the signing key', code: 'KEY_CONFIRM' });
    },
  });
  return { signer, close: () => signer.close() };
}

const BIRTH_KEY = 'wallet/birth-height';
/** Default look-back for a wallet without a birth height on a real network: two weeks of blocks. */
const DEFAULT_BIRTH_LOOKBACK = 2016;

/** The wallet's birth height: stored, else given, else a default; stored on first use. */
export async function walletBirthHeight(store: LmdbStore, chain: ChainConnection, given: number | undefined): Promise<number> {
  const stored = await store.get(BIRTH_KEY);
  if (stored) {
    const text = new TextDecoder().decode(stored);
    if (!/^\d{1,10}$/.test(text)) throw new Error(`stored ${BIRTH_KEY} is not a height`);
    return Number(text);
  }
  const height = given ?? (chain.network === 'regtest' ? 0 : Math.max(0, (await chain.chain.tipHeight()) - DEFAULT_BIRTH_LOOKBACK));
  await store.commit([{ key: BIRTH_KEY, value: encoder.encode(String(height)) }]);
  return height;
}

/** Open the data directory and bring the node online (chain, wallet, MQTT, channels resumed). */
export async function startLocalNode(options: LocalNodeOptions): Promise<LocalNode> {
  const keys = await loadKeys(options.dataDir, { create: true });
  const channelSigner = await openChannelSigner(options.signer, keys, options.log);
  const store = await LmdbStore.open({ path: join(options.dataDir, 'channels') });
  let chain: ChainConnection | undefined;
  let messenger: Messenger | undefined;
  try {
    // The adapters fall back only when told to; on regtest the wallet falls back (a fresh regtest
    // node has no fee estimates), and on real networks an open without an estimate fails.
    chain = await connectChain(options.chain, {
      ...(options.fallbackFeeratePerKw !== undefined && { fallbackFeeratePerKw: options.fallbackFeeratePerKw }),
      ...(options.onScanProgress && { onProgress: options.onScanProgress }),
      ...(options.log && { onError: (e: unknown) => options.log!({ level: 'warn', msg: `chain: ${(e as Error).message}`, code: (e as { code?: string }).code ?? 'CHAIN' }) }),
    });
    const onRegtest = chain.network === 'regtest';
    const { receive, change } = await deviceWalletScripts(keys.signer);
    const scripts = [receive, change];
    const birthHeight = await walletBirthHeight(store, chain, options.walletBirthHeight);
    const source = await chain.utxoSource({ store, scripts, birthHeight, ...(options.onScanProgress && { onProgress: options.onScanProgress }) });
    const walletFallback = options.fallbackFeeratePerKw ?? (onRegtest ? 2500n : undefined);
    const wallet = await DeviceWallet.open({
      signer: keys.signer,
      source,
      chain: chain.chain,
      store,
      ...(walletFallback !== undefined && { fallbackFeeratePerKw: walletFallback }),
    });
    const depth = onRegtest ? 1 : 3;
    const session = sessionOptionsFromEnv();
    // Inbound held until both channel runtimes listen (see MessengerOptions.holdInbound). Every command
    // knows its peer, so the node receives only the presence it asks for (a payer: its provider's offer)
    // rather than the whole board of a shared broker.
    messenger = await startMqttMessenger({
      url: options.brokerUrl,
      identity: keys.identity,
      holdInbound: true,
      presence: 'watched',
      ...(session && { session }),
    });
    const hooks = crashHooksFromEnv();
    const node = await OnewayNode.start({
      messenger,
      chain: chain.chain,
      store,
      signer: channelSigner.signer,
      wallet,
      closeDepth: options.closeDepth ?? depth,
      payeePolicy: { minimumDepth: options.minDepth ?? depth },
      ...(options.offers ? { offers: options.offers } : {}),
      ...(hooks ? { hooks } : {}),
      ...(options.log ? { log: options.log } : {}),
      ...options.node,
    });
    let rsmc: RsmcNode | undefined;
    try {
      rsmc = options.rsmc && await createPeer({
        messenger,
        chain: chain.chain,
        store,
        signer: channelSigner.signer,
        wallet,
        closeDepth: options.closeDepth ?? depth,
        policy: { minimumDepth: options.minDepth ?? depth, ...options.rsmc.policy },
        ...(hooks ? { hooks } : {}),
        ...(options.log ? { log: options.log } : {}),
        ...options.rsmc.node,
      });
    } catch (error) {
      await node.stop();
      throw error;
    }
    await releaseOrphanedCoinLocks(wallet, {
      oneway: node.channels().map((c) => c.snapshot()),
      rsmc: rsmc?.channels().map((c) => c.snapshot()) ?? [],
    });
    messenger.releaseInbound();
    if (options.offers) await messenger.announce(options.offers);
    const m = messenger;
    const c = chain;
    return {
      keys,
      messenger: m,
      chain: c,
      store,
      wallet,
      node,
      rsmc,
      async close() {
        await rsmc?.stop();
        await node.stop();
        await m.stop();
        c.close();
        await store.close();
        await channelSigner.close();
      },
    };
  } catch (error) {
    await messenger?.stop().catch(() => undefined);
    chain?.close();
    await store.close();
    await channelSigner.close();
    throw error;
  }
}

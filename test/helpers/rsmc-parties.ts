/**
 * Revocable-channel parties for runtime tests (test/rsmc-mqtt.test.ts, test/rsmc-crash.test.ts): A (the
 * opener) and B (the accepter), each with an identity, a SoftwareSigner, a store, a DeviceWallet funded on
 * one Simnet, a Messenger (in-memory broker or MQTT) and an RsmcNode with a test policy.
 *
 * A party outlives its processes. Its store (the "disk"), signer and identity are kept; each process gets
 * its own view of them through ports that all go dead at once when the process is killed: from then on
 * no call on the store, signer, chain, wallet or messenger settles, no chain event or message reaches the
 * old node, its timers are cancelled and its transport is stopped. That is what SIGKILL does to a process
 * as far as the rest of the world can tell, without one: restart() then starts a new process (new wallet,
 * messenger and node) on the same store.
 *
 * @example
 *   const pair = await startRsmcPair({ net: memoryNet() });
 *   const { a, b } = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
 *   pair.a.process.killAfterPersist('commitment-signed');
 *   void a.pay(1_000n);
 *   await pair.a.process.killed;
 *   await pair.a.restart();
 */
import { Simnet } from '../../src/chain/simnet/index.js';
import type { ChainEvent, ChainSource } from '../../src/chain/port.js';
import type { RsmcChannel } from '../../src/channel/rsmc/channel.js';
import { RsmcNode, type RsmcNodeOptions } from '../../src/channel/rsmc/node.js';
import { decodeRecord, recordKey } from '../../src/channel/rsmc/state.js';
import type { RsmcEvent, RsmcPersistReason, RsmcPolicy, RsmcRecord } from '../../src/channel/rsmc/types.js';
import { systemClock, type Clock } from '../../src/clock.js';
import { Messenger } from '../../src/node/messenger.js';
import { p2wpkhOutput } from '../../src/onchain/script.js';
import type { NodeIdentity } from '../../src/session/identity.js';
import type { Signer } from '../../src/signer/port.js';
import type { SoftwareSigner } from '../../src/signer/software.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Store } from '../../src/store/port.js';
import { InMemoryBroker } from '../../src/transport/memory.js';
import { startMqttMessenger, type MqttMessengerOptions } from '../../src/transport/mqtt/node.js';
import type { NodeId } from '../../src/transport/port.js';
import { DeviceWallet } from '../../src/wallet/device-wallet.js';
import { SimnetUtxoSource } from '../../src/wallet/utxo-source.js';
import type { WireMessage } from '../../src/wire/index.js';
import { memoryTransport, MQTT_SESSION_TIMINGS, recordingChain, seeded, type RecordingChain } from './oneway-parties.js';
import { FAST_TIMINGS, until } from './session-nodes.js';

/** BOLT 2 test terms: a short delay, one confirmation, and an accepter that adds up to 0.01 BTC when asked. */
export const RSMC_TEST_POLICY: Partial<RsmcPolicy> = { toSelfDelay: 6, minimumDepth: 1, maxContributionSat: 1_000_000n };

export type RsmcNet =
  | { kind: 'memory'; broker: InMemoryBroker }
  | { kind: 'mqtt'; url: string; protocolVersion?: 4 | 5; session?: MqttMessengerOptions['session'] };

export function memoryNet(): RsmcNet {
  return { kind: 'memory', broker: new InMemoryBroker() };
}

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/** One log line per event, whichever process of the party emitted it. */
export interface PartyEvent {
  process: number;
  channel: string;
  event: RsmcEvent;
}

/**
 * One process of a party. Its ports answer only while it lives; kill() (or an armed kill point) freezes
 * them all synchronously, so nothing the old node does afterwards reaches the store, the chain or the peer.
 */
export class PartyProcess {
  readonly number: number;
  #dead = false;
  #resolveKilled!: (point: string) => void;
  /** Resolves with a description of the kill point once the process is dead. */
  readonly killed: Promise<string>;
  readonly #timers = new Set<() => void>();
  readonly #onDeath: Array<() => void> = [];
  #persistKill: { reason: RsmcPersistReason; remaining: number } | undefined;
  #sendKill: { type: WireMessage['type']; remaining: number } | undefined;

  constructor(number: number) {
    this.number = number;
    this.killed = new Promise((resolve) => (this.#resolveKilled = resolve));
  }

  get dead(): boolean {
    return this.#dead;
  }

  /** SIGKILL now. */
  kill(point = 'kill()'): void {
    if (this.#dead) return;
    this.#dead = true;
    for (const cancel of this.#timers) cancel();
    this.#timers.clear();
    for (const f of this.#onDeath) f();
    this.#resolveKilled(point);
  }

  /** Die right after the `nth` durable commit for `reason` (before any effect that follows it). */
  killAfterPersist(reason: RsmcPersistReason, nth = 1): void {
    this.#persistKill = { reason, remaining: nth };
  }

  /** Die right after the node hands the `nth` message of `type` to the messenger: it goes out, nothing after it does. */
  killAfterSend(type: WireMessage['type'], nth = 1): void {
    this.#sendKill = { type, remaining: nth };
  }

  /** @internal The kill point's message: the transport stops once it is handed over. */
  lastSend: Promise<unknown> | undefined;

  disarm(): void {
    this.#persistKill = undefined;
    this.#sendKill = undefined;
  }

  /** @internal Called on death (stop the transport, unsubscribe). */
  onDeath(f: () => void): void {
    if (this.#dead) f();
    else this.#onDeath.push(f);
  }

  /** Run `call` only while the process lives; its answer settles only if the process still lives then. */
  gate<T>(call: () => Promise<T>): Promise<T> {
    if (this.#dead) return never();
    return call().then(
      (value) => (this.#dead ? never<T>() : value),
      (error: unknown) => (this.#dead ? never<T>() : Promise.reject(error)),
    );
  }

  /** @internal The node's afterPersist hook. */
  afterPersist(reason: RsmcPersistReason): void | Promise<void> {
    if (this.#dead) return never();
    const k = this.#persistKill;
    if (k && k.reason === reason && --k.remaining === 0) {
      this.#persistKill = undefined;
      this.kill(`after persisting '${reason}'`);
      return never();
    }
  }

  /** @internal Whether this message is the kill point (checked as the node hands it over). */
  sendIsKillPoint(message: WireMessage): boolean {
    const k = this.#sendKill;
    if (!k || k.type !== message.type || --k.remaining !== 0) return false;
    this.#sendKill = undefined;
    return true;
  }

  readonly clock: Clock = {
    now: () => systemClock.now(),
    setTimer: (delayMs, callback) => {
      if (this.#dead) return () => undefined;
      const cancel = systemClock.setTimer(delayMs, () => {
        this.#timers.delete(cancel);
        if (!this.#dead) callback();
      });
      this.#timers.add(cancel);
      return () => {
        this.#timers.delete(cancel);
        cancel();
      };
    },
  };
}

function gatedStore(store: Store, p: PartyProcess): Store {
  return {
    get: (key) => p.gate(() => store.get(key)),
    list: (prefix) => p.gate(() => store.list(prefix)),
    commit: (writes) => p.gate(() => store.commit(writes)),
    // The disk stays open across processes; closing it is the test's business.
    close: () => p.gate(() => Promise.resolve()),
  };
}

function gatedSigner(signer: Signer, p: PartyProcess): Signer {
  return {
    getPublicKey: (key) => p.gate(() => signer.getPublicKey(key)),
    signInput: (request) => p.gate(() => signer.signInput(request)),
    perCommitmentPoint: (seed, n) => p.gate(() => signer.perCommitmentPoint(seed, n)),
    revokeCommitment: (seed, n) => p.gate(() => signer.revokeCommitment(seed, n)),
  };
}

function gatedChain(chain: RecordingChain, p: PartyProcess): ChainSource & Pick<RecordingChain, 'utxosForScript'> {
  return {
    tipHeight: () => p.gate(() => chain.tipHeight()),
    broadcast: (tx) => p.gate(() => chain.broadcast(tx)),
    getTransaction: (txid) => p.gate(() => chain.getTransaction(txid)),
    getUtxo: (outpoint) => p.gate(() => chain.getUtxo(outpoint)),
    getSpend: (outpoint) => p.gate(() => chain.getSpend(outpoint)),
    estimateFeeratePerKw: (target) => p.gate(() => chain.estimateFeeratePerKw(target)),
    watchOutpoint: (outpoint) => {
      if (!p.dead) chain.watchOutpoint(outpoint);
    },
    subscribe: (listener) => {
      const unsubscribe = chain.subscribe((event: ChainEvent) => {
        if (!p.dead) listener(event);
      });
      p.onDeath(unsubscribe);
      return unsubscribe;
    },
    utxosForScript: (script) => (p.dead ? never() : chain.utxosForScript(script)),
  };
}

/**
 * The messenger as the node sees it: sends stop when the process dies (the kill point's own message goes
 * out first), and nothing received reaches a dead node.
 */
function gatedMessenger(messenger: Messenger, p: PartyProcess): Messenger {
  const send = (peer: NodeId, message: WireMessage): Promise<void> => {
    if (p.dead) return never();
    const sent = messenger.send(peer, message);
    if (p.sendIsKillPoint(message)) {
      // Frozen at once; the transport stops once this last frame is handed over.
      p.lastSend = sent.catch(() => undefined);
      p.kill(`after sending ${message.type}`);
      return never();
    }
    return p.gate(() => sent);
  };
  return new Proxy(messenger, {
    get(target, prop) {
      switch (prop) {
        case 'send':
          return send;
        case 'connect':
          return (peer: NodeId) => p.gate(() => target.connect(peer));
        case 'onMessage':
          return (handler: (peer: NodeId, message: WireMessage) => void) =>
            target.onMessage((peer, message) => {
              if (!p.dead) handler(peer, message);
            });
        case 'onSession':
          return (handler: Parameters<Messenger['onSession']>[0]) =>
            target.onSession((event) => {
              if (!p.dead) handler(event);
            });
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export interface RsmcPartyOptions {
  name: 'A' | 'B';
  seed: number;
  chain: Simnet;
  net: RsmcNet;
  node?: Partial<RsmcNodeOptions>;
}

export class RsmcParty {
  readonly name: 'A' | 'B';
  readonly identity: NodeIdentity;
  readonly signer: SoftwareSigner;
  /** The disk: every process of this party runs on it. */
  readonly store = new MemoryStore();
  /** This party's broadcasts, across its processes. */
  readonly chain: RecordingChain;
  readonly events: PartyEvent[] = [];
  readonly #net: RsmcNet;
  readonly #nodeOptions: Partial<RsmcNodeOptions>;
  #process!: PartyProcess;
  #node!: RsmcNode;
  #messenger!: Messenger;
  #wallet!: DeviceWallet;
  #processes = 0;

  constructor(options: RsmcPartyOptions) {
    this.name = options.name;
    const { identity, signer } = seeded(options.seed);
    this.identity = identity;
    this.signer = signer;
    this.chain = recordingChain(options.chain);
    this.#net = options.net;
    this.#nodeOptions = options.node ?? {};
  }

  get nodeId(): NodeId {
    return this.identity.nodeId;
  }
  get node(): RsmcNode {
    return this.#node;
  }
  get messenger(): Messenger {
    return this.#messenger;
  }
  get wallet(): DeviceWallet {
    return this.#wallet;
  }
  get process(): PartyProcess {
    return this.#process;
  }

  /** The channel `id` in the current process. */
  channel(id: string): RsmcChannel {
    const channel = this.#node.channel(id);
    if (!channel) throw new Error(`${this.name} has no channel ${id}`);
    return channel;
  }

  /** The record as stored on this party's disk (what a restart comes back with). */
  async stored(channel: RsmcChannel): Promise<RsmcRecord> {
    const bytes = await this.store.get(recordKey(channel.snapshot().tempChannelId));
    if (!bytes) throw new Error(`${this.name}: no stored record for ${channel.id}`);
    return decodeRecord(bytes);
  }

  /**
   * Start a process on the stored state (the first one, or after stop()/kill). `gapMs` waits between the
   * messenger's start and the node's (a real process loads other things there); `holdInbound` holds the
   * messenger's inbound frames until the node has started, as startLocalNode does.
   */
  async start(options: { gapMs?: number; holdInbound?: boolean } = {}): Promise<RsmcNode> {
    if (this.#process && !this.#process.dead) throw new Error(`${this.name}: a process is running`);
    const p = new PartyProcess(++this.#processes);
    this.#process = p;
    const store = gatedStore(this.store, p);
    const signer = gatedSigner(this.signer, p);
    const chain = gatedChain(this.chain, p);
    this.#wallet = await DeviceWallet.open({ signer, source: new SimnetUtxoSource(chain), chain, store });
    const messenger = await this.#startMessenger(options.holdInbound ?? false);
    if (options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
    p.onDeath(() => {
      const stop = (): void => void messenger.stop().catch(() => undefined);
      if (p.lastSend) void p.lastSend.then(stop);
      else stop();
    });
    this.#messenger = messenger;
    const { hooks, onEvent, ...rest } = this.#nodeOptions;
    this.#node = await RsmcNode.start({
      messenger: gatedMessenger(messenger, p),
      chain,
      store,
      signer,
      wallet: this.#wallet,
      clock: p.clock,
      policy: RSMC_TEST_POLICY,
      payTimeoutMs: 30_000,
      ...rest,
      hooks: {
        afterPersist: async (reason, record) => {
          await hooks?.afterPersist?.(reason, record);
          return p.afterPersist(reason);
        },
        ...(hooks?.afterSend ? { afterSend: hooks.afterSend } : {}),
      },
      // As an option, so what happens while the node starts (a close found on chain) is recorded too.
      onEvent: (channel, event) => {
        this.events.push({ process: p.number, channel: channel.id, event });
        onEvent?.(channel, event);
      },
    });
    messenger.releaseInbound();
    return this.#node;
  }

  /** A clean shutdown: the node finishes what it is doing, then the messenger stops. */
  async stop(): Promise<void> {
    const p = this.#process;
    if (!p || p.dead) return;
    await this.#node.stop();
    await this.#messenger.stop();
    p.kill('stop()');
  }

  /** Stop the current process (cleanly, unless it is dead already) and start a new one on the same disk. */
  async restart(): Promise<RsmcNode> {
    await this.stop();
    return this.start();
  }

  /** Events of one type seen by this party (every process). */
  eventsOf<T extends RsmcEvent['type']>(type: T): Array<Extract<RsmcEvent, { type: T }>> {
    return this.events.filter((e) => e.event.type === type).map((e) => e.event as Extract<RsmcEvent, { type: T }>);
  }

  async #startMessenger(holdInbound: boolean): Promise<Messenger> {
    const net = this.#net;
    if (net.kind === 'memory') {
      return Messenger.start({ identity: this.identity, transport: memoryTransport(net.broker)(this.identity), session: FAST_TIMINGS, holdInbound });
    }
    return startMqttMessenger({
      holdInbound,
      url: net.url,
      identity: this.identity,
      protocolVersion: net.protocolVersion ?? 4,
      reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
      session: net.session ?? MQTT_SESSION_TIMINGS,
    });
  }
}

export interface RsmcPair {
  chain: Simnet;
  a: RsmcParty;
  b: RsmcParty;
  /** Mine `count` blocks one at a time, letting both nodes handle each before the next. */
  mine(count?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Time for both nodes to act on what just happened on the chain (no network involved). */
export function settle(ms = 15): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A (seed 0xa1) and B (seed 0xb2), both wallets funded with `fundSat`, both nodes started. */
export async function startRsmcPair(options: {
  net: RsmcNet;
  chain?: Simnet;
  fundSat?: bigint;
  nodeA?: Partial<RsmcNodeOptions>;
  nodeB?: Partial<RsmcNodeOptions>;
}): Promise<RsmcPair> {
  const chain = options.chain ?? new Simnet();
  const a = new RsmcParty({ name: 'A', seed: 0xa1, chain, net: options.net, ...(options.nodeA ? { node: options.nodeA } : {}) });
  const b = new RsmcParty({ name: 'B', seed: 0xb2, chain, net: options.net, ...(options.nodeB ? { node: options.nodeB } : {}) });
  for (const party of [a, b]) {
    const pubkey = await party.signer.getPublicKey({ family: 'wallet', index: 0 });
    await chain.faucet(p2wpkhOutput(pubkey), options.fundSat ?? 1_000_000n);
  }
  await a.start();
  await b.start();
  return {
    chain,
    a,
    b,
    async mine(count = 1) {
      for (let i = 0; i < count; i++) {
        await chain.mine(1);
        await settle();
      }
    },
    async stop() {
      for (const party of [a, b]) await party.stop();
    },
  };
}

/**
 * A opens to B (dual-funded when remoteSat > 0); the funding is mined as soon as it is broadcast.
 * Resolves with both ends once both are open.
 */
export async function openChannel(
  pair: RsmcPair,
  params: { localSat: bigint; remoteSat?: bigint; pushMsat?: bigint },
): Promise<{ a: RsmcChannel; b: RsmcChannel }> {
  const { chain } = pair;
  const opening = pair.a.node.openRsmc(pair.b.nodeId, params);
  let failed: unknown;
  opening.catch((error: unknown) => (failed = error));
  await until(() => chain.mempool().length > 0 || failed !== undefined, 'the funding broadcast');
  if (failed) throw failed;
  await pair.mine(1);
  const a = await opening;
  await until(() => pair.b.node.channel(a.id)?.phase === 'open', 'B open');
  return { a, b: pair.b.channel(a.id) };
}

/** Both sides' records once every update is committed on both sides and the session is in sync. */
export function quiescent(x: RsmcChannel, y: RsmcChannel): boolean {
  const r = x.snapshot();
  const s = y.snapshot();
  const idle = (t: Readonly<RsmcRecord>): boolean =>
    t.phase === 'open' &&
    t.reestablishSent &&
    t.reestablishReceived &&
    t.remoteNext === undefined &&
    t.localChanges.proposed.length + t.localChanges.signed.length + t.localChanges.acked.length === 0 &&
    t.remoteChanges.proposed.length + t.remoteChanges.signed.length + t.remoteChanges.acked.length === 0;
  return (
    idle(r) &&
    idle(s) &&
    r.localCommit!.number === s.remoteCommit!.number &&
    s.localCommit!.number === r.remoteCommit!.number &&
    r.localCommit!.txid === s.remoteCommit!.txid &&
    s.localCommit!.txid === r.remoteCommit!.txid
  );
}

export async function untilQuiescent(x: RsmcChannel, y: RsmcChannel, what = 'both sides in sync', timeoutMs = 20_000): Promise<void> {
  await until(() => quiescent(x, y), what, timeoutMs);
}

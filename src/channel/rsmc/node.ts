/**
 * The revocable (RSMC) channel runtime: it feeds the pure machine (./machine.ts) with peer messages, chain
 * events and commands, and executes its effects in order through the ports — Store (a commit is durable
 * before the next effect runs: persist before you speak), Messenger, Signer, ChainSource and FundingWallet.
 * Each channel has its own queue, so its inputs are applied one at a time; the answer to an effect that
 * asks for something (a signature, a secret, coins, a broadcast result) is fed back within the same task.
 *
 * A failed commit restores the last durable record and stops the effect list: nothing that depends on
 * the unstored state leaves the process.
 *
 * Restart and reconnect (BOLT 2 channel_reestablish): on start every stored channel is loaded, every live
 * one gets `disconnected` (unsigned updates are dropped), its funding output and pending outputs are
 * watched and checked on chain, and the runtime connects to its peer; each new session with a peer feeds
 * `connected` (after `disconnected` when the session replaced one or the peer's channels came from disk).
 *
 * Key indexes: each channel takes one index, `keyIndex`, in the families funding, revocation, payment,
 * delayed, htlc and commitment (the shachain seed). RSMC channels use indexes from
 * {@link RSMC_KEY_INDEX_BASE} (1,000,000) up, one past the largest stored; the one-way runtime counts its
 * funding keys from 0 and stays below it, so both can share one signer.
 *
 * The node may share its Messenger with a one-way node: it handles only RSMC message types (and errors or
 * warnings about its own channels) and never answers anything else.
 *
 * @example
 *   const node = await createPeer({ messenger, chain, store, signer, wallet });
 *   const channel = await node.openRsmc(peerId, { localSat: 200_000n });
 *   await channel.pay(1_000_000n);                       // resolves once irrevocably committed
 *   const outcome = await channel.close();               // cooperative close, confirmed on chain
 */
import { Transaction } from 'bitcoinjs-lib';
import { bytesToHex, equalBytes } from '../../bytes.js';
import type { ChainEvent, ChainSource, OutPoint, SpendInfo, UtxoStatus } from '../../chain/port.js';
import { systemClock, type Clock } from '../../clock.js';
import { p2wpkhOutput, p2wpkhScriptCode } from '../../onchain/script.js';
import { hashToTxid, signInput } from '../../onchain/tx.js';
import type { Messenger } from '../../node/messenger.js';
import type { SessionEvent } from '../../session/manager.js';
import type { KeyLocator, SignContext, Signer } from '../../signer/port.js';
import { commitmentIndex, PerCommitmentSecretStore } from '../../onchain/rsmc/shachain.js';
import type { Store } from '../../store/port.js';
import type { NodeId, Unsubscribe } from '../../transport/port.js';
import type { OpenChannelMsg, WireMessage } from '../../wire/index.js';
import type { FundingWallet } from '../../wallet/device-wallet.js';
import { RsmcChannel } from './channel.js';
import { fundingScriptOf, localCommitment, remoteConfig, withFundingWitness } from './commitments.js';
import { RSMC_WIRE_CODES, RsmcError, type RsmcErrorCode } from './errors.js';
import { abandonableOpen, accepterStart, DEFAULT_RSMC_POLICY, isLive, openerStart, rsmcStep } from './machine.js';
import { buildResolution, exportRevokedState, type WatchtowerEntry } from './onchain.js';
import { decodeRecord, encodeRecord, RECORD_PREFIX, recordKey } from './state.js';
import type {
  Basepoints,
  RemoteCommit,
  ResolutionTx,
  RsmcBroadcastPurpose,
  RsmcContext,
  RsmcEffect,
  RsmcEvent,
  RsmcInput,
  RsmcPersistReason,
  RsmcPolicy,
  RsmcRecord,
} from './types.js';

/** First key index of RSMC channels; one-way channels use indexes below it (see the module doc). */
export const RSMC_KEY_INDEX_BASE = 1_000_000;

export interface RsmcHooks {
  /** After a record is durably committed (crash tests kill the process here). */
  afterPersist?(reason: RsmcPersistReason, record: RsmcRecord): void | Promise<void>;
  /** After a message was handed to the session layer (and, over MQTT, acknowledged by the broker). */
  afterSend?(message: WireMessage): void;
}

/** Log entries carry codes, never secrets. */
export interface RsmcLogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  channel?: string;
  code?: string;
}

export interface RsmcNodeOptions {
  messenger: Messenger;
  chain: ChainSource;
  store: Store;
  signer: Signer;
  /** Needed to open channels, and to add funds to a peer's dual-funded open. */
  wallet?: FundingWallet;
  policy?: Partial<RsmcPolicy>;
  /** Where our share goes (sweeps, cooperative close). Default: the wallet's payout script, else P2WPKH of key wallet/0. */
  payoutScript?: Uint8Array;
  clock?: Clock;
  /** How long pay() waits for the payment to be irrevocably committed (default 60 s). */
  payTimeoutMs?: number;
  /**
   * How long an open may stay abandonable (no funding our side could broadcast or sign) before it is
   * abandoned, our coins released and the peer told (default 10 min; counted again from a restart).
   * A peer that restarts within it resumes the open; one that never comes back no longer holds our coins.
   */
  openTimeoutMs?: number;
  /**
   * Confirmations a spend of the funding output (or of an output being swept) needs before the channel
   * records it as confirmed (default 1). Spends are reported to the channel as soon as they are seen in
   * the mempool; a reorganisation shallower than this cannot undo a recorded confirmation. Use 1 on
   * simnet and regtest, 3 to 6 on real networks.
   */
  closeDepth?: number;
  hooks?: RsmcHooks;
  log?: (entry: RsmcLogEntry) => void;
  /**
   * A listener registered before stored channels load, so it also hears what happens while the node
   * starts (a close confirmed while it was away, a penalty swept); see onEvent.
   */
  onEvent?: (channel: RsmcChannel, event: RsmcEvent) => void;
  /**
   * Called with a signed penalty each time the peer revokes a commitment, for a watchtower to hold
   * (outside the channel's queue; failures are logged).
   */
  watchtower?: (entry: WatchtowerEntry) => void | Promise<void>;
  /** Fee rate of sweeps and penalties. Default: the chain's 6-block estimate at the time, else the channel's rate. */
  sweepFeeratePerKw?: bigint;
}

export interface RsmcOpenParams {
  /** What we put into the channel. */
  localSat: bigint;
  /** Dual funding: ask the peer to add this much (it may add less, down to nothing). */
  remoteSat?: bigint;
  /** Given to the peer at open (BOLT 2 push_msat). */
  pushMsat?: bigint;
}

/** One channel's state in the runtime: the record, its last durable version, its input queue and handle. */
export interface RsmcChannelSlot {
  record: RsmcRecord;
  durable: RsmcRecord | undefined;
  queue: Promise<unknown>;
  handle: RsmcChannel;
}

/** Messages routed by temporary channel id (the channel id is not known to both sides yet). */
const BY_TEMP_ID = new Set(['accept_channel', 'funding_contribution', 'funding_created']);
/** Messages routed by channel id. */
const BY_CHANNEL_ID = new Set([
  'funding_signed',
  'funding_tx_signatures',
  'channel_ready',
  'update_transfer',
  'commitment_signed',
  'revoke_and_ack',
  'channel_reestablish',
  'shutdown',
  'closing_signed',
]);

function randomTempId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

function commitmentSeed(record: RsmcRecord): KeyLocator {
  return { family: 'commitment', index: record.keyIndex };
}

/** The largest pay() reference stored in a record's changes (0 if none). */
function maxRef(record: RsmcRecord): number {
  let max = 0;
  for (const list of [record.localChanges.proposed, record.localChanges.signed, record.localChanges.acked]) {
    for (const change of list) if (change.ref !== undefined && change.ref > max) max = change.ref;
  }
  return max;
}

/** Error text fits the wire's limit (256 bytes) whatever the machine wrote. */
function wireText(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

export class RsmcNode {
  readonly nodeId: NodeId;
  readonly #o: RsmcNodeOptions;
  readonly #policy: RsmcPolicy;
  readonly #clock: Clock;
  /** By temporary channel id (hex): every channel. */
  readonly #slots = new Map<string, RsmcChannelSlot>();
  /** By channel id (hex), once known. */
  readonly #byChannelId = new Map<string, RsmcChannelSlot>();
  /** Watched outpoints (funding outputs and outputs being swept). */
  readonly #byOutpoint = new Map<string, RsmcChannelSlot>();
  /** Confirmed spends of watched outpoints not yet at closeDepth. */
  readonly #pendingSpends = new Map<string, { outpoint: OutPoint; spend: SpendInfo }>();
  /** What was last fed to a channel about each watched outpoint (height undefined: its mempool sighting). */
  readonly #fedSpends = new Map<string, SpendInfo>();
  /** Channels loaded from disk whose peer has not had a session since. */
  readonly #restoredSlots = new Set<RsmcChannelSlot>();
  /** Cancels the open timer of each channel whose open can still be abandoned (see #syncOpenTimer). */
  readonly #openTimers = new Map<RsmcChannelSlot, () => void>();
  readonly #listeners = new Set<(channel: RsmcChannel, event: RsmcEvent) => void>();
  readonly #unsubscribe: Unsubscribe[] = [];
  /** Channels whose terms a validating signer has been given in this process. */
  readonly #setUp = new Set<number>();
  /** The latest of our commitments a validating signer has checked, per channel (this process). */
  readonly #validated = new Map<number, bigint>();
  #nodeQueue: Promise<unknown> = Promise.resolve();
  #nextKeyIndex = RSMC_KEY_INDEX_BASE;
  #nextRef = 1;
  #tip = 0;
  #stopped = false;

  private constructor(options: RsmcNodeOptions) {
    this.#o = options;
    this.nodeId = options.messenger.nodeId;
    this.#policy = { ...DEFAULT_RSMC_POLICY, ...options.policy };
    this.#clock = options.clock ?? systemClock;
    const closeDepth = options.closeDepth ?? 1;
    if (!Number.isSafeInteger(closeDepth) || closeDepth < 1) throw new RangeError('"closeDepth" expected an integer >= 1');
    if (options.payTimeoutMs !== undefined && !(options.payTimeoutMs > 0)) throw new RangeError('"payTimeoutMs" expected a positive number');
    if (options.openTimeoutMs !== undefined && !(Number.isSafeInteger(options.openTimeoutMs) && options.openTimeoutMs > 0)) {
      throw new RangeError('"openTimeoutMs" expected a positive integer');
    }
    if (options.sweepFeeratePerKw !== undefined && (typeof options.sweepFeeratePerKw !== 'bigint' || options.sweepFeeratePerKw <= 0n)) {
      throw new RangeError('"sweepFeeratePerKw" expected a positive bigint');
    }
    if (options.onEvent) this.#listeners.add(options.onEvent);
  }

  /** Load stored channels, subscribe to peers and chain, and resume every live channel. */
  static async start(options: RsmcNodeOptions): Promise<RsmcNode> {
    const node = new RsmcNode(options);
    await node.#load();
    return node;
  }

  get clock(): Clock {
    return this.#clock;
  }

  get payTimeoutMs(): number {
    return this.#o.payTimeoutMs ?? 60_000;
  }

  get openTimeoutMs(): number {
    return this.#o.openTimeoutMs ?? 600_000;
  }

  get tipHeight(): number {
    return this.#tip;
  }

  get policy(): Readonly<RsmcPolicy> {
    return this.#policy;
  }

  channels(): RsmcChannel[] {
    return [...this.#slots.values()].map((s) => s.handle);
  }

  /** By channel id or temporary id (hex). */
  channel(id: string): RsmcChannel | undefined {
    return (this.#byChannelId.get(id) ?? this.#slots.get(id))?.handle;
  }

  /** Every channel event (phases, payments, revocations, rejections, failures, closes). */
  onEvent(listener: (channel: RsmcChannel, event: RsmcEvent) => void): Unsubscribe {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Open a channel to `peer` with `localSat` of ours (and, dual-funded, up to `remoteSat` of the peer's);
   * resolves once it is open (funding at depth, channel_ready both ways), rejects if the open fails.
   */
  async openRsmc(peer: NodeId, params: RsmcOpenParams): Promise<RsmcChannel> {
    const wallet = this.#o.wallet;
    if (!wallet) throw new TypeError('opening a channel needs a wallet');
    if (typeof params.localSat !== 'bigint' || params.localSat <= 0n) throw new RangeError('"localSat" expected a positive bigint');
    const remoteSat = params.remoteSat ?? 0n;
    const pushMsat = params.pushMsat ?? 0n;
    if (typeof remoteSat !== 'bigint' || remoteSat < 0n) throw new RangeError('"remoteSat" expected a non-negative bigint');
    if (typeof pushMsat !== 'bigint' || pushMsat < 0n) throw new RangeError('"pushMsat" expected a non-negative bigint');
    if (this.#stopped) throw new RsmcError('STOPPED', 'node stopped');
    const { chain } = this.#o;
    const slot = await this.#serial(async () => {
      this.#tip = Math.max(this.#tip, await chain.tipHeight());
      // The wallet's rate (the chain's estimate within its floor and ceiling) if it has one.
      const feeratePerKw = wallet.fundingFeeratePerKw ? await wallet.fundingFeeratePerKw() : await chain.estimateFeeratePerKw(6);
      let tempChannelId = randomTempId();
      while (this.#slots.has(bytesToHex(tempChannelId))) tempChannelId = randomTempId();
      const keyIndex = this.#nextKeyIndex++;
      const { basepoints, firstPoint, secondPoint } = await this.#channelKeys(keyIndex);
      const step = openerStart(
        {
          peer,
          tempChannelId,
          keyIndex,
          basepoints,
          firstPoint,
          secondPoint,
          fundingSat: params.localSat,
          requestedRemoteSat: remoteSat,
          pushMsat,
          feeratePerKw,
          payoutScript: await this.#payoutScript(),
        },
        this.#policy,
      );
      const slot = this.#addSlot(step.record, undefined);
      await this.#enqueue(slot, () => this.#execute(slot, step.effects));
      return slot;
    });
    return slot.handle.waitUntilOpen();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const u of this.#unsubscribe) u();
    for (const cancel of this.#openTimers.values()) cancel();
    this.#openTimers.clear();
    await Promise.allSettled([...this.#slots.values()].map((s) => s.queue));
    for (const slot of this.#slots.values()) slot.handle.shutdown(new RsmcError('STOPPED', 'node stopped'));
  }

  // ---- used by RsmcChannel ----

  /** Apply a command to a channel through its queue; RsmcErrors thrown by the machine propagate. */
  command(slot: RsmcChannelSlot, input: RsmcInput): Promise<void> {
    if (this.#stopped) return Promise.reject(new RsmcError('STOPPED', 'node stopped'));
    return this.#enqueue(slot, () => this.#apply(slot, input));
  }

  /** A pay() reference no stored change carries. */
  nextRef(): number {
    return this.#nextRef++;
  }

  /** Our current commitment with both signatures, built in the channel's queue (see RsmcChannel.signedLocalCommitment). */
  signedLocalCommitment(slot: RsmcChannelSlot): Promise<Uint8Array> {
    if (this.#stopped) return Promise.reject(new RsmcError('STOPPED', 'node stopped'));
    return this.#enqueue(slot, async () => Uint8Array.from((await this.#signedCommitment(slot.record)).toBuffer()));
  }

  // ---- loading and subscriptions ----

  async #load(): Promise<void> {
    const { store, chain, messenger, signer } = this.#o;
    this.#tip = await chain.tipHeight();
    for (const entry of await store.list(RECORD_PREFIX)) {
      let record: RsmcRecord;
      try {
        record = decodeRecord(entry.value);
      } catch (error) {
        // A corrupt record is reported, never guessed at; the others still load.
        this.#log('error', `skipping stored channel ${entry.key}: ${(error as Error).message}`, undefined, 'CORRUPT_RECORD');
        continue;
      }
      this.#nextKeyIndex = Math.max(this.#nextKeyIndex, record.keyIndex + 1);
      this.#nextRef = Math.max(this.#nextRef, maxRef(record) + 1);
      if (isLive(record)) {
        // In memory only: the signer is the source of our points.
        if (record.localCommit) record = { ...record, localNextPoint: await signer.perCommitmentPoint(commitmentSeed(record), record.localCommit.number + 1n) };
        if (record.localInputs.length > 0 && !record.fundingBroadcast) {
          await this.#o.wallet?.reserve(record.localInputs.map((i) => i.coin.outpoint));
        }
      }
      const slot = this.#addSlot(record, record);
      if (isLive(record)) this.#restoredSlots.add(slot);
    }
    this.#unsubscribe.push(
      messenger.onMessage((peer, message) => this.#onMessage(peer, message)),
      messenger.onSession((event) => this.#onSession(event)),
      chain.subscribe((event) => this.#onChainEvent(event)),
    );
    // First of all (queued before any await, so before any message): the session each record was
    // written in is gone.
    for (const slot of this.#restoredSlots) void this.#enqueue(slot, () => this.#disconnectOnLoad(slot));
    for (const slot of this.#slots.values()) {
      if (!isLive(slot.record)) continue;
      const watched = [...(slot.record.fundingOutpoint ? [slot.record.fundingOutpoint] : []), ...(slot.record.closing?.pending.map((p) => p.outpoint) ?? [])];
      for (const outpoint of watched) {
        this.#watch(slot, outpoint);
        try {
          // Spent while we were away? The chain is the truth.
          const spend = await chain.getSpend(outpoint);
          if (spend) this.#onSpent(outpoint, spend);
        } catch (error) {
          this.#log('warn', `could not check ${outpointKey(outpoint)} on chain: ${(error as Error).message}`, slot);
        }
      }
      void this.#enqueue(slot, () => this.#apply(slot, { kind: 'block', height: this.#tip }));
    }
    for (const peer of new Set([...this.#restoredSlots].map((s) => s.record.peer))) {
      // Bring the session up so both sides reestablish (#onSession); an absent peer is fine.
      messenger.connect(peer).catch(() => undefined);
    }
  }

  /**
   * `disconnected` for a record just read from disk. Unless the machine asks to store the result, the
   * record it returns becomes the restore point of a failed commit: it is what the stored record means
   * after a restart (unsigned updates dropped, reestablish flags reset).
   */
  async #disconnectOnLoad(slot: RsmcChannelSlot): Promise<void> {
    const step = rsmcStep(slot.record, { kind: 'disconnected' }, this.#ctx());
    slot.record = step.record;
    if (!step.effects.some((e) => e.kind === 'persist')) slot.durable = step.record;
    this.#index(slot);
    await this.#execute(slot, step.effects);
  }

  /** `durable`: the record as last committed; undefined for a new channel not stored yet. */
  #addSlot(record: RsmcRecord, durable: RsmcRecord | undefined): RsmcChannelSlot {
    const slot: RsmcChannelSlot = { record, durable, queue: Promise.resolve(), handle: undefined as unknown as RsmcChannel };
    slot.handle = new RsmcChannel(this, slot);
    this.#slots.set(bytesToHex(record.tempChannelId), slot);
    this.#index(slot);
    this.#syncOpenTimer(slot);
    return slot;
  }

  /**
   * Keep a timer on each open that can still be abandoned (abandonableOpen): armed when the channel
   * appears (opened, accepted or loaded), cancelled once the open gets past that point. When it fires,
   * the machine abandons the open if it still can; so a peer that vanishes mid-open does not hold our
   * coins for ever. Runs after every task of the channel's queue.
   */
  #syncOpenTimer(slot: RsmcChannelSlot): void {
    // Cheap checks first: this runs after every task, payments included. A forgotten slot has no timer.
    const pending = !this.#stopped && isLive(slot.record) && abandonableOpen(slot.record) && this.#slots.get(bytesToHex(slot.record.tempChannelId)) === slot;
    const cancel = this.#openTimers.get(slot);
    if (pending && !cancel) {
      const afterMs = this.openTimeoutMs;
      this.#openTimers.set(slot, this.#clock.setTimer(afterMs, () => {
        this.#openTimers.delete(slot);
        if (this.#stopped) return;
        this.#log('warn', `open timeout: no progress for ${Math.round(afterMs / 1000)} s`, slot, 'TIMEOUT');
        this.#enqueue(slot, () => this.#apply(slot, { kind: 'open-timeout', afterMs })).catch(() => undefined);
      }));
    } else if (!pending && cancel) {
      cancel();
      this.#openTimers.delete(slot);
    }
  }

  #index(slot: RsmcChannelSlot): void {
    if (slot.record.channelId) this.#byChannelId.set(bytesToHex(slot.record.channelId), slot);
  }

  #forget(slot: RsmcChannelSlot): void {
    this.#slots.delete(bytesToHex(slot.record.tempChannelId));
    if (slot.record.channelId) this.#byChannelId.delete(bytesToHex(slot.record.channelId));
    this.#syncOpenTimer(slot);
  }

  #watch(slot: RsmcChannelSlot, outpoint: OutPoint): void {
    this.#byOutpoint.set(outpointKey(outpoint), slot);
    this.#o.chain.watchOutpoint(outpoint);
  }

  /** Feed a spend of `outpoint` that happened before it was watched (none: the watch reports later ones). */
  async #checkSpend(slot: RsmcChannelSlot, outpoint: OutPoint): Promise<void> {
    try {
      const spend = await this.#o.chain.getSpend(outpoint);
      if (spend && !this.#stopped) this.#onSpent(outpoint, spend);
    } catch (error) {
      this.#log('warn', `could not check ${outpointKey(outpoint)} on chain: ${(error as Error).message}`, slot);
    }
  }

  #onSession(event: SessionEvent): void {
    if (this.#stopped) return;
    for (const slot of this.#slots.values()) {
      if (slot.record.peer !== event.peer || !isLive(slot.record)) continue;
      // A replaced session may have lost messages both ways; a restored channel's session is gone anyway.
      // (Per channel: one opened since the restart, before this session, has lost nothing.)
      const restored = this.#restoredSlots.delete(slot);
      if (event.replaced || restored) void this.#enqueue(slot, () => this.#apply(slot, { kind: 'disconnected' }));
      void this.#enqueue(slot, () => this.#apply(slot, { kind: 'connected' }));
    }
  }

  // ---- chain ----

  #onChainEvent(event: ChainEvent): void {
    if (this.#stopped) return;
    switch (event.type) {
      case 'block': {
        this.#tip = event.height;
        for (const { outpoint, spend } of [...this.#pendingSpends.values()]) this.#onSpent(outpoint, spend);
        for (const slot of this.#slots.values()) {
          if (isLive(slot.record)) void this.#enqueue(slot, () => this.#apply(slot, { kind: 'block', height: event.height }));
        }
        return;
      }
      case 'reorg': {
        // Confirmations above the fork are gone: forget them and let the chain report them again.
        this.#tip = event.forkHeight;
        for (const [key, { spend }] of [...this.#pendingSpends]) {
          if (spend.blockHeight! > event.forkHeight) this.#pendingSpends.delete(key);
        }
        for (const [key, spend] of [...this.#fedSpends]) {
          if (spend.blockHeight === undefined || spend.blockHeight <= event.forkHeight) continue;
          // Known again as a mempool sighting: a new confirmation (at any height) is reported again.
          this.#fedSpends.set(key, { ...spend, blockHeight: undefined });
          const slot = this.#byOutpoint.get(key);
          this.#log('warn', `a reorganisation removed the block of ${spend.txid} after the channel recorded it at depth ${this.#closeDepth}; raise closeDepth for this chain`, slot, 'REORG_AFTER_CLOSE');
        }
        this.#log('info', `chain reorganisation: blocks above ${event.forkHeight} replaced`);
        return;
      }
      case 'spent':
        this.#onSpent(event.outpoint, event.spend);
        return;
    }
  }

  get #closeDepth(): number {
    return this.#o.closeDepth ?? 1;
  }

  /**
   * A watched outpoint was spent. Mempool sightings go to the channel at once (a breach must be answered
   * before it confirms); a confirmation goes once it is closeDepth deep, until then it waits here.
   */
  #onSpent(outpoint: OutPoint, spend: SpendInfo): void {
    const key = outpointKey(outpoint);
    const slot = this.#byOutpoint.get(key);
    if (!slot) return;
    if (spend.blockHeight === undefined) {
      this.#pendingSpends.delete(key); // back in (or only in) the mempool: not confirmed any more
      void this.#feedSpend(slot, outpoint, spend);
      return;
    }
    if (this.#tip - spend.blockHeight + 1 < this.#closeDepth) {
      this.#pendingSpends.set(key, { outpoint, spend: { ...spend } });
      void this.#feedSpend(slot, outpoint, { ...spend, blockHeight: undefined });
      return;
    }
    this.#pendingSpends.delete(key);
    void this.#feedSpend(slot, outpoint, spend);
  }

  /** Fetch the spending transaction and feed it, unless the channel already heard exactly this. */
  async #feedSpend(slot: RsmcChannelSlot, outpoint: OutPoint, spend: SpendInfo): Promise<void> {
    const key = outpointKey(outpoint);
    const previous = this.#fedSpends.get(key);
    if (previous?.txid === spend.txid && (previous.blockHeight === spend.blockHeight || spend.blockHeight === undefined)) return;
    const report = { ...spend };
    this.#fedSpends.set(key, report);
    try {
      const status = await this.#o.chain.getTransaction(spend.txid);
      if (!status) throw new Error(`transaction ${spend.txid} not found`);
      // A newer report of this outpoint (its confirmation, say) came in while this one was fetched and
      // is fed instead: feeding this one after it would turn the channel's view back in time.
      if (this.#fedSpends.get(key) !== report) return;
      const funding = slot.record.fundingOutpoint;
      const input: RsmcInput = funding && outpointKey(funding) === key
        ? { kind: 'funding-spent', tx: status.tx, height: spend.blockHeight }
        : { kind: 'output-spent', outpoint, txid: spend.txid, tx: status.tx, height: spend.blockHeight };
      await this.#enqueue(slot, () => this.#apply(slot, input));
    } catch (error) {
      // Tried again at the next block (confirmed) or the next report (mempool), unless a newer report
      // took this one's place meanwhile.
      if (this.#fedSpends.get(key) !== report) return;
      if (previous) this.#fedSpends.set(key, previous);
      else this.#fedSpends.delete(key);
      if (spend.blockHeight !== undefined && !this.#pendingSpends.has(key)) this.#pendingSpends.set(key, { outpoint, spend: { ...spend } });
      if (!(error instanceof RsmcError)) this.#log('warn', `could not report the spend of ${key}: ${(error as Error).message}`, slot);
    }
  }

  async #sweepFeeratePerKw(record: RsmcRecord): Promise<bigint> {
    if (this.#o.sweepFeeratePerKw !== undefined) return this.#o.sweepFeeratePerKw;
    try {
      return await this.#o.chain.estimateFeeratePerKw(6);
    } catch {
      return record.feeratePerKw;
    }
  }

  // ---- messages ----

  #onMessage(peer: NodeId, message: WireMessage): void {
    if (this.#stopped) return;
    if (message.type === 'open_channel') {
      void this.#serial(() => this.#onOpenChannel(peer, message)).catch((e) => this.#log('error', `open_channel failed: ${(e as Error).message}`));
      return;
    }
    if (BY_TEMP_ID.has(message.type)) {
      const id = (message as { temporaryChannelId: Uint8Array }).temporaryChannelId;
      return this.#route(peer, message, this.#slots.get(bytesToHex(id)), id);
    }
    if (BY_CHANNEL_ID.has(message.type)) {
      const id = (message as { channelId: Uint8Array }).channelId;
      return this.#route(peer, message, this.#byChannelId.get(bytesToHex(id)), id);
    }
    if (message.type === 'error' || message.type === 'warning') {
      if (!message.channelId) {
        // A warning about all channels asks nothing of them; an error fails every one with this peer.
        if (message.type === 'warning') return;
        for (const slot of this.#slots.values()) {
          if (slot.record.peer !== peer || !isLive(slot.record)) continue;
          const channelId = slot.record.channelId ?? slot.record.tempChannelId;
          void this.#enqueue(slot, () => this.#apply(slot, { kind: 'message', message: { ...message, channelId } }));
        }
        return;
      }
      const id = bytesToHex(message.channelId);
      const slot = this.#byChannelId.get(id) ?? this.#slots.get(id);
      // Not one of ours (maybe a one-way channel on a shared messenger): never answered.
      if (!slot || slot.record.peer !== peer) return;
      void this.#enqueue(slot, () => this.#apply(slot, { kind: 'message', message }));
    }
    // Anything else is not ours.
  }

  #route(peer: NodeId, message: WireMessage, slot: RsmcChannelSlot | undefined, id: Uint8Array): void {
    // A channel of another peer is "unknown" to this one: re-targeted messages learn nothing.
    if (!slot || slot.record.peer !== peer) {
      this.#send(peer, { type: 'warning', channelId: id, code: RSMC_WIRE_CODES.UNKNOWN_CHANNEL, message: 'unknown channel' });
      this.#log('warn', `${message.type} for an unknown channel`, undefined, 'UNKNOWN_CHANNEL');
      return;
    }
    void this.#enqueue(slot, () => this.#apply(slot, { kind: 'message', message }));
  }

  async #onOpenChannel(peer: NodeId, message: OpenChannelMsg): Promise<void> {
    const existing = this.#slots.get(bytesToHex(message.temporaryChannelId));
    const refuse = (code: RsmcErrorCode, text: string): void => {
      this.#send(peer, { type: 'error', channelId: message.temporaryChannelId, code: RSMC_WIRE_CODES[code], message: wireText(text) });
      this.#log('warn', `open_channel refused: ${text}`, undefined, code);
    };
    const ours = existing && existing.record.role === 'accepter' && existing.record.peer === peer && existing.record.phase === 'negotiating';
    if (existing && !ours) return refuse('TEMP_ID_IN_USE', 'temporary channel id in use');
    const keyIndex = ours ? existing.record.keyIndex : this.#nextKeyIndex;
    const { basepoints, firstPoint, secondPoint } = await this.#channelKeys(keyIndex);
    const result = accepterStart(message, { peer, keyIndex, basepoints, firstPoint, secondPoint, payoutScript: await this.#payoutScript() }, this.#ctx());
    if (existing) {
      // The same open again (the peer did not get our accept_channel): the same answer, else a clash.
      if (result.ok && equalBytes(encodeRecord(result.step.record), encodeRecord(existing.record))) {
        for (const effect of result.step.effects) if (effect.kind === 'send') this.#send(peer, effect.message);
        return;
      }
      return refuse('TEMP_ID_IN_USE', 'temporary channel id in use');
    }
    if (!result.ok) return refuse(result.code, result.message);
    this.#nextKeyIndex++;
    const slot = this.#addSlot(result.step.record, undefined);
    await this.#enqueue(slot, () => this.#execute(slot, result.step.effects));
  }

  /** Our basepoints of channel `keyIndex` and our per-commitment points for commitments 0 and 1. */
  async #channelKeys(keyIndex: number): Promise<{ basepoints: Basepoints; firstPoint: Uint8Array; secondPoint: Uint8Array }> {
    const { signer } = this.#o;
    // One request at a time: a hardware signer serves them in turn anyway.
    const basepoints: Basepoints = {
      fundingPubkey: await signer.getPublicKey({ family: 'funding', index: keyIndex }),
      revocationBasepoint: await signer.getPublicKey({ family: 'revocation', index: keyIndex }),
      paymentBasepoint: await signer.getPublicKey({ family: 'payment', index: keyIndex }),
      delayedPaymentBasepoint: await signer.getPublicKey({ family: 'delayed', index: keyIndex }),
      htlcBasepoint: await signer.getPublicKey({ family: 'htlc', index: keyIndex }),
    };
    const seed: KeyLocator = { family: 'commitment', index: keyIndex };
    const firstPoint = await signer.perCommitmentPoint(seed, 0n);
    const secondPoint = await signer.perCommitmentPoint(seed, 1n);
    return { basepoints, firstPoint, secondPoint };
  }

  async #payoutScript(): Promise<Uint8Array> {
    if (this.#o.payoutScript) return this.#o.payoutScript;
    if (this.#o.wallet) return this.#o.wallet.payoutScript();
    return p2wpkhOutput(await this.#o.signer.getPublicKey({ family: 'wallet', index: 0 }));
  }

  // ---- the machine loop ----

  #ctx(): RsmcContext {
    return { tipHeight: this.#tip, policy: this.#policy };
  }

  #enqueue<T>(slot: RsmcChannelSlot, task: () => Promise<T>): Promise<T> {
    const run = slot.queue.then(task).finally(() => this.#syncOpenTimer(slot));
    slot.queue = run.catch((error) => {
      if (!(error instanceof RsmcError) && !(error instanceof RangeError)) this.#log('error', `channel task failed: ${(error as Error).message}`, slot);
    });
    return run;
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#nodeQueue.then(task);
    this.#nodeQueue = run.catch(() => undefined);
    return run;
  }

  async #apply(slot: RsmcChannelSlot, input: RsmcInput): Promise<void> {
    let step;
    try {
      step = rsmcStep(slot.record, input, this.#ctx());
    } catch (error) {
      // A refused command goes back to its caller; anything else refused is worth a line in the log.
      if (input.kind !== 'pay' && input.kind !== 'close') {
        this.#log('error', `${input.kind} refused: ${(error as Error).message}`, slot, error instanceof RsmcError ? error.code : undefined);
      }
      throw error;
    }
    slot.record = step.record;
    this.#index(slot);
    await this.#execute(slot, step.effects);
  }

  /** Run effects in order. A failed commit restores the last durable record and stops the rest. */
  async #execute(slot: RsmcChannelSlot, effects: RsmcEffect[]): Promise<void> {
    const { store, signer, chain } = this.#o;
    for (const effect of effects) {
      switch (effect.kind) {
        case 'persist': {
          const record = slot.record;
          try {
            await store.commit([{ key: recordKey(record.tempChannelId), value: encodeRecord(record) }]);
          } catch (error) {
            if (slot.durable) slot.record = slot.durable;
            else this.#forget(slot);
            this.#log('error', `could not store the channel (${effect.reason}); nothing was sent`, slot, 'STORE');
            throw error;
          }
          slot.durable = record;
          this.#index(slot);
          // A validating signer follows our commitments as they become durable (commitment 0 included).
          await this.#validateLocalCommit(record);
          await this.#o.hooks?.afterPersist?.(effect.reason, record);
          break;
        }
        case 'send':
          this.#send(slot.record.peer, effect.message);
          break;
        case 'sign-remote-commitment': {
          await this.#setUpOnSigner(slot.record);
          const signature = await this.#signFundingSpend(slot.record, effect.tx, {
            kind: 'counterparty-commitment',
            number: effect.number,
            perCommitmentPoint: effect.point,
            // The peer's commitment: its holder's balance first.
            toLocalMsat: effect.spec.remoteMsat,
            toRemoteMsat: effect.spec.localMsat,
            feeratePerKw: slot.record.feeratePerKw,
          });
          await this.#apply(slot, { kind: 'commitment-signature', number: effect.number, signature });
          break;
        }
        case 'release-secret': {
          // The secret goes to the machine and, from there, to the peer: never to the log.
          const seed = commitmentSeed(slot.record);
          // A validating signer checks the peer's signature on the next commitment before it revokes this one.
          await this.#validateLocalCommit(slot.record);
          const { secret, nextPoint } = await signer.revokeCommitment(seed, effect.number);
          await this.#apply(slot, { kind: 'secret-released', number: effect.number, secret, nextPoint });
          break;
        }
        case 'select-coins': {
          const wallet = this.#o.wallet;
          let input: RsmcInput;
          try {
            if (!wallet) throw new Error('no wallet');
            const { coins, changeScript } = await wallet.selectCoins(effect.amountSat, slot.record.feeratePerKw);
            input = { kind: 'coins', coins, changeScript };
          } catch (error) {
            input = { kind: 'coins-failed', message: (error as Error).message };
          }
          await this.#apply(slot, input);
          if (slot.record.phase === 'aborted' && input.kind === 'coins') await wallet?.release(input.coins.map((c) => c.outpoint));
          break;
        }
        case 'release-coins':
          await this.#o.wallet?.release(slot.record.localInputs.map((i) => i.coin.outpoint));
          break;
        case 'sign-funding-inputs': {
          const tx = await this.#signFundingInputs(slot.record);
          await this.#apply(slot, { kind: 'funding-inputs-signed', tx });
          break;
        }
        case 'sign-closing': {
          await this.#setUpOnSigner(slot.record);
          const signature = await this.#signFundingSpend(slot.record, effect.tx, { kind: 'cooperative-close' });
          await this.#apply(slot, { kind: 'closing-signature', feeSat: effect.feeSat, signature });
          break;
        }
        case 'broadcast-commitment': {
          if (slot.record.stale) {
            // Our commitment is revoked as far as the peer knows: broadcasting it would hand it everything.
            this.#log('error', 'refusing to broadcast our commitment: our state is older than the peer’s', slot, 'LOCAL_STALE');
            break;
          }
          const tx = await this.#signedCommitment(slot.record);
          await this.#broadcast(slot, 'commitment', tx.getId(), Uint8Array.from(tx.toBuffer()));
          break;
        }
        case 'broadcast':
          await this.#broadcast(slot, effect.purpose, Transaction.fromBuffer(Buffer.from(effect.tx)).getId(), effect.tx);
          break;
        case 'resolve': {
          const record = slot.record;
          if (!record.closing) break;
          let resolution: ResolutionTx;
          try {
            const feerate = await this.#sweepFeeratePerKw(record);
            const spend = await chain.getTransaction(record.closing.txid).catch(() => undefined);
            const spendTx = spend ? Transaction.fromBuffer(Buffer.from(spend.tx)) : undefined;
            resolution = await buildResolution(record, record.closing, effect.output, signer, feerate, spendTx);
          } catch (error) {
            // The machine asks again at a later block.
            this.#log('warn', `could not build the ${effect.output.purpose} of ${outpointKey(effect.output.outpoint)}: ${(error as Error).message}`, slot);
            break;
          }
          await this.#apply(slot, { kind: 'resolution', resolution });
          // Before its relative lock ends the chain refuses a sweep (non-BIP68-final): asked again later.
          await this.#broadcast(slot, resolution.purpose, resolution.txid, resolution.tx);
          break;
        }
        case 'watch':
          this.#watch(slot, effect.outpoint);
          // The chain reports only spends made after the watch: one made before (a penalty confirmed in the
          // block that showed us the commitment, say) is looked up, as on load.
          void this.#checkSpend(slot, effect.outpoint);
          break;
        case 'check-funding': {
          const outpoint = slot.record.fundingOutpoint;
          if (!outpoint) break;
          let status: [UtxoStatus | undefined, number];
          try {
            status = await Promise.all([chain.getUtxo(outpoint), chain.tipHeight()]);
          } catch (error) {
            // Checked again at the next block.
            this.#log('warn', `funding check failed: ${(error as Error).message}`, slot);
            break;
          }
          const [utxo, tip] = status;
          this.#tip = Math.max(this.#tip, tip);
          await this.#apply(slot, { kind: 'funding-status', utxo, tipHeight: tip });
          break;
        }
        case 'event':
          // A validating signer records the peer's revocation before it signs a penalty or the next commitment.
          if (effect.event.type === 'revoked') await this.#revokedOnSigner(slot.record, effect.event.commitment.number);
          // A revoked state goes to the watchtower before the revocation is stored: after a crash in
          // between, the peer sends its revoke_and_ack again (channel_reestablish) and it is exported again.
          if (effect.event.type === 'revoked' && this.#o.watchtower) await this.#toWatchtower(slot, slot.record, effect.event.commitment);
          this.#emit(slot, effect.event);
          break;
      }
    }
  }

  /** Our 64-byte signature on the funding input (input 0) of `tx`: a commitment or closing transaction. */
  #signFundingSpend(record: RsmcRecord, tx: Uint8Array, context: SignContext): Promise<Uint8Array> {
    return this.#o.signer.signInput({
      key: { family: 'funding', index: record.keyIndex },
      context,
      tx,
      inputIndex: 0,
      scriptCode: fundingScriptOf(record),
      valueSat: record.fundingSat,
    });
  }

  /** Our latest commitment, rebuilt from the record, checked against its stored txid and fully signed. */
  async #signedCommitment(record: RsmcRecord): Promise<Transaction> {
    const commit = record.localCommit;
    if (!commit) throw new RsmcError('BAD_STATE', 'the channel has no commitment yet');
    const point = await this.#o.signer.perCommitmentPoint(commitmentSeed(record), commit.number);
    const commitment = localCommitment(record, commit.number, commit.spec, point);
    if (commitment.txid !== commit.txid) {
      throw new RsmcError('BAD_STATE', `commitment ${commit.number} rebuilds to ${commitment.txid}, not the stored ${commit.txid}`);
    }
    await this.#setUpOnSigner(record);
    await this.#validateLocalCommit(record);
    const signature = await this.#signFundingSpend(record, Uint8Array.from(commitment.tx.toBuffer()), { kind: 'holder-commitment' });
    return withFundingWitness(record, commitment.tx, signature, commit.remoteSignature);
  }

  /**
   * A validating signer (the hardware key) learns the channel's terms before its first signature for it;
   * once per channel and process, since the key answers the same terms again at once.
   */
  async #setUpOnSigner(record: RsmcRecord): Promise<void> {
    const { signer } = this.#o;
    if (!signer.setupChannel || this.#setUp.has(record.keyIndex)) return;
    const remote = remoteConfig(record);
    if (!record.fundingOutpoint) throw new RsmcError('BAD_STATE', 'the funding outpoint is not known yet');
    await signer.setupChannel({
      keyIndex: record.keyIndex,
      fundingOutpoint: record.fundingOutpoint,
      capacitySat: record.fundingSat,
      rsmc: {
        opener: record.role === 'opener',
        remote: {
          fundingPubkey: remote.fundingPubkey,
          revocationBasepoint: remote.revocationBasepoint,
          paymentBasepoint: remote.paymentBasepoint,
          delayedPaymentBasepoint: remote.delayedPaymentBasepoint,
          htlcBasepoint: remote.htlcBasepoint,
        },
        localDelay: remote.toSelfDelay,
        remoteDelay: record.local.toSelfDelay,
        localDustLimitSat: record.local.dustLimitSat,
        remoteDustLimitSat: remote.dustLimitSat,
        // Fixed at open (no update_fee): the key checks every commitment against exactly this rate.
        minFeeratePerKw: record.feeratePerKw,
        maxFeeratePerKw: record.feeratePerKw,
        closeScript: record.payoutScript,
        sweepScript: record.payoutScript,
      },
    });
    this.#setUp.add(record.keyIndex);
  }

  async #revokedOnSigner(record: RsmcRecord, number: bigint): Promise<void> {
    const { signer } = this.#o;
    if (!signer.validateCounterpartyRevocation) return;
    const secret = PerCommitmentSecretStore.fromJSON(record.remoteSecrets).get(commitmentIndex(number));
    if (!secret) throw new RsmcError('BAD_STATE', `no secret for the peer's commitment ${number}`);
    await this.#setUpOnSigner(record);
    await signer.validateCounterpartyRevocation({ keyIndex: record.keyIndex, number, secret });
  }

  /** Our latest commitment with the peer's signature, for a validating signer (idempotent there). */
  async #validateLocalCommit(record: RsmcRecord): Promise<void> {
    const { signer } = this.#o;
    const commit = record.localCommit;
    if (!signer.validateHolderCommitment || !commit || !record.fundingOutpoint) return;
    if ((this.#validated.get(record.keyIndex) ?? -1n) >= commit.number) return;
    await this.#setUpOnSigner(record);
    // The record keeps our point for localCommit.number: no round trip to the key on every update (the key
    // derives the point itself and refuses a commitment built with another).
    const tx = localCommitment(record, commit.number, commit.spec, record.localCurrentPoint).tx;
    await signer.validateHolderCommitment({
      keyIndex: record.keyIndex,
      number: commit.number,
      toLocalMsat: commit.spec.localMsat,
      toRemoteMsat: commit.spec.remoteMsat,
      feeratePerKw: record.feeratePerKw,
      tx: Uint8Array.from(tx.toBuffer()),
      counterpartySignature: commit.remoteSignature,
    });
    this.#validated.set(record.keyIndex, commit.number);
  }

  /** Our P2WPKH inputs of the stored funding transaction, signed (the peer's inputs are left as they are). */
  async #signFundingInputs(record: RsmcRecord): Promise<Uint8Array> {
    if (!record.fundingTx) throw new RsmcError('BAD_STATE', 'no funding transaction to sign');
    const { signer } = this.#o;
    const tx = Transaction.fromBuffer(Buffer.from(record.fundingTx));
    let signed = 0;
    for (let i = 0; i < tx.ins.length; i++) {
      const input = tx.ins[i]!;
      const txid = hashToTxid(input.hash);
      const coin = record.localInputs.find((l) => l.coin.outpoint.txid === txid && l.coin.outpoint.vout === input.index)?.coin;
      if (!coin) continue;
      const pubkey = await signer.getPublicKey(coin.key);
      if (!equalBytes(pubkey, coin.pubkey)) throw new RsmcError('FUNDING_MISMATCH', `the signer's key for funding input ${i} does not match the coin`);
      const signature = await signInput(signer, tx, { key: coin.key, inputIndex: i, scriptCode: p2wpkhScriptCode(pubkey), valueSat: coin.valueSat });
      tx.setWitness(i, [signature, pubkey]);
      signed++;
    }
    if (signed !== record.localInputs.length) throw new RsmcError('FUNDING_MISMATCH', 'the funding transaction does not spend all our coins');
    return Uint8Array.from(tx.toBuffer());
  }

  /** Broadcast and feed the result; a thrown broadcast is logged only (the machine retries on a later block). */
  async #broadcast(slot: RsmcChannelSlot, purpose: RsmcBroadcastPurpose, txid: string, tx: Uint8Array): Promise<void> {
    let result;
    try {
      result = await this.#o.chain.broadcast(tx);
    } catch (error) {
      // Unknown whether it went out: the machine tries the same bytes again later.
      this.#log('warn', `broadcast of the ${purpose} ${txid} failed: ${(error as Error).message}`, slot);
      return;
    }
    if (!result.accepted) {
      const known = result.code === 'txn-already-known' || result.code === 'txn-already-in-mempool';
      this.#log(known ? 'debug' : 'info', `${purpose} ${txid} not accepted: ${result.code}`, slot);
    }
    await this.#apply(slot, { kind: 'broadcast-result', purpose, txid, result });
  }

  #send(peer: NodeId, message: WireMessage): void {
    this.#o.messenger.send(peer, message).then(
      () => this.#o.hooks?.afterSend?.(message),
      (error) => this.#log('warn', `could not send ${message.type}: ${(error as Error).message}`),
    );
  }

  #emit(slot: RsmcChannelSlot, event: RsmcEvent): void {
    slot.handle.deliver(event);
    for (const listener of this.#listeners) {
      try {
        listener(slot.handle, event);
      } catch {
        // A listener's bug must not stop the channel.
      }
    }
  }

  /**
   * In the channel's queue, so an entry is handed over before the revocation it depends on is stored
   * (at least once per revoked state). The callback should store the entry and return promptly: the
   * channel waits for it. A failure is logged, never fatal to the channel.
   */
  async #toWatchtower(slot: RsmcChannelSlot, record: RsmcRecord, commitment: RemoteCommit): Promise<void> {
    const watchtower = this.#o.watchtower!;
    try {
      const entry = await exportRevokedState(record, commitment, this.#o.signer, await this.#sweepFeeratePerKw(record));
      if (entry) await watchtower(entry);
    } catch (error) {
      this.#log('warn', `watchtower export of commitment ${commitment.number} failed: ${(error as Error).message}`, slot, 'WATCHTOWER');
    }
  }

  #log(level: RsmcLogEntry['level'], msg: string, slot?: RsmcChannelSlot, code?: string): void {
    const entry: RsmcLogEntry = { level, msg };
    if (slot) entry.channel = bytesToHex(slot.record.channelId ?? slot.record.tempChannelId).slice(0, 16);
    if (code) entry.code = code;
    this.#o.log?.(entry);
  }
}

function outpointKey(o: OutPoint): string {
  return `${o.txid}:${o.vout}`;
}

/** A node that opens and accepts revocable channels (both sides pay). */
export function createPeer(options: RsmcNodeOptions): Promise<RsmcNode> {
  return RsmcNode.start(options);
}

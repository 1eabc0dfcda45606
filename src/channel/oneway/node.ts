/**
 * The one-way channel runtime: it feeds the pure machines (./payer.ts, ./payee.ts) with peer messages,
 * chain events and commands, and executes their effects in order through the ports — Store (commit is
 * durable before the next effect runs), Messenger, Signer, ChainSource and the payer's FundingWallet.
 * Each channel has its own queue, so its inputs are applied one at a time.
 *
 * Restart and reconnect (docs/protocol.md §3.3 `oneway_resume`): on start every live channel is loaded,
 * its funding output watched and the chain checked; when a session with the peer is (re)established both
 * sides resend what the other may have missed.
 *
 * @example
 *   const payer = await createPayer({ messenger, chain, store, signer, wallet });
 *   const channel = await payer.open(providerId, { capacitySat: 200_000n, expiryBlocks: 144 });
 *   await channel.pay(1_000_000n);           // 1000 sat more, resolves on the payee's ack
 *   const outcome = await channel.close();   // settled on chain by the payee
 */
import { Transaction } from 'bitcoinjs-lib';
import { bytesToHex } from '../../bytes.js';
import type { ChainEvent, ChainSource, OutPoint, SpendInfo } from '../../chain/port.js';
import { systemClock, type Clock } from '../../clock.js';
import { signFundingInputs, type FundingTransaction } from '../../onchain/funding.js';
import { p2wpkhOutput } from '../../onchain/script.js';
import type { Messenger } from '../../node/messenger.js';
import type { SessionEvent } from '../../session/manager.js';
import type { SignContext, Signer } from '../../signer/port.js';
import type { Store } from '../../store/port.js';
import type { NodeId, Unsubscribe } from '../../transport/port.js';
import type { WireMessage } from '../../wire/index.js';
import type { FundingWallet } from '../../wallet/device-wallet.js';
import { OnewayChannel } from './channel.js';
import type { ChannelEvent, Effect, PersistReason } from './core.js';
import { CHANNEL_WIRE_CODES, ChannelError, type ChannelErrorCode } from './errors.js';
import { DEFAULT_PAYEE_POLICY, isSameProposal, acceptMessage, payeeOnPropose, payeeStep, type PayeeInput, type PayeeOffer, type PayeePolicy } from './payee.js';
import { DEFAULT_PAYER_POLICY, payerPropose, payerStep, type PayerInput, type PayerPolicy } from './payer.js';
import { decodeRecord, encodeRecord, RECORD_PREFIX, recordKey, type OnewayRecord, type PayeeRecord, type PayerRecord, type ServiceTerms } from './state.js';
import { channelTerms, fundingScriptOf, paymentTransaction } from './terms.js';

export interface OnewayHooks {
  /** After a record is durably committed (crash tests kill the process here). */
  afterPersist?(reason: PersistReason, record: OnewayRecord): void | Promise<void>;
  /** After a message was handed to the session layer (and, over MQTT, acknowledged by the broker). */
  afterSend?(message: WireMessage): void;
}

export interface OnewayLogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  channel?: string;
  code?: string;
}

export interface OnewayNodeOptions {
  messenger: Messenger;
  chain: ChainSource;
  store: Store;
  signer: Signer;
  /** Needed to open channels (payer). */
  wallet?: FundingWallet;
  /** Services this node sells (payee); announce them with messenger.announce(). */
  offers?: PayeeOffer[];
  /** Where payments to us go (payee). Default: the wallet's payout script, else P2WPKH of key wallet/0. */
  payoutScript?: Uint8Array;
  payeePolicy?: Partial<PayeePolicy>;
  payerPolicy?: Partial<PayerPolicy>;
  clock?: Clock;
  /** How long pay() waits for the payee's acknowledgement (default 60 s). */
  payTimeoutMs?: number;
  /**
   * How long a payer opening a channel waits for the payee's answer to its proposal or refund request
   * before asking again (default 5 s, doubling up to 60 s). See #armNegotiationRetry.
   */
  negotiationRetryMs?: number;
  /**
   * How long a payer waits in the open (`proposed`, `accepted`: nothing funded) for a payee that does not
   * complete it before abandoning it, releasing its coins and telling the payee (default 10 min, counted
   * again from a restart).
   */
  openTimeoutMs?: number;
  /**
   * Confirmations the spend of a funding output needs before the channel records its outcome and
   * stops watching (default 1). A reorganisation shallower than this cannot undo a recorded outcome;
   * use 1 on simnet and regtest, 3 to 6 on real networks.
   */
  closeDepth?: number;
  hooks?: OnewayHooks;
  log?: (entry: OnewayLogEntry) => void;
  /**
   * A listener registered before stored channels load, so it also hears what happens while the node
   * starts (a close confirmed while it was away, a resumed channel reopening); see onEvent.
   */
  onEvent?: (channel: OnewayChannel, event: ChannelEvent) => void;
}

export interface OpenParams {
  capacitySat: bigint;
  /** Refund lock: this many blocks after the current tip. */
  expiryBlocks: number;
  /** Which of the provider's announced services; default its first. */
  serviceId?: string;
  /** Terms agreed out of band, when the provider's announcement is not (yet) in the directory. */
  service?: ServiceTerms;
  /** How long to wait for the provider's announcement (default 10 s). */
  offerTimeoutMs?: number;
}

/** One channel's state in the runtime: the record, its last durable version and its input queue. */
export interface ChannelSlot {
  record: OnewayRecord;
  durable: OnewayRecord | undefined;
  queue: Promise<unknown>;
  /**
   * Payments whose commit is under way: each commit, then what its step sends, strictly in order. The
   * queue moves on to the next payment meanwhile, so concurrent commits share one LMDB transaction
   * (group commit) and a payment's round trip does not wait for the previous payment's fsync.
   */
  pipeline: Promise<void>;
  /** A pipelined commit failed: nothing more is sent on this channel until the node is restarted. */
  broken: Error | undefined;
  /** The latest acknowledgement queued behind a commit (payee); earlier queued ones are not sent. */
  latestAck?: WireMessage;
  /** The timer that asks the payee again while a payer waits for its answer during the open. */
  negotiationRetry?: { phase: 'proposed' | 'accepted'; cancel: () => void };
  /** Cancels the payer's open timeout (armed while `proposed` or `accepted`). */
  openDeadline?: () => void;
  handle: OnewayChannel;
}

/** The longest a payer waits between two requests to a payee that does not answer during the open. */
const MAX_NEGOTIATION_RETRY_MS = 60_000;

/**
 * The commits that may overlap with the next step: a payment signed (payer) or accepted (payee). Their
 * steps only send and report after the commit; every other persist waits for these to finish first.
 */
const PIPELINED_PERSISTS: ReadonlySet<string> = new Set(['payment-signed', 'payment-accepted']);

const LIVE_PHASES = new Set(['proposed', 'accepted', 'refund_held', 'refund_signed', 'funded', 'open', 'closing']);

export function isLive(record: OnewayRecord): boolean {
  return LIVE_PHASES.has(record.phase);
}

function randomTempId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

export class OnewayNode {
  readonly nodeId: NodeId;
  readonly #o: OnewayNodeOptions;
  readonly #payeePolicy: PayeePolicy;
  readonly #payerPolicy: PayerPolicy;
  readonly #clock: Clock;
  readonly #slots = new Map<string, ChannelSlot>();
  readonly #byChannelId = new Map<string, ChannelSlot>();
  readonly #byOutpoint = new Map<string, ChannelSlot>();
  /** Confirmed spends of funding outputs not yet at closeDepth, by outpoint key. */
  readonly #pendingSpends = new Map<string, SpendInfo>();
  /** Spends already fed to a channel in this run (to warn if a reorganisation removes one). */
  readonly #fedSpends = new Map<string, SpendInfo>();
  readonly #restoredPeers = new Set<NodeId>();
  readonly #listeners = new Set<(channel: OnewayChannel, event: ChannelEvent) => void>();
  readonly #unsubscribe: Unsubscribe[] = [];
  /** Channels whose terms a validating signer has been given in this process. */
  readonly #setUp = new Set<number>();
  #nodeQueue: Promise<unknown> = Promise.resolve();
  #nextKeyIndex = 0;
  #tip = 0;
  #stopped = false;

  private constructor(options: OnewayNodeOptions) {
    this.#o = options;
    this.nodeId = options.messenger.nodeId;
    this.#payeePolicy = { ...DEFAULT_PAYEE_POLICY, ...options.payeePolicy };
    this.#payerPolicy = { ...DEFAULT_PAYER_POLICY, ...options.payerPolicy };
    this.#clock = options.clock ?? systemClock;
    const closeDepth = options.closeDepth ?? 1;
    if (!Number.isSafeInteger(closeDepth) || closeDepth < 1) throw new RangeError('"closeDepth" expected an integer >= 1');
    const retryMs = options.negotiationRetryMs ?? 5_000;
    if (!Number.isSafeInteger(retryMs) || retryMs < 1) throw new RangeError('"negotiationRetryMs" expected a positive integer');
    const openTimeoutMs = options.openTimeoutMs ?? 600_000;
    if (!Number.isSafeInteger(openTimeoutMs) || openTimeoutMs < 1) throw new RangeError('"openTimeoutMs" expected a positive integer');
    if (options.onEvent) this.#listeners.add(options.onEvent);
  }

  /** Load stored channels, subscribe to peers and chain, and resume every live channel. */
  static async start(options: OnewayNodeOptions): Promise<OnewayNode> {
    const node = new OnewayNode(options);
    await node.#load();
    return node;
  }

  get clock(): Clock {
    return this.#clock;
  }

  get payTimeoutMs(): number {
    return this.#o.payTimeoutMs ?? 60_000;
  }

  get tipHeight(): number {
    return this.#tip;
  }

  channels(): OnewayChannel[] {
    return [...this.#slots.values()].map((s) => s.handle);
  }

  /** By channel id or temporary id (hex). */
  channel(id: string): OnewayChannel | undefined {
    return (this.#byChannelId.get(id) ?? this.#slots.get(id))?.handle;
  }

  /** Every channel event (phase changes, payments, rejections, failures, outcomes). */
  onEvent(listener: (channel: OnewayChannel, event: ChannelEvent) => void): Unsubscribe {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Open a channel to a provider and wait until it is ready for payments (funding at depth). */
  async open(peer: NodeId, params: OpenParams): Promise<OnewayChannel> {
    if (!this.#o.wallet) throw new TypeError('opening a channel needs a wallet');
    if (typeof params.capacitySat !== 'bigint' || params.capacitySat <= 0n) throw new RangeError('"capacitySat" expected a positive bigint');
    if (!Number.isInteger(params.expiryBlocks) || params.expiryBlocks < 1) throw new RangeError('"expiryBlocks" expected a positive integer');
    const service = params.service ?? (await this.offerOf(peer, params));
    const wallet = this.#o.wallet;
    const slot = await this.#serial(async () => {
      const tip = await this.#o.chain.tipHeight();
      this.#tip = Math.max(this.#tip, tip);
      // The wallet's rate (the chain's estimate within its floor and ceiling) if it has one.
      const feeratePerKw = wallet.fundingFeeratePerKw ? await wallet.fundingFeeratePerKw() : await this.#o.chain.estimateFeeratePerKw(6);
      const fundingKeyIndex = this.#nextKeyIndex++;
      const step = payerPropose({
        peer,
        tempChannelId: randomTempId(),
        capacitySat: params.capacitySat,
        expiryHeight: tip + params.expiryBlocks,
        feeratePerKw,
        service,
        fundingKeyIndex,
        payerFundingPubkey: await this.#o.signer.getPublicKey({ family: 'funding', index: fundingKeyIndex }),
        refundScript: await wallet.payoutScript(),
      });
      const slot = this.#addSlot(step.record, undefined);
      await this.#enqueue(slot, () => this.#execute(slot, step.effects));
      this.#armNegotiationRetry(slot);
      return slot;
    });
    return slot.handle.waitUntilOpen();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const u of this.#unsubscribe) u();
    for (const slot of this.#slots.values()) {
      slot.negotiationRetry?.cancel();
      slot.openDeadline?.();
    }
    await Promise.allSettled([...this.#slots.values()].map((s) => s.queue));
    await Promise.allSettled([...this.#slots.values()].map((s) => s.pipeline));
    for (const slot of this.#slots.values()) slot.handle.shutdown(new ChannelError('STOPPED', 'node stopped'));
  }

  // ---- used by OnewayChannel ----

  /** Apply a command to a channel through its queue; ChannelErrors thrown by the machine propagate. */
  command(slot: ChannelSlot, input: PayerInput | PayeeInput): Promise<void> {
    if (this.#stopped) return Promise.reject(new ChannelError('STOPPED', 'node stopped'));
    return this.#enqueue(slot, () => this.#apply(slot, input));
  }

  // ---- loading and subscriptions ----

  async #load(): Promise<void> {
    const { store, chain, messenger } = this.#o;
    this.#tip = await chain.tipHeight();
    for (const entry of await store.list(RECORD_PREFIX)) {
      let record: OnewayRecord;
      try {
        record = decodeRecord(entry.value);
      } catch (error) {
        // A corrupt record is reported, never guessed at; the others still load.
        this.#log('error', `skipping stored channel ${entry.key}: ${(error as Error).message}`, undefined, 'CORRUPT_RECORD');
        continue;
      }
      this.#nextKeyIndex = Math.max(this.#nextKeyIndex, record.fundingKeyIndex + 1);
      this.#addSlot(record, record);
      if (isLive(record)) {
        this.#restoredPeers.add(record.peer);
        if (record.role === 'payer' && record.fundingInputs && (record.phase === 'accepted' || record.phase === 'refund_held')) {
          await this.#o.wallet?.reserve(record.fundingInputs.map((i) => i.outpoint));
        }
      }
    }
    this.#unsubscribe.push(
      messenger.onMessage((peer, message) => this.#onMessage(peer, message)),
      messenger.onSession((event) => this.#onSession(event)),
      chain.subscribe((event) => this.#onChainEvent(event)),
    );
    for (const slot of this.#slots.values()) {
      if (!isLive(slot.record)) continue;
      const outpoint = slot.record.fundingOutpoint;
      if (outpoint && slot.record.phase !== 'proposed' && slot.record.phase !== 'accepted') {
        chain.watchOutpoint(outpoint);
        // Spent while we were away? The chain is the truth.
        const spend = await chain.getSpend(outpoint);
        if (spend?.blockHeight !== undefined) await this.#considerSpend(slot, outpoint, spend);
      }
      if (slot.record.role === 'payer' && slot.record.phase === 'open') void this.#enqueue(slot, () => this.#catchUpWithSigner(slot));
      void this.#enqueue(slot, () => this.#apply(slot, { kind: 'block', height: this.#tip }));
    }
    for (const peer of this.#restoredPeers) {
      // Bring the session up so both sides resynchronise (#onSession); an absent peer is fine.
      messenger.connect(peer).catch(() => undefined);
    }
  }

  /** `durable`: the record as last committed; undefined for a new channel not stored yet. */
  #addSlot(record: OnewayRecord, durable: OnewayRecord | undefined): ChannelSlot {
    const slot: ChannelSlot = { record, durable, queue: Promise.resolve(), pipeline: Promise.resolve(), broken: undefined, handle: undefined as unknown as OnewayChannel };
    slot.handle = new OnewayChannel(this, slot);
    this.#slots.set(bytesToHex(record.tempChannelId), slot);
    this.#index(slot);
    return slot;
  }

  #index(slot: ChannelSlot): void {
    if (slot.record.channelId) this.#byChannelId.set(bytesToHex(slot.record.channelId), slot);
    if (slot.record.fundingOutpoint) this.#byOutpoint.set(outpointKey(slot.record.fundingOutpoint), slot);
  }

  #onSession(event: SessionEvent): void {
    const restored = this.#restoredPeers.delete(event.peer);
    if (!event.replaced && !restored) return;
    for (const slot of this.#slots.values()) {
      if (slot.record.peer !== event.peer || !isLive(slot.record)) continue;
      void this.#enqueue(slot, () => this.#apply(slot, { kind: 'resync' }));
    }
  }

  #onChainEvent(event: ChainEvent): void {
    if (this.#stopped) return;
    switch (event.type) {
      case 'block': {
        this.#tip = event.height;
        for (const [key, spend] of [...this.#pendingSpends]) {
          const slot = this.#byOutpoint.get(key);
          if (slot) void this.#considerSpend(slot, slot.record.fundingOutpoint!, spend);
        }
        for (const slot of this.#slots.values()) {
          if (isLive(slot.record)) void this.#enqueue(slot, () => this.#apply(slot, { kind: 'block', height: event.height }));
        }
        return;
      }
      case 'reorg': {
        // Confirmations above the fork are gone: forget them and let the chain report them again.
        this.#tip = event.forkHeight;
        for (const [key, spend] of [...this.#pendingSpends]) {
          if (spend.blockHeight! > event.forkHeight) this.#pendingSpends.delete(key);
        }
        for (const [key, spend] of [...this.#fedSpends]) {
          if (spend.blockHeight! <= event.forkHeight) continue;
          this.#fedSpends.delete(key);
          const slot = this.#byOutpoint.get(key);
          this.#log('warn', `a reorganisation removed the block of this channel's closing transaction ${spend.txid} after its outcome was recorded at depth ${this.#closeDepth}; raise closeDepth for this chain`, slot, 'REORG_AFTER_CLOSE');
        }
        this.#log('info', `chain reorganisation: blocks above ${event.forkHeight} replaced`);
        return;
      }
      case 'spent': {
        const key = outpointKey(event.outpoint);
        const slot = this.#byOutpoint.get(key);
        if (!slot) return;
        if (event.spend.blockHeight === undefined) {
          this.#pendingSpends.delete(key); // back in (or only in) the mempool: not confirmed any more
          return;
        }
        void this.#considerSpend(slot, event.outpoint, event.spend);
        return;
      }
    }
  }

  get #closeDepth(): number {
    return this.#o.closeDepth ?? 1;
  }

  /** Feed a confirmed funding spend to its channel once it is closeDepth deep; until then keep it pending. */
  async #considerSpend(slot: ChannelSlot, outpoint: OutPoint, spend: SpendInfo): Promise<void> {
    const key = outpointKey(outpoint);
    const depth = this.#tip - spend.blockHeight! + 1;
    if (depth < this.#closeDepth) {
      this.#pendingSpends.set(key, { ...spend });
      return;
    }
    this.#pendingSpends.delete(key);
    if (this.#fedSpends.get(key)?.txid === spend.txid) return;
    this.#fedSpends.set(key, { ...spend });
    try {
      const status = await this.#o.chain.getTransaction(spend.txid);
      if (!status) {
        this.#fedSpends.delete(key);
        return;
      }
      await this.#enqueue(slot, () => this.#apply(slot, { kind: 'funding-spent', spend, tx: status.tx }));
    } catch (error) {
      this.#fedSpends.delete(key); // retried at the next block
      this.#pendingSpends.set(key, { ...spend });
      this.#log('warn', `could not fetch the funding spend: ${(error as Error).message}`, slot);
    }
  }

  // ---- messages ----

  #onMessage(peer: NodeId, message: WireMessage): void {
    if (this.#stopped) return;
    switch (message.type) {
      case 'oneway_propose':
        void this.#serial(() => this.#onPropose(peer, message)).catch((e) => this.#log('error', `proposal failed: ${(e as Error).message}`));
        return;
      case 'oneway_accept':
      case 'oneway_refund_signed':
        return this.#route(peer, message, bytesToHex(message.tempChannelId), 'payer', 'temp');
      case 'oneway_refund_request':
      case 'oneway_funded':
        return this.#route(peer, message, bytesToHex(message.tempChannelId), 'payee', 'temp');
      case 'oneway_ready':
      case 'oneway_pay_ack':
      case 'oneway_settled':
        return this.#route(peer, message, bytesToHex(message.channelId), 'payer', 'channel');
      case 'oneway_pay':
      case 'oneway_close_request':
        return this.#route(peer, message, bytesToHex(message.channelId), 'payee', 'channel');
      case 'oneway_resume':
        return this.#route(peer, message, bytesToHex(message.channelId), undefined, 'channel');
      case 'error':
      case 'warning': {
        if (!message.channelId) {
          if (message.type === 'warning') return;
          for (const slot of this.#slots.values()) {
            if (slot.record.peer === peer && isLive(slot.record)) void this.#enqueue(slot, () => this.#apply(slot, { kind: 'message', message: { ...message, channelId: slot.record.channelId ?? slot.record.tempChannelId } } as PayerInput));
          }
          return;
        }
        const id = bytesToHex(message.channelId);
        const slot = this.#byChannelId.get(id) ?? this.#slots.get(id);
        if (!slot || slot.record.peer !== peer) return; // errors about unknown channels are ignored (§3.6)
        if (message.type === 'warning' && slot.record.role === 'payee') {
          this.#log('warn', `peer warning ${message.code}`, slot);
          return;
        }
        void this.#enqueue(slot, () => this.#apply(slot, { kind: 'message', message } as PayerInput));
        return;
      }
      default:
        return;
    }
  }

  #route(peer: NodeId, message: WireMessage, id: string, role: 'payer' | 'payee' | undefined, by: 'temp' | 'channel'): void {
    const slot = by === 'temp' ? this.#slots.get(id) : this.#byChannelId.get(id);
    // A channel of another peer is "unknown" to this one: re-targeted messages learn nothing.
    if (!slot || slot.record.peer !== peer || (role && slot.record.role !== role)) {
      const channelId = 'channelId' in message && message.channelId instanceof Uint8Array ? message.channelId : (message as { tempChannelId: Uint8Array }).tempChannelId;
      this.#send(peer, { type: 'warning', channelId, code: CHANNEL_WIRE_CODES.UNKNOWN_CHANNEL, message: 'unknown channel' });
      this.#log('warn', `${message.type} for an unknown channel`, undefined, 'UNKNOWN_CHANNEL');
      return;
    }
    void this.#enqueue(slot, () => this.#apply(slot, { kind: 'message', message } as PayerInput));
  }

  async #onPropose(peer: NodeId, message: Extract<WireMessage, { type: 'oneway_propose' }>): Promise<void> {
    const id = bytesToHex(message.tempChannelId);
    const existing = this.#slots.get(id);
    const refuse = (code: ChannelErrorCode, text: string) => {
      this.#send(peer, { type: 'error', channelId: message.tempChannelId, code: CHANNEL_WIRE_CODES[code], message: text });
      this.#log('warn', `proposal refused: ${text}`, undefined, code);
    };
    if (existing) {
      const record = existing.record;
      if (record.role === 'payee' && record.peer === peer && record.phase === 'accepted' && isSameProposal(record, message)) {
        this.#send(peer, (acceptMessage(record) as Extract<Effect, { kind: 'send' }>).message);
        return;
      }
      return refuse('TEMP_ID_IN_USE', 'temporary channel id in use');
    }
    const offers = this.#o.offers ?? [];
    if (offers.length === 0) return refuse('NO_OFFER', 'this node sells no service');
    const fundingKeyIndex = this.#nextKeyIndex;
    const result = payeeOnPropose(message, {
      peer,
      tipHeight: this.#tip,
      offers,
      policy: this.#payeePolicy,
      fundingKeyIndex,
      payeeFundingPubkey: await this.#o.signer.getPublicKey({ family: 'funding', index: fundingKeyIndex }),
      payoutScript: await this.#payoutScript(),
    });
    if (!result.ok) return refuse(result.code, result.message);
    this.#nextKeyIndex++;
    const slot = this.#addSlot(result.step.record, undefined);
    await this.#enqueue(slot, () => this.#execute(slot, result.step.effects));
  }

  async #payoutScript(): Promise<Uint8Array> {
    if (this.#o.payoutScript) return this.#o.payoutScript;
    if (this.#o.wallet) return this.#o.wallet.payoutScript();
    return p2wpkhOutput(await this.#o.signer.getPublicKey({ family: 'wallet', index: 0 }));
  }

  /**
   * The provider's announced terms for a service (its first, or `params.serviceId`), waiting up to
   * `offerTimeoutMs` for its announcement; checks that `capacitySat`, if given, is within the offer.
   */
  async offerOf(peer: NodeId, params: Partial<Pick<OpenParams, 'capacitySat' | 'serviceId' | 'offerTimeoutMs'>> = {}): Promise<ServiceTerms> {
    const deadline = this.#clock.now() + (params.offerTimeoutMs ?? 10_000);
    // Asks for this provider's retained announcement (a messenger with presence 'watched' receives
    // nobody else's); what arrives stays in the directory after the wait.
    const unwatch = this.#o.messenger.watch(peer);
    try {
      for (;;) {
        const entry = this.#o.messenger.directory().get(peer);
        const offer = entry?.announcement.services.find((s) => params.serviceId === undefined || s.serviceId === params.serviceId);
        if (offer) {
          if (params.capacitySat !== undefined && (params.capacitySat < offer.minCapacitySat || params.capacitySat > offer.maxCapacitySat)) {
            throw new ChannelError('TERMS_REJECTED', `capacity must be within ${offer.minCapacitySat}..${offer.maxCapacitySat} sat`);
          }
          return { serviceId: offer.serviceId, unit: offer.unit, tariffMsatPerUnit: offer.tariffMsatPerUnit, creditWindowUnits: offer.creditWindowUnits };
        }
        if (this.#clock.now() >= deadline) throw new ChannelError('NO_OFFER', 'the provider announced no matching service');
        await new Promise<void>((resolve) => this.#clock.setTimer(100, resolve));
      }
    } finally {
      unwatch();
    }
  }

  // ---- the machine loop ----

  #enqueue<T>(slot: ChannelSlot, task: () => Promise<T>): Promise<T> {
    const run = slot.queue.then(task);
    slot.queue = run.catch((error) => {
      if (!(error instanceof ChannelError) && !(error instanceof RangeError)) this.#log('error', `channel task failed: ${(error as Error).message}`, slot);
    });
    return run;
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#nodeQueue.then(task);
    this.#nodeQueue = run.catch(() => undefined);
    return run;
  }

  async #apply(slot: ChannelSlot, input: PayerInput | PayeeInput): Promise<void> {
    if (slot.broken) throw slot.broken;
    const ctx = { tipHeight: this.#tip };
    const step = slot.record.role === 'payer'
      ? payerStep(slot.record, input as PayerInput, { ...ctx, policy: this.#payerPolicy })
      : payeeStep(slot.record, input as PayeeInput, { ...ctx, policy: this.#payeePolicy });
    slot.record = step.record;
    try {
      await this.#execute(slot, step.effects);
    } finally {
      this.#armNegotiationRetry(slot);
    }
  }

  /**
   * A payer waiting for the payee's answer during the open (`proposed`, `accepted`) asks again now and
   * then, with what resynchronisation would send (found by the soak: a payee killed right after
   * its session acknowledged `oneway_propose` never answered, and nothing else made the payer speak, so
   * its session never learnt the payee had restarted). The payee answers a repeated request as the first
   * one; over a session the payee no longer has, the unacknowledged request makes the session layer
   * replace it, and resynchronisation follows. Nothing is stored: these requests commit no money.
   */
  #armNegotiationRetry(slot: ChannelSlot): void {
    const { record } = slot;
    // Cheap checks first (this runs after every payment). A channel forgotten after its first commit
    // failed has nothing to ask for or to time out.
    const phase =
      record.role === 'payer' && (record.phase === 'proposed' || record.phase === 'accepted') && this.#slots.get(bytesToHex(record.tempChannelId)) === slot
        ? record.phase
        : undefined;
    this.#armOpenDeadline(slot, phase !== undefined);
    if (slot.negotiationRetry?.phase === phase) return;
    slot.negotiationRetry?.cancel();
    slot.negotiationRetry = undefined;
    if (phase === undefined || this.#stopped) return;
    const schedule = (delayMs: number): void => {
      const cancel = this.#clock.setTimer(delayMs, () => {
        if (this.#stopped || slot.negotiationRetry?.cancel !== cancel) return;
        this.#log('info', `no answer from the payee to our ${phase === 'proposed' ? 'proposal' : 'refund request'} for ${delayMs} ms; asking again`, slot);
        schedule(Math.min(delayMs * 2, MAX_NEGOTIATION_RETRY_MS));
        this.#enqueue(slot, () => this.#apply(slot, { kind: 'resync' })).catch(() => undefined);
      });
      slot.negotiationRetry = { phase, cancel };
    };
    schedule(this.#o.negotiationRetryMs ?? 5_000);
  }

  /**
   * A payer whose open the payee leaves unfinished (gone for good, or stuck) gives it up after
   * openTimeoutMs, counted from when this process saw it begin: the retries above never give up by
   * themselves, and from `accepted` on the funding coins are reserved.
   */
  #armOpenDeadline(slot: ChannelSlot, negotiating: boolean): void {
    if (!negotiating || this.#stopped) {
      slot.openDeadline?.();
      slot.openDeadline = undefined;
      return;
    }
    if (slot.openDeadline) return;
    const afterMs = this.#o.openTimeoutMs ?? 600_000;
    const cancel = this.#clock.setTimer(afterMs, () => {
      if (this.#stopped || slot.openDeadline !== cancel) return;
      slot.openDeadline = undefined;
      this.#log('warn', `open timeout: no answer from the payee for ${Math.round(afterMs / 1000)} s`, slot, 'TIMEOUT');
      this.#enqueue(slot, () => this.#apply(slot, { kind: 'open-timeout', afterMs })).catch(() => undefined);
    });
    slot.openDeadline = cancel;
  }

  /**
   * The payer's signatures go to a validating signer (the hardware key) with what they are for; it
   * learns the channel's terms first, once per channel and process.
   */
  async #signContext(record: OnewayRecord, effect: Extract<Effect, { kind: 'sign' }>): Promise<SignContext | undefined> {
    if (record.role !== 'payer') return undefined;
    const { signer } = this.#o;
    if (signer.setupChannel && !this.#setUp.has(record.fundingKeyIndex)) {
      const terms = channelTerms(record);
      await signer.setupChannel({
        keyIndex: record.fundingKeyIndex,
        fundingOutpoint: terms.fundingOutpoint,
        capacitySat: terms.fundingValueSat,
        oneway: {
          payeeFundingPubkey: terms.payeeFundingPubkey,
          payerScript: terms.payerScript,
          payeeScript: terms.payeeScript,
          expiryHeight: terms.expiryHeight,
          feerateSatPerVb: terms.feerateSatPerVb,
        },
      });
      this.#setUp.add(record.fundingKeyIndex);
    }
    if (effect.purpose === 'refund-spend') return { kind: 'oneway-refund' };
    if (effect.purpose === 'payment' && effect.amountMsat !== undefined) {
      return { kind: 'oneway-payment', stateNumber: record.payment.number + 1n, amountMsat: effect.amountMsat, tipHeight: this.#tip };
    }
    return undefined;
  }

  /**
   * A validating signer stores each payment before it answers, and we store it after: a crash in between
   * leaves the signer one payment ahead, and it would refuse any other payment of that number. Ask it for
   * that same payment again (it signs a byte-identical retry) and take it as the payment it was.
   */
  async #catchUpWithSigner(slot: ChannelSlot): Promise<void> {
    const { signer } = this.#o;
    const record = slot.record as PayerRecord;
    if (!signer.onewaySignedState || record.phase !== 'open') return;
    let signed: { stateNumber: bigint; amountMsat: bigint } | undefined;
    try {
      signed = await signer.onewaySignedState(record.fundingKeyIndex);
    } catch (error) {
      this.#log('warn', `could not compare the payment state with the signer: ${(error as Error).message}`, slot);
      return;
    }
    if (!signed || signed.stateNumber !== record.payment.number + 1n || signed.amountMsat <= record.payment.amountMsat) return;
    this.#log('info', `the signer signed payment ${signed.stateNumber} before the last stop; sending it`, slot);
    await this.#execute(slot, [{ kind: 'sign', purpose: 'payment', tx: paymentTransaction(record, signed.amountMsat).toBuffer(), amountMsat: signed.amountMsat }]);
  }

  /**
   * Run effects in order. A failed commit restores the last durable record and stops the rest. A payment's
   * commit (PIPELINED_PERSISTS) is only started here: the sends and events after it wait for it on
   * slot.pipeline, so nothing leaves before its state is durable, and the next input is taken at once.
   */
  async #execute(slot: ChannelSlot, effects: Effect[]): Promise<void> {
    const { store, signer, chain } = this.#o;
    let deferred = false;
    for (const effect of effects) {
      if (deferred && effect.kind !== 'send' && effect.kind !== 'event') {
        await slot.pipeline;
        deferred = false;
      }
      switch (effect.kind) {
        case 'persist': {
          const record = slot.record;
          const write = [{ key: recordKey(record.role, record.tempChannelId), value: encodeRecord(record) }];
          if (PIPELINED_PERSISTS.has(effect.reason)) {
            this.#pipelineCommit(slot, record, effect.reason, store.commit(write));
            deferred = true;
            break;
          }
          await slot.pipeline;
          if (slot.broken) throw slot.broken;
          try {
            await store.commit(write);
          } catch (error) {
            if (slot.durable) slot.record = slot.durable;
            else this.#forget(slot);
            this.#log('error', `could not store the channel (${effect.reason}); nothing was sent`, slot, 'STORE');
            throw error;
          }
          slot.durable = record;
          this.#index(slot);
          await this.#o.hooks?.afterPersist?.(effect.reason, record);
          break;
        }
        case 'send':
          if (deferred) {
            const { peer } = slot.record;
            const { message } = effect;
            // An acknowledgement covers every payment up to its number: one still waiting for its
            // commit when a later one is queued is left out (fewer frames under load, same meaning).
            if (message.type === 'oneway_pay_ack') slot.latestAck = message;
            slot.pipeline = slot.pipeline.then(() => {
              if (slot.broken) return;
              if (message.type === 'oneway_pay_ack' && slot.latestAck !== message) return;
              this.#send(peer, message);
            });
          } else {
            // Still behind every commit under way: a step that persists nothing (a duplicate's or a
            // resume's ack) speaks for the in-memory record, which may be ahead of what is durable.
            const { peer } = slot.record;
            const { message } = effect;
            slot.pipeline = slot.pipeline.then(() => {
              if (!slot.broken) this.#send(peer, message);
            });
          }
          break;
        case 'sign': {
          const context = await this.#signContext(slot.record, effect);
          const signature = await signer.signInput({
            key: { family: 'funding', index: slot.record.fundingKeyIndex },
            ...(context ? { context } : {}),
            tx: effect.tx,
            inputIndex: 0,
            scriptCode: fundingScriptOf(slot.record),
            valueSat: slot.record.capacitySat,
          });
          await this.#apply(slot, { kind: 'signed', purpose: effect.purpose, signature, ...(effect.amountMsat !== undefined ? { amountMsat: effect.amountMsat } : {}) });
          break;
        }
        case 'sign-funding': {
          const record = slot.record as PayerRecord;
          const funding = {
            tx: Transaction.fromBuffer(Buffer.from(record.fundingTx!)),
            inputs: record.fundingInputs!.map((i) => ({
              owner: 0,
              coin: { outpoint: i.outpoint, valueSat: i.valueSat, pubkey: i.pubkey, key: { family: i.keyFamily, index: i.keyIndex } },
            })),
          } as unknown as FundingTransaction;
          await signFundingInputs(funding, 0, signer);
          await this.#apply(slot, { kind: 'funding-signed', tx: Uint8Array.from(funding.tx.toBuffer()) });
          break;
        }
        case 'select-coins': {
          const wallet = this.#o.wallet;
          let input: PayerInput;
          try {
            if (!wallet) throw new Error('no wallet');
            const { coins, changeScript } = await wallet.selectCoins(effect.amountSat, (slot.record as PayerRecord).feeratePerKw);
            input = { kind: 'coins', coins, changeScript };
          } catch (error) {
            input = { kind: 'coins-failed', message: (error as Error).message };
          }
          await this.#apply(slot, input);
          if (slot.record.phase === 'aborted' && input.kind === 'coins') await wallet?.release(input.coins.map((c) => c.outpoint));
          break;
        }
        case 'release-coins': {
          const inputs = (slot.record as PayerRecord).fundingInputs ?? [];
          await this.#o.wallet?.release(inputs.map((i) => i.outpoint));
          break;
        }
        case 'broadcast': {
          let result;
          try {
            result = await chain.broadcast(effect.tx);
          } catch (error) {
            // Unknown whether it went out: the machine retries the same bytes later.
            this.#log('warn', `broadcast of the ${effect.purpose} failed: ${(error as Error).message}`, slot);
            break;
          }
          if (!result.accepted) this.#log('info', `${effect.purpose} not accepted: ${result.code}`, slot);
          await this.#apply(slot, { kind: 'broadcast-result', purpose: effect.purpose, result });
          break;
        }
        case 'watch':
          this.#byOutpoint.set(outpointKey(effect.outpoint), slot);
          chain.watchOutpoint(effect.outpoint);
          break;
        case 'check-funding': {
          const outpoint = slot.record.fundingOutpoint;
          if (!outpoint) break;
          try {
            const [utxo, tip] = await Promise.all([chain.getUtxo(outpoint), chain.tipHeight()]);
            this.#tip = Math.max(this.#tip, tip);
            await this.#apply(slot, { kind: 'funding-status', utxo, tipHeight: tip });
          } catch (error) {
            this.#log('warn', `funding check failed: ${(error as Error).message}`, slot);
          }
          break;
        }
        case 'event':
          if (deferred) {
            slot.pipeline = slot.pipeline.then(() => {
              if (!slot.broken) this.#emit(slot, effect.event);
            });
          } else {
            this.#emit(slot, effect.event);
          }
          break;
      }
    }
  }

  /**
   * Chain a commit already started onto the slot's pipeline: once it and every earlier one are durable,
   * the record is the durable one and the crash hook runs. A failure breaks the slot: the in-memory record
   * goes back to the last durable one, nothing queued behind it is sent, and later inputs are refused
   * (the store's contract: after STORE_IO, stop, reopen and re-read).
   */
  #pipelineCommit(slot: ChannelSlot, record: OnewayRecord, reason: Extract<Effect, { kind: 'persist' }>['reason'], commit: Promise<void>): void {
    commit.catch(() => undefined); // observed below, in order; never an unhandled rejection
    slot.pipeline = slot.pipeline.then(async () => {
      if (slot.broken) return;
      try {
        await commit;
      } catch (error) {
        slot.broken = error as Error;
        if (slot.durable) slot.record = slot.durable;
        this.#log('error', `could not store the channel (${reason}); nothing more is sent until restart`, slot, 'STORE');
        return;
      }
      slot.durable = record;
      this.#index(slot);
      try {
        await this.#o.hooks?.afterPersist?.(reason, record);
      } catch (error) {
        this.#log('warn', `afterPersist hook failed: ${(error as Error).message}`, slot);
      }
    });
  }

  #forget(slot: ChannelSlot): void {
    this.#slots.delete(bytesToHex(slot.record.tempChannelId));
    this.#armNegotiationRetry(slot); // cancels its timers
  }

  #send(peer: NodeId, message: WireMessage): void {
    this.#o.messenger.send(peer, message).then(
      () => this.#o.hooks?.afterSend?.(message),
      (error) => this.#log('warn', `could not send ${message.type}: ${(error as Error).message}`),
    );
  }

  #emit(slot: ChannelSlot, event: ChannelEvent): void {
    slot.handle.deliver(event);
    for (const listener of this.#listeners) {
      try {
        listener(slot.handle, event);
      } catch {
        // A listener's bug must not stop the channel.
      }
    }
  }

  #log(level: OnewayLogEntry['level'], msg: string, slot?: ChannelSlot, code?: string): void {
    const entry: OnewayLogEntry = { level, msg };
    if (slot) entry.channel = bytesToHex(slot.record.channelId ?? slot.record.tempChannelId).slice(0, 16);
    if (code) entry.code = code;
    this.#o.log?.(entry);
  }
}

function outpointKey(o: OutPoint): string {
  return `${o.txid}:${o.vout}`;
}

/** A node that opens channels and pays (it can also sell, given offers). */
export function createPayer(options: OnewayNodeOptions & { wallet: FundingWallet }): Promise<OnewayNode> {
  return OnewayNode.start(options);
}

/** A node that sells metered services over channels it accepts. */
export function createPayee(options: OnewayNodeOptions & { offers: PayeeOffer[] }): Promise<OnewayNode> {
  return OnewayNode.start(options);
}

export type { PayeeRecord, PayerRecord };

/**
 * ChainPoller: the ChainSource event half ('block' and 'spent' events) for a chain that only answers
 * requests (the simnet over HTTP today; Esplora or bitcoind later). Each poll reads the tip, the hash of
 * every new height and the spend of every watched outpoint, then delivers what changed with the
 * Simnet's semantics:
 *   - one 'block' event per new height, ascending, even when the tip jumps by several blocks;
 *   - a watched outpoint's 'spent' event when its spend is first seen in the mempool (blockHeight
 *     undefined) and once more when it confirms; a spend first seen confirmed is reported once;
 *   - a confirmed spend comes before the 'block' event of its height, as the Simnet orders them.
 * The first poll only takes the tip as a baseline: blocks mined before it produce no events.
 *
 *   - a reorganisation (the hash at a height we reported changed, or the tip went down) gives one
 *     'reorg' event naming the fork height and the disconnected blocks, then 'block' events for the
 *     new chain; watched spends confirmed above the fork are polled again and reported as they now
 *     stand (back in the mempool, confirmed elsewhere, or not reported at all if they vanished: the
 *     'reorg' event tells consumers to re-check).
 * Every poll checks the hash of the last reported block (one extra request) so that a replacement at
 * the same height is seen too. The hashes of the last `maxReorgDepth` blocks are kept; a deeper
 * reorganisation is reported to onError as CHAIN_REORG_TOO_DEEP and handled as a reorg back to the
 * oldest block kept, so consumers still re-check.
 *
 * Differences from the in-process Simnet, by necessity: events arrive up to one interval late, and a
 * spend that happened before watchOutpoint is reported too (a poller cannot tell when it happened, and
 * a late report is what a restarted watcher needs).
 *
 * @example
 * const poller = new ChainPoller(chain, { intervalMs: 1000, onError: (e) => log.warn(e) });
 * poller.subscribe((event) => node.chainEvent(event));
 * poller.watchOutpoint(fundingOutpoint);
 * poller.start();
 */
import type { ChainEvent, OutPoint, SpendInfo } from './port.js';
import { systemClock, type Clock } from '../clock.js';
import { ChainClientError } from './errors.js';

/** The request/response part of a chain a ChainPoller needs. */
export interface PollableChain {
  tipHeight(): Promise<number>;
  /** Display hex of the block at `height` (which is at most the last tipHeight answer). */
  blockHash(height: number): Promise<string>;
  getSpend(outpoint: OutPoint): Promise<SpendInfo | undefined>;
  /**
   * Optional: called for each new block of the best chain, in ascending order, before the watched
   * outpoints are polled (a block-scanning adapter indexes that block's spends here). May be called
   * again for the same block if a poll fails and is retried, so it must be idempotent.
   */
  connectBlock?(height: number, hash: string): Promise<void>;
  /** Optional: called for each block a reorganisation removes, highest first, before connectBlock of the new ones. */
  disconnectBlock?(height: number, hash: string): Promise<void>;
}

export interface ChainPollerOptions {
  clock?: Clock;
  /** Delay between the end of one poll and the start of the next; default 1000 ms. */
  intervalMs?: number;
  /** Failed polls (retried at the next interval) and listener exceptions; never rethrown. */
  onError?: (error: unknown) => void;
  /** While more than one new block is processed in a poll: after each one. */
  onProgress?: (progress: { height: number; tipHeight: number }) => void;
  /** How many recent block hashes to keep for finding a fork; default 100. */
  maxReorgDepth?: number;
}

interface Watch {
  outpoint: OutPoint;
  /** The last spend reported for it, if any. */
  reported: SpendInfo | undefined;
}

/** Events are sorted by (height, rank): a confirmed spend (rank 0) before its block (rank 1). */
interface Pending {
  height: number;
  rank: 0 | 1;
  event: ChainEvent;
}

export class ChainPoller {
  readonly #chain: PollableChain;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #onProgress: ((progress: { height: number; tipHeight: number }) => void) | undefined;
  readonly #maxReorgDepth: number;
  /** Hashes of the last reported blocks, by height (at most maxReorgDepth of them). */
  readonly #hashes = new Map<number, string>();
  readonly #listeners = new Set<(event: ChainEvent) => void>();
  readonly #watched = new Map<string, Watch>();
  /** Height of the last block reported (or of the baseline); undefined before the first poll. */
  #height: number | undefined;
  /** Polls run one after another: each new poll is chained behind this one. */
  #tail: Promise<void> = Promise.resolve();
  #running = false;
  #closed = false;
  #baseline: Promise<void> | undefined;
  #cancelTimer: (() => void) | undefined;

  constructor(chain: PollableChain, options: ChainPollerOptions = {}) {
    if (!chain || typeof chain.tipHeight !== 'function') throw new TypeError('"chain" expected a PollableChain');
    const intervalMs = options.intervalMs ?? 1000;
    if (!Number.isFinite(intervalMs) || intervalMs < 0) throw new RangeError('"intervalMs" expected a number >= 0');
    this.#chain = chain;
    this.#clock = options.clock ?? systemClock;
    this.#intervalMs = intervalMs;
    this.#onError = options.onError ?? (() => {});
    this.#onProgress = options.onProgress;
    const depth = options.maxReorgDepth ?? 100;
    if (!Number.isSafeInteger(depth) || depth < 1) throw new RangeError('"maxReorgDepth" expected an integer >= 1');
    this.#maxReorgDepth = depth;
  }

  /** Height of the last block reported (or of the baseline); undefined before the first poll. */
  get height(): number | undefined {
    return this.#height;
  }

  /** Report spends of this outpoint from the next poll on. */
  watchOutpoint(outpoint: OutPoint): void {
    const key = outpointKey(outpoint);
    if (!this.#watched.has(key)) this.#watched.set(key, { outpoint: { txid: key.slice(0, 64), vout: outpoint.vout }, reported: undefined });
  }

  subscribe(listener: (event: ChainEvent) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('"listener" expected a function');
    const wrapper = (event: ChainEvent): void => listener(event); // distinct identity per subscription
    this.#listeners.add(wrapper);
    return () => {
      this.#listeners.delete(wrapper);
    };
  }

  /**
   * One poll now, after any poll in progress; resolves once its events are delivered. Rejects with the
   * chain's error if the poll fails (nothing is delivered then, and the next poll retries it all).
   */
  poll(): Promise<void> {
    const run = this.#tail.then(() => this.#pollOnce());
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Poll now and then every intervalMs after each poll ends; failures go to onError. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#tick();
  }

  /**
   * For adapters: start polling on first use (a watch or a subscription) unless closed. The first poll
   * takes the baseline tip; `baseline` resolves once it is done (or failed), so an adapter's own
   * broadcasts and mining can wait for it and their blocks and spends then produce events.
   */
  startOnce(): void {
    if (this.#closed || this.#baseline || this.#running) return;
    this.#running = true;
    // The baseline is the first poll of the timer loop: the next one comes an interval after it.
    this.#baseline = this.poll()
      .catch((e: unknown) => this.#report(e))
      .finally(() => {
        if (this.#running && !this.#cancelTimer) this.#cancelTimer = this.#clock.setTimer(this.#intervalMs, () => this.#tick());
      });
  }

  /** Resolved once the baseline poll is done (at once if polling never started). */
  get baseline(): Promise<void> {
    return this.#baseline ?? Promise.resolve();
  }

  /** Stop for good: startOnce does nothing from now on. */
  close(): void {
    this.#closed = true;
    this.stop();
  }

  /** Cancel the timer; a poll in progress still delivers its events. */
  stop(): void {
    this.#running = false;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }

  #tick(): void {
    this.#cancelTimer = undefined;
    this.poll()
      .catch((e: unknown) => this.#report(e))
      .finally(() => {
        if (this.#running && !this.#cancelTimer) this.#cancelTimer = this.#clock.setTimer(this.#intervalMs, () => this.#tick());
      });
  }

  async #pollOnce(): Promise<void> {
    // Read everything first and change no state of ours until all reads succeed, so a failed poll
    // loses nothing (the adapter's connect/disconnect hooks are idempotent for the same reason).
    const tip = await this.#chain.tipHeight();
    if (!Number.isSafeInteger(tip) || tip < 0) throw new RangeError(`chain tipHeight returned ${String(tip)}`);
    if (this.#height === undefined) {
      const hash = await this.#chain.blockHash(tip);
      this.#height = tip;
      this.#hashes.set(tip, hash);
      return; // the baseline: nothing to report
    }

    // Find the fork: the highest height at or below both tips whose hash we reported and still see.
    const seen = new Map<number, string>();
    let fork = Math.min(this.#height, tip);
    let tooDeep = false;
    for (;;) {
      const known = this.#hashes.get(fork);
      if (known === undefined) {
        tooDeep = true;
        break;
      }
      const hash = await this.#chain.blockHash(fork);
      if (hash === known) break;
      seen.set(fork, hash);
      if (fork === 0) {
        tooDeep = true;
        break;
      }
      fork--;
    }
    if (tooDeep) fork = Math.min(...this.#hashes.keys()) - 1;
    const disconnected = [...this.#hashes.entries()].filter(([h]) => h > fork).sort((x, y) => y[0] - x[0]).map(([height, hash]) => ({ height, hash }));

    const connected: Array<{ height: number; hash: string }> = [];
    for (let height = fork + 1; height <= tip; height++) {
      connected.push({ height, hash: seen.get(height) ?? (await this.#chain.blockHash(height)) });
    }
    for (const block of disconnected) await this.#chain.disconnectBlock?.(block.height, block.hash);
    for (const block of connected) {
      await this.#chain.connectBlock?.(block.height, block.hash);
      if (connected.length > 1) this.#progress(block.height, tip);
    }

    const pending: Pending[] = connected.map(({ height, hash }) => ({ height, rank: 1, event: { type: 'block', height, hash } }));
    const updates: Array<[Watch, SpendInfo | undefined]> = [];
    for (const watch of [...this.#watched.values()]) {
      const confirmed = watch.reported?.blockHeight;
      if (confirmed !== undefined && confirmed <= fork) continue; // confirmed below any reorg: final
      const spend = await this.#chain.getSpend(watch.outpoint);
      updates.push([watch, spend]);
      // After a reorg above its confirmation, a spend is reported again even if it looks the same.
      const stale = confirmed !== undefined && confirmed > fork;
      if (!spend || (!stale && watch.reported && sameSpend(watch.reported, spend))) continue;
      // An unconfirmed spend sorts after every block of this poll.
      const height = spend.blockHeight ?? Infinity;
      pending.push({ height, rank: 0, event: { type: 'spent', outpoint: { ...watch.outpoint }, spend: { ...spend } } });
    }

    // Commit: our view moves to the new chain.
    for (const { height } of disconnected) this.#hashes.delete(height);
    for (const { height, hash } of connected) this.#hashes.set(height, hash);
    for (const height of this.#hashes.keys()) if (height <= tip - this.#maxReorgDepth) this.#hashes.delete(height);
    this.#height = tip;
    // A vanished mempool spend is forgotten, so a later spend is reported afresh.
    for (const [watch, spend] of updates) watch.reported = spend;
    if (tooDeep) {
      this.#report(new ChainClientError('CHAIN_REORG_TOO_DEEP', `reorganisation deeper than the ${this.#maxReorgDepth} blocks kept; treated as a fork at ${fork}`));
    }
    if (disconnected.length > 0) this.#deliver({ type: 'reorg', forkHeight: fork, disconnected });
    pending.sort((a, b) => a.height - b.height || a.rank - b.rank);
    for (const { event } of pending) this.#deliver(event);
  }

  #progress(height: number, tipHeight: number): void {
    try {
      this.#onProgress?.({ height, tipHeight });
    } catch (e) {
      this.#report(e);
    }
  }

  #deliver(event: ChainEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (e) {
        this.#report(e);
      }
    }
  }

  #report(error: unknown): void {
    try {
      this.#onError(error);
    } catch {
      // An onError that throws must not stop the poller either.
    }
  }
}

function sameSpend(a: SpendInfo, b: SpendInfo): boolean {
  return a.txid === b.txid && a.inputIndex === b.inputIndex && a.blockHeight === b.blockHeight;
}

function outpointKey(outpoint: OutPoint): string {
  if (!outpoint || typeof outpoint.txid !== 'string' || !/^[0-9a-fA-F]{64}$/.test(outpoint.txid)) {
    throw new TypeError('"outpoint.txid" expected 64 hex characters');
  }
  if (!Number.isSafeInteger(outpoint.vout) || outpoint.vout < 0 || outpoint.vout > 0xffffffff) {
    throw new TypeError('"outpoint.vout" expected a uint32');
  }
  return `${outpoint.txid.toLowerCase()}:${outpoint.vout}`;
}

/**
 * What the crash harness's runs share (./crash-harness.ts drives them; ./crash-oneway.ts and
 * ./crash-rsmc.ts are the two kinds): the seeded PRNG, the run context, reading a dead party's store and
 * its TRICKLE_TRACE file, the log of every transaction broadcast to the simnet, and the crash points.
 */
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transaction } from 'bitcoinjs-lib';
import type { Simnet } from '../../src/chain/simnet/index.js';
import type { OutPoint } from '../../src/chain/port.js';
import { hashToTxid } from '../../src/onchain/tx.js';
import { jsonLine } from '../../src/cli/common.js';
import { LmdbStore } from '../../src/store/lmdb.js';
import type { Event, Life, Pulse } from './crash-process.js';

/** sfc32: small, fast, and the same sequence for the same seed on every platform. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('"items" expected a non-empty array');
    return items[Math.floor(this.next() * items.length)]!;
  }
}

/** The seed of run `index` of a harness started with `seed` (so one run can be replayed alone). */
export function runSeed(seed: number, index: number): number {
  let h = (seed ^ 0x5bd1e995) >>> 0;
  h = Math.imul(h ^ (index + 0x27d4eb2f), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Every transaction handed to the simnet (accepted or not), by the outpoints it spends. */
export class BroadcastLog {
  readonly #byOutpoint = new Map<string, Array<{ txid: string; tx: Transaction; accepted: boolean }>>();

  /** Wrap `simnet.broadcast` (the served simnet calls it for every client) to record each attempt. */
  static attach(simnet: Simnet): BroadcastLog {
    const log = new BroadcastLog();
    const broadcast = simnet.broadcast.bind(simnet);
    simnet.broadcast = async (raw) => {
      const result = await broadcast(raw);
      try {
        const tx = Transaction.fromBuffer(Buffer.from(raw));
        for (const input of tx.ins) {
          const key = `${hashToTxid(input.hash)}:${input.index}`;
          const list = log.#byOutpoint.get(key) ?? [];
          list.push({ txid: tx.getId(), tx, accepted: result.accepted });
          log.#byOutpoint.set(key, list);
        }
      } catch {
        // not a transaction: the simnet refused it
      }
      return result;
    };
    return log;
  }

  spending(outpoint: OutPoint): Array<{ txid: string; tx: Transaction; accepted: boolean }> {
    return this.#byOutpoint.get(`${outpoint.txid}:${outpoint.vout}`) ?? [];
  }
}

/** Where a party was killed: its own crash hook (TRICKLE_CRASH_AT) or the parent at a random moment. */
export type Injection = { side: string; at: string };

export interface RunContext {
  index: number;
  seed: number;
  rng: Rng;
  /** The run's own directory (data directories, trace files). */
  dir: string;
  brokerUrl: string;
  chainFlags: string[];
  simnet: Simnet;
  broadcasts: BroadcastLog;
  pulse: Pulse;
  /** Kills this run aims at (each one that fires counts). */
  targetInjections: number;
  /** Give up (a violation: the run is stuck) after this long in all… */
  timeoutMs: number;
  /** …or after this long without a line from any of its processes. */
  idleTimeoutMs: number;
  startedMs: number;
  violation(text: string): void;
}

export interface RunStats {
  /** What the run was ("dual-funded, 30 payments, unilateral close by B"). */
  label: string;
  injections: Injection[];
  payments: number;
  /** Every process of the run, in order (for the log of a failed run). */
  lives: Life[];
}

/** What each process of a run printed, for a run kept after a violation. */
export function runLog(lives: readonly Life[]): string {
  return lives.map((l) => [
    `== ${l.name} (pid ${l.pid}, ${l.crashAt ? `armed at ${l.crashAt}, ` : ''}${ending(l)})`,
    ...l.events.map((e) => JSON.stringify(e)),
    ...l.stderr.map((line) => `stderr: ${line}`),
  ].join('\n')).join('\n');
}

/** Lines of a TRICKLE_TRACE file (a missing file is no lines: the process committed nothing yet). */
export async function readTrace(path: string): Promise<Event[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const lines: Event[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    // A SIGKILL can cut the last line short only inside write(2), which appendFileSync does whole.
    try {
      lines.push(JSON.parse(line) as Event);
    } catch {
      lines.push({ reason: 'unparsable', line });
    }
  }
  return lines;
}

/**
 * Add what a dead party had on disk to its trace, as a line with reason 'on-disk'. A SIGKILL between a
 * commit and its trace line loses the line, not the commit: the restarted process then goes on from (and
 * may send) a state the trace never showed. Written at the death, before the restart, so the order holds.
 */
export async function traceOnDisk(tracePath: string, fields: Record<string, unknown>): Promise<void> {
  await appendFile(tracePath, `${jsonLine({ reason: 'on-disk', ...fields })}\n`);
}

/** The records under `prefix` in a party's store, decoded: only while no process has it open. */
export async function readRecords<R>(dataDir: string, prefix: string, decode: (raw: Uint8Array) => R): Promise<R[]> {
  const store = await LmdbStore.open({ path: join(dataDir, 'channels') });
  try {
    return (await store.list(prefix)).map((e) => decode(e.value));
  } finally {
    await store.close();
  }
}

/** A crash point for TRICKLE_CRASH_AT: a persist reason or `sent:<type>`, and how many of them to let by. */
export interface CrashPoint {
  at: string;
  /** The largest sensible occurrence count in the phase at hand (the hook fires at a random one up to it). */
  maxNth: number;
}

export function crashSpec(rng: Rng, points: readonly CrashPoint[]): string {
  const point = rng.pick(points);
  return `${point.at}:${rng.int(1, Math.max(1, point.maxNth))}`;
}

/**
 * Why a run should give up: past its deadline, or nothing printed by any of its processes for
 * `idleTimeoutMs` (a channel that waits for something that will never come); undefined while it may go on.
 */
export function stuckReason(ctx: RunContext, lives: readonly Life[]): string | undefined {
  const now = performance.now();
  if (now - ctx.startedMs > ctx.timeoutMs) return `no end after ${ctx.timeoutMs} ms`;
  const last = Math.max(ctx.startedMs, ...lives.map((l) => l.lastActivityMs));
  if (now - last > ctx.idleTimeoutMs) return `no progress for ${ctx.idleTimeoutMs} ms`;
  return undefined;
}

/** Why a life ended, for messages. */
export function ending(life: Life): string {
  const e = life.exited;
  if (!e) return 'still running';
  if (e.signal === 'SIGKILL') return life.killedByParent ? 'killed by the harness' : `killed by its hook at ${life.crashAt}`;
  return e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
}

/** A bigint from a JSON line field (decimal string or number); undefined when absent. */
export function big(value: unknown): bigint | undefined {
  if (typeof value === 'string' && /^\d+$/.test(value)) return BigInt(value);
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  return undefined;
}

/**
 * Kills at random moments: while the run wants more injections, one SIGKILL at a time is scheduled for
 * a random party's current life, a random 0.3 to 2.5 s ahead (crash hooks are armed separately, when a
 * life starts; one that never fires costs nothing).
 */
export class RandomKills {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    private readonly ctx: RunContext,
    private readonly current: () => Life[],
    private readonly fired: () => number,
  ) {}

  /** Call whenever the run's state changes. */
  tick(): void {
    if (this.#stopped || this.#timer || this.fired() >= this.ctx.targetInjections) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const alive = this.current().filter((l) => l.running);
      if (!this.#stopped && alive.length > 0 && this.fired() < this.ctx.targetInjections) this.ctx.rng.pick(alive).kill();
      this.ctx.pulse.notify();
    }, this.ctx.rng.int(300, 2500));
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}

const DEBUG = process.env['CRASH_DEBUG'] !== undefined;
/** CRASH_DEBUG=1: what the runs do, on stderr. */
export function debug(ctx: RunContext, text: string): void {
  if (DEBUG) process.stderr.write(`[run ${ctx.index} +${Math.round(performance.now() - ctx.startedMs)}ms] ${text}\n`);
}

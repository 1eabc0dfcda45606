/**
 * The crash-injection harness (issue 8): channel lives run as real `trickle` processes on an embedded
 * MQTT broker and a served simnet, with LMDB data directories; parties are SIGKILLed at random persistence
 * points, message boundaries and moments, restarted, and the invariants checked after every restart and at
 * the end of each run. One run is one channel's life:
 *
 *  - one-way (./crash-oneway.ts): `trickle provider` and `trickle pay`;
 *  - revocable (./crash-rsmc.ts): two `trickle peer` nodes driven over their control sockets.
 *
 * Used by test/crash-harness.test.ts and `npm run soak` (bench/soak.ts). Never throws for a broken
 * invariant: each is a line in `violations`, prefixed with the run and its seed, so a run can be replayed
 * with `npm run soak -- --runs 1 --seed S --first-run I` (kills at a random moment depend on timing, so a
 * replay repeats the choices, not necessarily the interleaving).
 */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Simnet } from '../../src/chain/simnet/index.js';
import { serveSimnet } from '../../src/chain/simnet/server.js';
import { startEmbeddedBroker } from '../../src/transport/mqtt/broker.js';
import { killAllChildren, Pulse, removeOnExit } from './crash-process.js';
import { BroadcastLog, Rng, runLog, runSeed, type RunContext, type RunStats } from './crash-common.js';
import { runOneway } from './crash-oneway.js';
import { runRsmc } from './crash-rsmc.js';

export type RunKind = 'oneway' | 'rsmc';

/** The RSMC open liveness failures reported as `stalls` (HarnessResult). */
const OPEN_STALL = /liveness: (the open made no progress|A cannot abandon its open|an earlier open still holds [AB]'s coins)/;

export interface HarnessOptions {
  /** How many runs (at most, with `injections`). */
  runs: number;
  /** Stop starting runs once this many kills have happened (the runs under way still finish). */
  injections?: number;
  seed: number;
  /** Index of the first run (replaying run I of a seed: firstRun I, runs 1). Default 0. */
  firstRun?: number;
  /** Which kinds, alternating by run index (default both). */
  kinds?: readonly RunKind[];
  /** Runs at a time (default 2). */
  concurrency?: number;
  /** Kills each run aims at: [min, max] (default [4, 8]). */
  injectionsPerRun?: readonly [number, number];
  /** A run that has not finished after this long is a violation (default 180 s)… */
  runTimeoutMs?: number;
  /** …and so is one whose processes print nothing for this long (default 30 s). */
  idleTimeoutMs?: number;
  /** Keep each run with a violation here: its data directories, traces and every process's output. */
  keepDir?: string;
  /** Progress after each run. */
  onRun?: (run: RunReport) => void;
}

export interface RunReport {
  index: number;
  kind: RunKind;
  label: string;
  seed: number;
  injections: number;
  points: string[];
  violations: string[];
  stalls: string[];
  durationMs: number;
}

export interface HarnessResult {
  runs: number;
  injections: number;
  violations: string[];
  /**
   * Known liveness failures, kept apart from the invariants: an RSMC open interrupted by a kill can stall
   * (the opener holds funding_signed, the accepter no longer has the channel, and the opener cannot abandon
   * it, so its coins stay reserved). Nothing is on chain and no money moves; see docs/performance.md.
   */
  stalls: string[];
  /** Kills by where they happened ("payer@payment-signed:3", "A@random", …). */
  points: Record<string, number>;
  byKind: Record<RunKind, { runs: number; injections: number }>;
  durationMs: number;
}

/** Prefer tmpfs: a SIGKILL loses nothing the page cache holds, so disk buys no realism, only latency. */
function scratchRoot(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

export async function runCrashHarness(options: HarnessOptions): Promise<HarnessResult> {
  const started = performance.now();
  const kinds = options.kinds ?? ['oneway', 'rsmc'];
  const [minInj, maxInj] = options.injectionsPerRun ?? [4, 8];
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const firstRun = options.firstRun ?? 0;
  const result: HarnessResult = {
    runs: 0,
    injections: 0,
    violations: [],
    stalls: [],
    points: {},
    byKind: { oneway: { runs: 0, injections: 0 }, rsmc: { runs: 0, injections: 0 } },
    durationMs: 0,
  };
  const root = await mkdtemp(join(scratchRoot(), 'trickle-crash-'));
  const forget = removeOnExit(root);
  const simnet = new Simnet();
  const broadcasts = BroadcastLog.attach(simnet);
  const chain = await serveSimnet(simnet, { autoMine: { intervalMs: 40 } });
  const pulse = new Pulse();
  let next = firstRun;
  const end = firstRun + options.runs;

  const worker = async (): Promise<void> => {
    while (next < end && (options.injections === undefined || result.injections < options.injections)) {
      const index = next++;
      const kind = kinds[index % kinds.length]!;
      const seed = runSeed(options.seed, index);
      const rng = new Rng(seed);
      const violations: string[] = [];
      const stalls: string[] = [];
      const runStarted = performance.now();
      const dir = await mkdtemp(join(root, `${kind}-${index}-`));
      // A broker per run: killed parties never withdraw their retained announcements and statuses, and on
      // one broker for the whole soak they piled up (some 3,000 after 1,700 runs) until a new subscriber
      // received them so slowly that a payer's 10 s wait for its provider's offer ran out (NO_OFFER).
      const broker = await startEmbeddedBroker();
      const ctx: RunContext = {
        index,
        seed,
        rng,
        dir,
        brokerUrl: broker.url,
        chainFlags: ['--chain', 'simnet', '--simnet-url', chain.url],
        simnet,
        broadcasts,
        pulse,
        targetInjections: rng.int(minInj, maxInj),
        timeoutMs: options.runTimeoutMs ?? 180_000,
        idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
        startedMs: runStarted,
        violation: (text) => (OPEN_STALL.test(text) ? stalls : violations).push(text),
      };
      let stats: RunStats = { label: '', injections: [], payments: 0, lives: [] };
      try {
        stats = kind === 'oneway' ? await runOneway(ctx) : await runRsmc(ctx);
      } catch (error) {
        violations.push(`${kind} run ${index} (seed ${seed}): the harness failed: ${(error as Error).stack ?? String(error)}`);
      } finally {
        await broker.close();
      }
      if (violations.length > 0 && options.keepDir) {
        const kept = join(options.keepDir, `${kind}-run-${index}-seed-${seed}`);
        await cp(dir, kept, { recursive: true }).catch(() => undefined);
        await writeFile(join(kept, 'processes.log'), `${violations.join('\n')}\n\n${runLog(stats.lives)}\n`).catch(() => undefined);
      }
      await rm(dir, { recursive: true, force: true });
      result.runs++;
      result.injections += stats.injections.length;
      result.byKind[kind].runs++;
      result.byKind[kind].injections += stats.injections.length;
      const points = stats.injections.map((i) => `${i.side}@${i.at}`);
      for (const p of points) {
        const key = p.replace(/:\d+$/, '');
        result.points[key] = (result.points[key] ?? 0) + 1;
      }
      result.violations.push(...violations);
      result.stalls.push(...stalls);
      options.onRun?.({ index, kind, label: stats.label, seed, injections: stats.injections.length, points, violations, stalls, durationMs: Math.round(performance.now() - runStarted) });
    }
  };

  try {
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
  } finally {
    killAllChildren();
    await chain.close();
    await rm(root, { recursive: true, force: true });
    forget();
  }
  result.durationMs = Math.round(performance.now() - started);
  return result;
}

/**
 * Crash injection (issue 8): one-way channels (`trickle provider` + `trickle pay`) and revocable ones (two
 * `trickle peer` nodes) as real processes on MQTT and a served simnet with LMDB stores; parties SIGKILLed
 * at random persist points, message boundaries and moments, restarted, and checked after every restart
 * and at the end of each channel's life (test/helpers/crash-harness.ts lists the invariants). At least
 * 200 kills that really happened, both kinds of channel, both roles, and not one broken invariant.
 *
 * CRASH_SEED=S reproduces a run's choices (printed on failure); `npm run soak -- --runs N` runs more.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCrashHarness } from './helpers/crash-harness.js';

const MIN_INJECTIONS = 200;

test(`at least ${MIN_INJECTIONS} SIGKILLs of payer, payee and both revocable peers: nothing lost, nothing twice, no revoked state out`, async (t) => {
  const seed = process.env['CRASH_SEED'] !== undefined ? Number(process.env['CRASH_SEED']) : 20_251_121;
  const result = await runCrashHarness({ runs: 400, injections: MIN_INJECTIONS, seed, concurrency: 2 });
  const summary = `seed ${seed}: ${result.runs} runs, ${result.injections} kills in ${(result.durationMs / 1000).toFixed(0)} s ` +
    `(one-way ${result.byKind.oneway.injections}, revocable ${result.byKind.rsmc.injections}); by point: ${JSON.stringify(result.points)}`;
  // Known: an RSMC open interrupted by a kill can stall (HarnessResult.stalls); reported, not hidden.
  for (const stall of result.stalls) t.diagnostic(`open stall (known liveness gap): ${stall}`);
  assert.deepEqual(result.violations, [], summary);
  assert.ok(result.injections >= MIN_INJECTIONS, summary);
  // Both kinds of channel, both roles of each, and both crash hooks and kills at random moments.
  const sides = new Set(Object.keys(result.points).map((p) => p.split('@')[0]));
  for (const side of ['payer', 'payee', 'A', 'B']) assert.ok(sides.has(side), `${side} was killed (${summary})`);
  const random = Object.entries(result.points).filter(([p]) => p.endsWith('@random')).reduce((n, [, c]) => n + c, 0);
  assert.ok(random > 0 && random < result.injections, `kills at random moments and at hooks (${summary})`);
});

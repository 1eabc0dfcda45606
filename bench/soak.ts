/**
 * `npm run soak -- --runs N [--seed S]`: the crash-injection harness (test/helpers/crash-harness.ts) for
 * as many channel lives as asked — one-way and revocable alternately, each with several SIGKILLs of its
 * processes at random persist points, message boundaries and moments. Prints a line per run (stderr),
 * then `soak: runs N, injections K, violations V, open stalls O (seed S, T s)` and each violation and
 * stall; exit code 1 if any violation.
 *
 *   --seed S           the runs' choices (default: random; printed, so a soak can be repeated)
 *   --first-run I      start at run I of that seed (`--runs 1 --first-run I` replays one run's choices;
 *                      kills at random moments still depend on timing)
 *   --injections K     stop starting runs once K kills happened (the test's setting)
 *   --kinds oneway,rsmc   which channel kinds (default both, alternating)
 *   --concurrency C    runs at a time (default twice the cores: a run waits on payment pacing, blocks and
 *                      restarts much of the time; on the 2-core machine 4 at a time did 4.0 s a run, 2 did ~6)
 *   --keep DIR         keep each run with a violation in DIR: data directories, traces, every process's output
 *   --json             one JSON object (runs, injections, violations, kills by point) instead of text
 *
 * `npm run soak -- --channels N --seconds S [--json]`: the memory soak instead (bench/provider-rig.ts):
 * one provider process with N open one-way channels, each paid by its own device (payer processes over the
 * embedded broker) for S seconds, the provider's RSS and heap sampled every second. Prints a line every
 * 10 s, then `memory soak: channels N, payments P in T s, provider RSS first/max/last …, growth G MB`.
 * Growth is the mean of the last window less the mean of the first after the warm-up (growthOf); a leak
 * shows as growth that rises with S, a steady state as noise around 0. Run 600 s or more.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { runCrashHarness, type RunKind } from '../test/helpers/crash-harness.js';
import { growthOf, providerSoak } from './provider-rig.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runs: { type: 'string', default: '20' },
    seed: { type: 'string' },
    'first-run': { type: 'string', default: '0' },
    injections: { type: 'string' },
    kinds: { type: 'string', default: 'oneway,rsmc' },
    concurrency: { type: 'string' },
    keep: { type: 'string' },
    json: { type: 'boolean', default: false },
    channels: { type: 'string' },
    seconds: { type: 'string' },
  },
  strict: true,
});

const int = (name: string, text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) {
    process.stderr.write(`soak: --${name} expects a non-negative integer\n`);
    process.exit(2);
  }
  return Number(text);
};

if (values.channels !== undefined || values.seconds !== undefined) {
  const channels = int('channels', values.channels ?? '1000')!;
  const seconds = int('seconds', values.seconds ?? '600')!;
  if (channels < 1 || seconds < 1) {
    process.stderr.write('soak: --channels and --seconds expect positive integers\n');
    process.exit(2);
  }
  const result = await providerSoak({ channels, seconds, log: (line) => process.stderr.write(`${line}\n`) });
  const rss = result.rssSamplesMb;
  const summary = {
    channels: result.channels,
    seconds,
    payments: result.payments,
    providerRssFirstMb: rss[0] ?? Number.NaN,
    providerRssMaxMb: Math.max(...rss),
    providerRssLastMb: rss.at(-1) ?? Number.NaN,
    providerRssGrowthMb: result.growthMb,
    providerHeapGrowthMb: growthOf(result.heapSamplesMb),
  };
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    const mb = (x: number): string => `${x.toFixed(1)} MB`;
    process.stdout.write(`memory soak: channels ${summary.channels}, payments ${summary.payments} in ${seconds} s, provider RSS first ${mb(summary.providerRssFirstMb)}, ` +
      `max ${mb(summary.providerRssMaxMb)}, last ${mb(summary.providerRssLastMb)}; growth ${mb(summary.providerRssGrowthMb)} (heap ${mb(summary.providerHeapGrowthMb)})\n`);
  }
  process.exit(0);
}
const kinds = values.kinds.split(',');
if (kinds.length === 0 || kinds.some((k) => k !== 'oneway' && k !== 'rsmc')) {
  process.stderr.write('soak: --kinds expects oneway, rsmc or both (comma-separated)\n');
  process.exit(2);
}

const seed = int('seed', values.seed) ?? Math.floor(Math.random() * 2 ** 32);
const injections = int('injections', values.injections);
const result = await runCrashHarness({
  runs: int('runs', values.runs)!,
  seed,
  firstRun: int('first-run', values['first-run'])!,
  kinds: kinds as RunKind[],
  concurrency: Math.max(1, int('concurrency', values.concurrency) ?? 2 * availableParallelism()),
  ...(injections !== undefined && { injections }),
  ...(values.keep !== undefined && { keepDir: values.keep }),
  onRun: (r) => {
    if (values.json) return;
    process.stderr.write(`run ${r.index} ${r.kind} (${r.label}) seed ${r.seed}: ${r.injections} kills [${r.points.join(' ')}] ${r.durationMs} ms` +
      `${r.violations.length ? ` — ${r.violations.length} VIOLATION(S)` : ''}${r.stalls.length ? ` — ${r.stalls.length} open stall(s)` : ''}\n`);
  },
});
if (values.json) process.stdout.write(`${JSON.stringify({ seed, ...result })}\n`);
else {
  process.stdout.write(`soak: runs ${result.runs}, injections ${result.injections}, violations ${result.violations.length}, open stalls ${result.stalls.length} ` +
    `(seed ${seed}, ${(result.durationMs / 1000).toFixed(1)} s)\n`);
  for (const v of result.violations) process.stdout.write(`  violation: ${v}\n`);
  for (const v of result.stalls) process.stdout.write(`  open stall (known, not an invariant): ${v}\n`);
}
process.exit(result.violations.length > 0 ? 1 : 0);

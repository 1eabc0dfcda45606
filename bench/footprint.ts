/**
 * Bench section 6, footprint (issue 8), the parts that are not one device's: a provider holding 1,000
 * channels (quick: 100), and the install size of the production dependencies.
 *
 * The provider rig is bench/provider-rig.ts: the provider in its own process on an LmdbStore, 1,000 payer
 * devices (own identity, MQTT connection and Noise session each) in two other processes, the broker and the
 * simnet in this one. Every payer pays its channel one payment after another for PAY_MS; the provider's
 * memory is read in its own process after a full GC, against the same process measured with 0 channels
 * right after it started.
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { lstatSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { chooseSecp256k1 } from '../src/crypto/native.js';
import { REPO_ROOT } from '../test/helpers/bundle.js';
import { round, runMeta, sleep, type BenchOptions, type Figure, type Section } from './lib.js';
import { startProviderRig } from './provider-rig.js';

const FULL_CHANNELS = 1000;
const QUICK_CHANNELS = 100;
const PAY_MS = 30_000;
const QUICK_PAY_MS = 10_000;

// ---- install size ----

/** Bytes on disk (allocated blocks, as du counts them) under `dir`, not following links, skipping `skip` names. */
function diskBytes(dir: string, skip: ReadonlySet<string>): number {
  let total = 0;
  const walk = (path: string): void => {
    const st = lstatSync(path);
    total += st.blocks * 512;
    if (!st.isDirectory()) return;
    for (const name of readdirSync(path)) if (!skip.has(name)) walk(join(path, name));
  };
  walk(dir);
  return total;
}

interface InstallSize {
  prodBytes: number;
  packages: number;
  biggest: Array<{ name: string; bytes: number }>;
  /**
   * Listed packages that no listed package (nor our package.json) depends on except as an optional peer:
   * npm lists them because they are installed (as our dev dependencies), but a consumer's install would
   * not fetch them (npm installs no optional peer by itself).
   */
  optionalPeers: Array<{ name: string; bytes: number }>;
  allBytes: number;
}

/**
 * Every package `npm ls --omit=dev --all --parseable` lists (each path once), each counted without its own
 * nested node_modules (those packages are listed themselves); and all of node_modules for context
 * (without node_modules/.cache, which holds build caches and bench bundles, not packages).
 */
function installSize(): InstallSize {
  const ls = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO_ROOT, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  // npm ls exits non-zero on an extraneous or invalid package but still lists the tree.
  const paths = [...new Set(ls.stdout.split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && l !== REPO_ROOT.replace(/\/$/, '')))];
  if (paths.length === 0) throw new Error(`npm ls listed nothing (exit ${ls.status}): ${ls.stderr.slice(0, 300)}`);
  const sizes = paths.map((path) => ({ name: path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length), bytes: diskBytes(path, new Set(['node_modules'])) }));
  const byName = new Map<string, number>();
  for (const { name, bytes } of sizes) byName.set(name, (byName.get(name) ?? 0) + bytes);
  const biggest = [...byName].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes).slice(0, 5);
  type Manifest = { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
  const manifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
  const required = new Set<string>();
  for (const dir of [REPO_ROOT, ...paths]) {
    const m = manifest(dir);
    for (const name of [...Object.keys(m.dependencies ?? {}), ...Object.keys(m.optionalDependencies ?? {})]) required.add(name);
  }
  const optionalPeers = sizes.filter(({ name }) => !required.has(name));
  return {
    prodBytes: sizes.reduce((n, s) => n + s.bytes, 0),
    packages: paths.length,
    biggest,
    optionalPeers,
    allBytes: diskBytes(join(REPO_ROOT, 'node_modules'), new Set(['.cache'])),
  };
}

// ---- the section ----

const mb = (bytes: number): number => bytes / (1024 * 1024);

async function providerFigures(opts: BenchOptions): Promise<Figure[]> {
  const want = opts.quick ? QUICK_CHANNELS : FULL_CHANNELS;
  const payMs = opts.quick ? QUICK_PAY_MS : PAY_MS;
  const mode = opts.quick ? ` [quick: ${want} channels, not 1,000]` : '';
  opts.log(`provider with ${want} channels: starting the rig`);
  const rig = await startProviderRig({ channels: want, log: opts.log });
  try {
    const n = rig.channels;
    const payers = `${n} payer devices in ${rig.payerProcesses} other process${rig.payerProcesses > 1 ? 'es' : ''}, each its own identity, MQTT connection and Noise session, MemoryStores`;
    opts.log(`  paying across all ${n} channels for ${payMs / 1000} s`);
    const paid = await rig.pay(payMs);
    if (paid.failed > 0) opts.log(`  ${paid.failed} payments failed: ${paid.errors.join('; ')}`);
    const perSec = paid.payments / (paid.elapsedMs / 1000);
    const hot = await rig.memory(false);
    await sleep(1000);
    const after = await rig.memory(true);
    const verifyPerSec = await rig.verifyPerSec(opts.quick ? 500 : 2000);
    const stats = await rig.stats();
    opts.log(
      `  ${paid.payments} payments acknowledged in ${(paid.elapsedMs / 1000).toFixed(1)} s (${perSec.toFixed(0)}/s, p50 ${paid.p50Ms.toFixed(0)} ms, p99 ${paid.p99Ms.toFixed(0)} ms); ` +
        `CPU: provider ${paid.providerCpuPercent.toFixed(0)} %, busiest payer process ${paid.payersCpuPercent.toFixed(0)} %, broker + simnet process ${paid.brokerCpuPercent.toFixed(0)} %, load average ${paid.loadAverage.toFixed(1)} on ${cpus().length} cores; ` +
        `${paid.writeTransactions} LMDB write transactions for ${paid.providerPayments} payments stored`,
    );
    opts.log(`  provider RSS ${hot.rssMb.toFixed(1)} MB at the end of the payments, ${after.rssMb.toFixed(1)} MB after a GC (heap ${after.heapUsedMb.toFixed(1)} MB); idle ${rig.idle.rssMb.toFixed(1)} MB (heap ${rig.idle.heapUsedMb.toFixed(1)} MB); session ${JSON.stringify(stats.session)}`);
    const logged = Object.entries(stats.log);
    if (logged.length > 0) opts.log(`  provider log: ${logged.map(([k, v]) => `${k} ×${v}`).join(', ')}`);

    const figures: Figure[] = [
      {
        key: 'provider1000Channels',
        label: `one-way channels open at the provider (target of the rig: ${want})${mode}`,
        value: n,
        unit: 'channels',
        ...(n < want ? { why: `only ${n} of ${want} channels opened` } : {}),
      },
      {
        key: 'provider1000RssMb',
        label: `provider process RSS with ${n} open channels, after ${payMs / 1000} s of payments and a full GC${mode}`,
        value: round(after.rssMb),
        unit: 'MB',
        ceiling: { label: 'the same provider process idle with 0 channels (after start, full GC)', value: round(rig.idle.rssMb), unit: 'MB' },
      },
      {
        key: 'provider1000HeapMb',
        label: `provider JS heap in use with ${n} open channels, after payments and a full GC${mode}`,
        value: round(after.heapUsedMb),
        unit: 'MB',
        ceiling: { label: 'the same provider idle with 0 channels', value: round(rig.idle.heapUsedMb), unit: 'MB' },
      },
      {
        key: 'provider1000HeapKbPerChannel',
        label: `provider heap per open channel: (heap − idle heap) ÷ ${n} channels (record, session, MQTT and chain watch state)${mode}`,
        value: round(((after.heapUsedMb - rig.idle.heapUsedMb) * 1024) / n),
        unit: 'KB',
      },
      {
        key: 'provider1000PaymentsPerSec',
        label:
          `payments/s acknowledged across all ${n} channels (${payers}; CPU: provider ${paid.providerCpuPercent.toFixed(0)} %, busiest payer process ${paid.payersCpuPercent.toFixed(0)} %, broker + simnet ${paid.brokerCpuPercent.toFixed(0)} %, load average ${paid.loadAverage.toFixed(1)} on ${cpus().length} cores; ` +
          `p50 ${paid.p50Ms.toFixed(0)} ms, p99 ${paid.p99Ms.toFixed(0)} ms)${mode}`,
        value: round(perSec),
        unit: 'payments/s',
        ceiling: { label: `ECDSA verifies/s of the provider's secp256k1 backend (${rig.backend}), in the provider process: one verify per payment`, value: round(verifyPerSec), unit: 'ops/s' },
      },
      {
        key: 'provider1000CpuPercent',
        label: `provider CPU while paying (user + system ÷ wall; 100 = one core): below 100, the payers, broker or machine were the limit, not the provider${mode}`,
        value: round(paid.providerCpuPercent),
        unit: '%',
        ceiling: { label: 'one core', value: 100, unit: '%' },
      },
    ];
    const fsyncs: Figure = {
      key: 'provider1000FsyncsPerPayment',
      label: `provider LMDB write transactions (each one fdatasync + meta-page sync) per payment stored, across ${n} channels: group commit${mode}`,
      value: paid.providerPayments > 0 ? round(paid.writeTransactions / paid.providerPayments) : null,
      unit: 'fsyncs',
      target: { op: '<=', value: 1 },
    };
    if (fsyncs.value === null) fsyncs.why = 'the provider stored no payment';
    else if (fsyncs.value > 1) fsyncs.why = 'more write transactions than payments: commits are not being grouped';
    figures.push(fsyncs);
    return figures;
  } finally {
    await rig.close();
  }
}

async function run(opts: BenchOptions): Promise<Figure[]> {
  const backend = chooseSecp256k1();
  runMeta.secp256k1 ??= backend.description;
  const figures: Figure[] = [];
  try {
    figures.push(...(await providerFigures(opts)));
  } catch (error) {
    opts.log(`  provider rig failed: ${(error as Error).stack ?? String(error)}`);
    figures.push({ key: 'provider1000RssMb', label: 'provider with 1,000 channels', value: null, unit: 'MB', why: `the rig failed: ${(error as Error).message}` });
  }
  try {
    const size = installSize();
    const list = (xs: Array<{ name: string; bytes: number }>): string => xs.map((b) => `${b.name} ${mb(b.bytes).toFixed(1)} MB`).join(', ');
    const peerBytes = size.optionalPeers.reduce((n, p) => n + p.bytes, 0);
    const peers = size.optionalPeers.length > 0 ? `; includes ${list(size.optionalPeers)} that only an optional peer dependency leads to, listed because it is installed here as our dev dependency` : '';
    opts.log(`  production dependencies: ${size.packages} packages, ${mb(size.prodBytes).toFixed(1)} MB; biggest: ${list(size.biggest)}${peers}`);
    figures.push({
      key: 'installProdDepsMb',
      label: `on-disk size of the ${size.packages} production packages (npm ls --omit=dev --all, each path once, du-style blocks; biggest: ${list(size.biggest)}${peers})`,
      value: round(mb(size.prodBytes)),
      unit: 'MB',
      ceiling: { label: 'all of node_modules, dev dependencies included (without node_modules/.cache)', value: round(mb(size.allBytes)), unit: 'MB' },
    });
    figures.push({
      key: 'installConsumerDepsMb',
      label: `installProdDepsMb without the optional peers a consumer's npm install would not fetch (${size.optionalPeers.map((p) => p.name).join(', ') || 'none'}): what installing trickle adds`,
      value: round(mb(size.prodBytes - peerBytes)),
      unit: 'MB',
      ceiling: { label: 'installProdDepsMb', value: round(mb(size.prodBytes)), unit: 'MB' },
    });
  } catch (error) {
    figures.push({ key: 'installProdDepsMb', label: 'on-disk size of the production packages', value: null, unit: 'MB', why: `npm ls failed: ${(error as Error).message}` });
  }
  return figures;
}

export const footprintSection: Section = { name: 'footprint', run };

/**
 * The 1,000-channel provider rig (issue 8, section 6 and the soak): one provider process with N open
 * one-way channels, paid across all of them.
 *
 * - Parent (this process): the embedded aedes broker (src/transport/mqtt/broker.ts) and a Simnet served on
 *   loopback HTTP that mines while its mempool holds something.
 * - bench/provider-child.ts: the provider, wired as `trickle provider` is (startLocalNode: LmdbStore on
 *   disk, SimnetClient, DeviceWallet, MQTT messenger, OnewayNode).
 * - bench/provider-payers.ts, one process per 500 payers: N devices, each its own identity, MQTT
 *   connection and Noise session with the provider (what a provider really holds), MemoryStores.
 *
 * Children run bundled (node, no TypeScript loader), get TRICKLE_SECP256K1 passed through, and are killed
 * whatever happens; the data directory is removed.
 *
 * @example
 *   const soak = await providerSoak({ channels: 1000, seconds: 600, log: console.error });
 *   console.log(soak.growthMb);
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedBroker, type EmbeddedBroker } from '../src/transport/mqtt/broker.js';
import type { ServiceTerms } from '../src/channel/oneway/state.js';
import { bundleEntry } from '../test/helpers/bundle.js';
import { Child, removeDir, sleep, startChain, tempDir } from './lib.js';

/** Payers per payer process. */
const PAYERS_PER_PROCESS = 500;
const CAPACITY_SAT = 100_000n;
/** One sat a payment: a soak of an hour at 1,000/s across 1,000 channels uses 3.6 % of a channel. */
const INCREMENT_MSAT = 1_000n;

export interface MemorySample {
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  arrayBuffersMb: number;
}

export interface ProviderStats {
  open: number;
  payments: number;
  /** CPU time of the provider process so far (user + system). */
  cpuMs: number;
  store: { writeTransactions: number; sizeBytes: number; pageSizeBytes: number; entries: number };
  log: Record<string, number>;
  session: Record<string, unknown>;
}

export interface PayResult {
  payments: number;
  elapsedMs: number;
  failed: number;
  errors: string[];
  /** Worst of the payer processes. */
  p50Ms: number;
  p99Ms: number;
  /** CPU time over the window ÷ the window: 100 = one core busy all the time. */
  providerCpuPercent: number;
  /** The busiest payer process. */
  payersCpuPercent: number;
  /** This process: the aedes broker and the simnet HTTP server (the bench harness itself is idle meanwhile). */
  brokerCpuPercent: number;
  /** os.loadavg()[0] at the end: other work on the machine shows here. */
  loadAverage: number;
  /** Payments the provider stored and LMDB write transactions it committed over the window. */
  providerPayments: number;
  writeTransactions: number;
}

export interface ProviderRig {
  channels: number;
  payerProcesses: number;
  backend: string;
  /** The provider process with 0 channels, right after it started (after a full GC). */
  idle: MemorySample;
  openMs: number;
  provider: Child;
  memory(gc: boolean): Promise<MemorySample>;
  stats(): Promise<ProviderStats>;
  /** Every payer pays its channel, one payment after another, for `ms`. */
  pay(ms: number): Promise<PayResult>;
  /** ECDSA verifies/s of the provider's backend, in the provider process. */
  verifyPerSec(ms: number): Promise<number>;
  close(): Promise<void>;
}

/** Start the broker, chain, provider and payers, and open `channels` channels. */
export async function startProviderRig(o: { channels: number; log: (line: string) => void }): Promise<ProviderRig> {
  const { channels, log } = o;
  if (!Number.isSafeInteger(channels) || channels < 1) throw new RangeError('"channels" expected a positive integer');
  const children: Child[] = [];
  const dataDir = tempDir('provider');
  let broker: EmbeddedBroker | undefined;
  let chain: Awaited<ReturnType<typeof startChain>> | undefined;
  const close = async (): Promise<void> => {
    await Promise.all(children.map((c) => c.stop(10_000)));
    await broker?.close();
    await chain?.close();
    removeDir(dataDir);
  };
  try {
    broker = await startEmbeddedBroker();
    chain = await startChain();
    const env = process.env['TRICKLE_SECP256K1'] ? { TRICKLE_SECP256K1: process.env['TRICKLE_SECP256K1'] } : {};
    const [providerScript, payersScript] = await Promise.all([bundleEntry('bench/provider-child.ts'), bundleEntry('bench/provider-payers.ts')]);
    const provider = new Child('provider', providerScript, [], env);
    children.push(provider);
    const started = await provider.request<{ nodeId: string; offer: ServiceTerms; backend: string }>('start', { brokerUrl: broker.url, chainUrl: chain.url, dataDir: join(dataDir, 'provider') });
    await sleep(500);
    const idle = await provider.request<MemorySample>('memory', { gc: true });
    log(`  provider up (${started.backend}); idle: RSS ${idle.rssMb.toFixed(1)} MB, heap ${idle.heapUsedMb.toFixed(1)} MB`);

    const payerProcesses = Math.ceil(channels / PAYERS_PER_PROCESS);
    const payers: Child[] = [];
    for (let p = 0; p < payerProcesses; p++) {
      const child = new Child(`payers-${p}`, payersScript, [], env);
      children.push(child);
      payers.push(child);
    }
    const t0 = performance.now();
    await Promise.all(
      payers.map((child, p) => {
        const first = p * PAYERS_PER_PROCESS;
        const count = Math.min(PAYERS_PER_PROCESS, channels - first);
        return child.request('start', { brokerUrl: broker!.url, chainUrl: chain!.url, first, count, fundSat: 2n * CAPACITY_SAT }, 600_000);
      }),
    );
    await chain.simnet.mine(1);
    log(`  ${channels} payers up and funded in ${((performance.now() - t0) / 1000).toFixed(1)} s (${payerProcesses} process${payerProcesses > 1 ? 'es' : ''}); opening channels`);
    const t1 = performance.now();
    const opened = await Promise.all(
      payers.map((child) =>
        child.request<{ opened: number; failed: number; errors: string[] }>('open', { provider: started.nodeId, service: started.offer, capacitySat: CAPACITY_SAT, expiryBlocks: 1000, concurrency: 20 }, 1_200_000),
      ),
    );
    const failed = opened.reduce((n, r) => n + r.failed, 0);
    if (failed > 0) log(`  ${failed} opens failed: ${opened.flatMap((r) => r.errors).slice(0, 3).join('; ')}`);
    const stats = (): Promise<ProviderStats> => provider.request<ProviderStats>('stats');
    const want = opened.reduce((n, r) => n + r.opened, 0);
    const deadline = performance.now() + 60_000;
    while ((await stats()).open < want && performance.now() < deadline) await sleep(200);
    const openMs = performance.now() - t1;
    const open = (await stats()).open;
    log(`  ${open} channels open at the provider after ${(openMs / 1000).toFixed(1)} s`);
    if (open === 0) throw new Error(`no channel opened${failed ? `: ${opened.flatMap((r) => r.errors)[0]}` : ''}`);

    return {
      channels: open,
      payerProcesses,
      backend: started.backend,
      idle,
      openMs,
      provider,
      memory: (gc) => provider.request<MemorySample>('memory', { gc }),
      stats,
      async pay(ms) {
        const cpu = (): Promise<number[]> => Promise.all(payers.map((child) => child.request<number>('cpu')));
        const [before, payersBefore] = await Promise.all([stats(), cpu()]);
        const ownBefore = process.cpuUsage();
        const t = performance.now();
        const results = await Promise.all(payers.map((child) => child.request<PayResult>('pay', { ms, incrementMsat: INCREMENT_MSAT }, ms + 300_000)));
        const [after, payersAfter] = await Promise.all([stats(), cpu()]);
        const window = performance.now() - t;
        const own = process.cpuUsage(ownBefore);
        return {
          brokerCpuPercent: (100 * (own.user + own.system)) / 1000 / window,
          loadAverage: loadavg()[0]!,
          providerCpuPercent: (100 * (after.cpuMs - before.cpuMs)) / window,
          payersCpuPercent: Math.max(...payersAfter.map((c, i) => (100 * (c - payersBefore[i]!)) / window)),
          providerPayments: after.payments - before.payments,
          writeTransactions: after.store.writeTransactions - before.store.writeTransactions,
          payments: results.reduce((n, r) => n + r.payments, 0),
          elapsedMs: Math.max(...results.map((r) => r.elapsedMs)),
          failed: results.reduce((n, r) => n + r.failed, 0),
          errors: results.flatMap((r) => r.errors).slice(0, 5),
          p50Ms: Math.max(...results.map((r) => r.p50Ms)),
          p99Ms: Math.max(...results.map((r) => r.p99Ms)),
        };
      },
      async verifyPerSec(ms) {
        return (await provider.request<{ perSec: number }>('verify', { ms })).perSec;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

export interface SoakResult {
  channels: number;
  payments: number;
  rssSamplesMb: number[];
  heapSamplesMb: number[];
  growthMb: number;
}

/**
 * Growth of a series sampled once a second: mean of the last window minus mean of the first window after
 * the warm-up, where the warm-up and the windows are each min(60 s, a fifth of the run). A positive number
 * that keeps rising with the run's length is a leak; a steady state shows as noise around 0.
 */
export function growthOf(samples: number[]): number {
  if (samples.length < 3) return Number.NaN;
  const window = Math.max(1, Math.min(60, Math.floor(samples.length / 5)));
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = samples.slice(window, 2 * window);
  const last = samples.slice(-window);
  return mean(last) - mean(first.length > 0 ? first : samples.slice(0, window));
}

/**
 * Soak: `channels` channels on one provider, payments across all of them for `seconds`, the provider's
 * RSS and heap sampled every second (process.memoryUsage() in the provider, no forced GC). growthMb is
 * growthOf() of the RSS samples.
 */
export async function providerSoak(o: { channels: number; seconds: number; log: (l: string) => void }): Promise<{ channels: number; payments: number; rssSamplesMb: number[]; heapSamplesMb: number[]; growthMb: number }> {
  if (!(o.seconds > 0)) throw new RangeError('"seconds" expected a positive number');
  const rig = await startProviderRig({ channels: o.channels, log: o.log });
  try {
    const rssSamplesMb: number[] = [];
    const heapSamplesMb: number[] = [];
    const paying = rig.pay(o.seconds * 1000);
    let done = false;
    void paying.finally(() => (done = true)).catch(() => undefined);
    const start = performance.now();
    for (let i = 1; !done; i++) {
      const m = await rig.memory(false);
      rssSamplesMb.push(m.rssMb);
      heapSamplesMb.push(m.heapUsedMb);
      if (i % 10 === 0) o.log(`  soak ${i} s: provider RSS ${m.rssMb.toFixed(1)} MB, heap ${m.heapUsedMb.toFixed(1)} MB`);
      // Once a second on the clock, however long the request took.
      await sleep(Math.max(0, start + i * 1000 - performance.now()));
    }
    const result = await paying;
    if (result.failed > 0) o.log(`  ${result.failed} payments failed: ${result.errors.join('; ')}`);
    const growthMb = growthOf(rssSamplesMb);
    if (o.seconds < 300) o.log(`  soak: ${o.seconds} s spans few major GCs (the heap ramps for tens of seconds, then drops): growth over a short run says little; run 10 minutes or more to see a leak`);
    o.log(`  soak: ${result.payments} payments in ${(result.elapsedMs / 1000).toFixed(1)} s across ${rig.channels} channels; RSS growth ${growthMb.toFixed(1)} MB, heap growth ${growthOf(heapSamplesMb).toFixed(1)} MB`);
    return { channels: rig.channels, payments: result.payments, rssSamplesMb, heapSamplesMb, growthMb };
  } finally {
    await rig.close();
  }
}

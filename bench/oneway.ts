/**
 * Section 2 (one-way channels between two processes) and the process figures of 4–6: a payee and a payer
 * process (bench/party.ts: startLocalNode with a durable LMDB store, the simnet over HTTP, MQTT) on the
 * embedded aedes broker, then the same on Mosquitto when it is installed.
 *
 * Phases on one channel: idle RSS; a warm-up; throughput (WINDOW pay() calls outstanding for a fixed time);
 * latency (one pay() at a time); a long run (device RSS after N payments); then the payer is killed and
 * started again on its data dir (cold start to first payment). Store write transactions, CPU, curve
 * operations and broker PUBLISH bytes are read before and after each measured phase.
 */
import { hexToBytes } from '../src/bytes.js';
import { encodeMessage } from '../src/wire/index.js';
import type { NodeInit, PhaseResult, Stats } from './party.js';
import { measureCrypto, type CryptoResults } from './crypto.js';
import {
  breakdown,
  breakdownText,
  measureBroker,
  measureLmdb,
  measureStartup,
  quantile,
  removeDir,
  round,
  runMeta,
  sleep,
  spawnParty,
  startChain,
  startCountingBroker,
  startMosquittoIfPresent,
  tempDir,
  unmeasured,
  withChildren,
  type BenchOptions,
  type Breakdown,
  type BrokerCeiling,
  type Child,
  type CountingBroker,
  type Figure,
  type LmdbCeiling,
  type Section,
  type StartupCeiling,
} from './lib.js';

/** pay() calls kept outstanding in the throughput phases. */
export const WINDOW = 64;
const INCREMENT_MSAT = 1000n;
const CAPACITY_SAT = 1_500_000n;
/** Device RSS is read after this many payments (full mode), or at LONG_RUN_BOUND_MS. */
const LONG_RUN_PAYMENTS = 100_000;
const LONG_RUN_BOUND_MS = 180_000;
const MB = 1024 * 1024;

// ---- phases and their before/after readings ----

export interface Snapshot {
  a: Stats;
  b: Stats;
  wire: { publishes: number; payloadBytes: number; topicBytes: number } | undefined;
  /** performance.now() here, after both answered. */
  atMs: number;
}

/** What happened between two snapshots, per side: a = payer (RSMC: opener), b = payee (RSMC: accepter). */
export interface Delta {
  payments: number;
  aTxns: number | null;
  bTxns: number | null;
  aCpuMs: number;
  bCpuMs: number;
  /** Curve operations on both sides (undefined when a side could not count them). */
  crypto: { a: Record<string, number>; b: Record<string, number> } | undefined;
  publishes: number | null;
  payloadBytes: number | null;
  commitments: number | null;
  elapsedMs: number;
}

export async function snapshot(a: Child, b: Child, broker: CountingBroker): Promise<Snapshot> {
  const [sa, sb] = await Promise.all([a.request<Stats>('stats'), b.request<Stats>('stats')]);
  return { a: sa, b: sb, wire: broker.counts(), atMs: performance.now() };
}

/** CPU each process uses while nothing happens (ms of CPU per s): session timers, chain polling. */
export interface IdleCpu {
  aMsPerSec: number;
  bMsPerSec: number;
}

export async function idleCpu(a: Child, b: Child, broker: CountingBroker, ms: number): Promise<IdleCpu> {
  const before = await snapshot(a, b, broker);
  await sleep(ms);
  const after = await snapshot(a, b, broker);
  const s = (after.atMs - before.atMs) / 1000;
  return { aMsPerSec: (after.a.cpuMicros - before.a.cpuMicros) / 1000 / s, bMsPerSec: (after.b.cpuMicros - before.b.cpuMicros) / 1000 / s };
}

/** CPU per event on each side beyond what the process burns idle. */
export function cpuPer(d: Delta, idle: IdleCpu, per: number): { a: number; b: number } {
  const s = d.elapsedMs / 1000;
  return { a: Math.max(0, d.aCpuMs - idle.aMsPerSec * s) / per, b: Math.max(0, d.bCpuMs - idle.bMsPerSec * s) / per };
}

function diffCounts(x: Record<string, number> | undefined, y: Record<string, number> | undefined): Record<string, number> | undefined {
  if (!x || !y) return undefined;
  return Object.fromEntries(Object.keys(y).map((k) => [k, y[k]! - (x[k] ?? 0)]));
}

export function delta(before: Snapshot, after: Snapshot): Delta {
  const txns = (x: number | null, y: number | null): number | null => (x === null || y === null ? null : y - x);
  const ca = diffCounts(before.a.crypto, after.a.crypto);
  const cb = diffCounts(before.b.crypto, after.b.crypto);
  return {
    payments: (after.a.payments ?? 0) - (before.a.payments ?? 0),
    aTxns: txns(before.a.writeTransactions, after.a.writeTransactions),
    bTxns: txns(before.b.writeTransactions, after.b.writeTransactions),
    aCpuMs: (after.a.cpuMicros - before.a.cpuMicros) / 1000,
    bCpuMs: (after.b.cpuMicros - before.b.cpuMicros) / 1000,
    crypto: ca && cb ? { a: ca, b: cb } : undefined,
    publishes: before.wire && after.wire ? after.wire.publishes - before.wire.publishes : null,
    payloadBytes: before.wire && after.wire ? after.wire.payloadBytes - before.wire.payloadBytes : null,
    commitments: after.a.commitmentNumber === null || before.a.commitmentNumber === null ? null : after.a.commitmentNumber - before.a.commitmentNumber,
    elapsedMs: after.atMs - before.atMs,
  };
}

/** Run a phase between two snapshots. */
export async function measured<T>(a: Child, b: Child, broker: CountingBroker, phase: () => Promise<T>): Promise<{ result: T; d: Delta }> {
  const before = await snapshot(a, b, broker);
  const result = await phase();
  const after = await snapshot(a, b, broker);
  return { result, d: delta(before, after) };
}

/** `phase` with both processes tracing their events; the merged timeline's breakdown with it. */
export async function traced<T>(a: Child, b: Child, names: [string, string], phase: () => Promise<T>): Promise<{ result: T; breakdown: Breakdown | undefined }> {
  await Promise.all([a.request('trace-start'), b.request('trace-start')]);
  const result = await phase();
  const [ta, tb] = await Promise.all([a.request<{ events: Array<[number, string]> }>('trace-stop'), b.request<{ events: Array<[number, string]> }>('trace-stop')]);
  return { result, breakdown: breakdown({ name: names[0], events: ta.events }, { name: names[1], events: tb.events }) };
}

export function checkPhase(name: string, r: PhaseResult): PhaseResult {
  if (r.failed > 0) throw new Error(`${name}: ${r.failed} payment(s) failed: ${r.error}`);
  return r;
}

// ---- the runs ----

export interface BrokerRun {
  broker: 'aedes' | 'mosquitto';
  ceiling: BrokerCeiling;
  throughput: { result: PhaseResult; d: Delta };
  sequential: { result: { samplesMs: number[]; elapsedMs: number }; d: Delta; breakdown: Breakdown | undefined };
  backend: { name: string; description: string };
  idleCpu: IdleCpu;
}

export interface OnewayRun {
  crypto: CryptoResults;
  lmdb: LmdbCeiling;
  startup: StartupCeiling;
  aedes: BrokerRun & {
    idle: Stats;
    longRun: { payments: number; elapsedMs: number; rssBytes: number; heapUsedBytes: number; bounded: boolean };
    coldStart: { ms: number; importedAtMs: number; startedAtMs: number; paidAtMs: number } | { error: string };
  };
  mosquitto: BrokerRun | { error: string } | undefined;
}

interface Pair {
  payer: Child;
  payee: Child;
  payerInit: NodeInit;
  dirs: string[];
  backend: { name: string; description: string };
}

/** Payee and payer processes on `broker`, the payer funded, one channel open. */
async function openPair(own: (c: Child) => Child, broker: CountingBroker, chain: Awaited<ReturnType<typeof startChain>>, opts: BenchOptions): Promise<Pair> {
  const dirs = [tempDir('payee'), tempDir('payer')];
  const payee = own(await spawnParty(`payee@${broker.kind}`, 'node'));
  const payer = own(await spawnParty(`payer@${broker.kind}`, 'node'));
  const init = (dataDir: string, isPayee: boolean): NodeInit => ({ dataDir, brokerUrl: broker.url, simnetUrl: chain.url, payee: isPayee, rsmc: false });
  const payerInit = init(dirs[1]!, false);
  type InitResult = { nodeId: string; walletScriptHex: string; backend: { name: string; description: string } };
  const [ee, er] = await Promise.all([payee.request<InitResult>('init', { init: init(dirs[0]!, true) }), payer.request<InitResult>('init', { init: payerInit })]);
  if (ee.backend.name !== er.backend.name) throw new Error(`payee uses ${ee.backend.name}, payer ${er.backend.name}`);
  runMeta.childBackend = er.backend.name;
  await chain.simnet.faucet(hexToBytes(er.walletScriptHex), CAPACITY_SAT * 2n);
  await chain.simnet.mine(1);
  opts.log(`one-way@${broker.kind}: opening a channel (${er.backend.description})`);
  await payer.request('oneway-open', { peer: ee.nodeId, capacitySat: CAPACITY_SAT }, 120_000);
  return { payer, payee, payerInit, dirs, backend: er.backend };
}

async function throughputAndLatency(pair: Pair, broker: CountingBroker, opts: BenchOptions, idle: IdleCpu): Promise<Omit<BrokerRun, 'ceiling'>> {
  const { payer, payee } = pair;
  const pay = (args: Record<string, unknown>, cmd = 'pay-window'): Promise<PhaseResult> =>
    payer.request<PhaseResult>(cmd, { kind: 'oneway', amountMsat: INCREMENT_MSAT, ...args }, 300_000);
  opts.log(`one-way@${broker.kind}: warm-up`);
  checkPhase('warm-up', await pay({ window: WINDOW, durationMs: opts.quick ? 700 : 2000 }));
  opts.log(`one-way@${broker.kind}: throughput, ${WINDOW} pay() outstanding`);
  const throughput = await measured(payer, payee, broker, () => pay({ window: WINDOW, durationMs: opts.quick ? 3000 : 10_000 }));
  checkPhase('throughput', throughput.result);
  opts.log(`one-way@${broker.kind}: latency, one pay() at a time`);
  const seq = await measured(payer, payee, broker, () =>
    traced(payer, payee, ['payer', 'payee'], () =>
      payer.request<{ samplesMs: number[]; elapsedMs: number }>('pay-sequential', { kind: 'oneway', amountMsat: INCREMENT_MSAT, count: opts.quick ? 300 : 2000, maxMs: opts.quick ? 5000 : 30_000 }, 300_000),
    ),
  );
  const sequential = { result: seq.result.result, d: seq.d, breakdown: seq.result.breakdown };
  return { broker: broker.kind, throughput, sequential, backend: pair.backend, idleCpu: idle };
}

async function aedesRun(opts: BenchOptions, broker: CountingBroker): Promise<OnewayRun['aedes']> {
  const chain = await startChain();
  const dirs: string[] = [];
  try {
    return await withChildren(async (own) => {
      const ceiling = await measureBroker(broker.url, opts);
      const pair = await openPair(own, broker, chain, opts);
      dirs.push(...pair.dirs);
      await sleep(1000);
      const idleCpuUse = await idleCpu(pair.payer, pair.payee, broker, opts.quick ? 2000 : 5000);
      const idle = await pair.payer.request<Stats>('stats');
      const run = await throughputAndLatency(pair, broker, opts, idleCpuUse);

      const done = (await pair.payer.request<Stats>('stats')).payments ?? 0;
      const goal = opts.quick ? done + 1_000_000 : LONG_RUN_PAYMENTS;
      const boundMs = opts.quick ? 3000 : LONG_RUN_BOUND_MS;
      opts.log(`one-way@aedes: long run to ${opts.quick ? `${boundMs / 1000} s` : `${goal} payments or ${boundMs / 1000} s`} (device RSS)`);
      const long = checkPhase('long run', await pair.payer.request<PhaseResult>('pay-window', { kind: 'oneway', amountMsat: INCREMENT_MSAT, window: WINDOW, durationMs: boundMs, maxPayments: Math.max(0, goal - done) }, boundMs + 120_000));
      const after = await pair.payer.request<Stats>('stats');
      const longRun = { payments: after.payments ?? 0, elapsedMs: long.elapsedMs, rssBytes: after.rssBytes, heapUsedBytes: after.heapUsedBytes, bounded: (after.payments ?? 0) < LONG_RUN_PAYMENTS };

      opts.log('one-way@aedes: cold start (payer killed, started again on its data dir)');
      await pair.payer.kill();
      let coldStart: OnewayRun['aedes']['coldStart'];
      try {
        const again = own(await spawnParty('payer (cold start)', 'coldstart', JSON.stringify(pair.payerInit)));
        const ev = await again.waitEvent('first-payment', 60_000);
        coldStart = { ms: ev.receivedAt - again.spawnedAt, importedAtMs: ev.importedAtMs as number, startedAtMs: ev.startedAtMs as number, paidAtMs: ev.paidAtMs as number };
      } catch (error) {
        coldStart = { error: (error as Error).message };
      }
      return { ...run, ceiling, idle, longRun, coldStart };
    });
  } finally {
    await chain.close();
    for (const d of dirs) removeDir(d);
  }
}

async function mosquittoRun(opts: BenchOptions): Promise<BrokerRun | { error: string } | undefined> {
  let broker: CountingBroker | undefined;
  try {
    broker = await startMosquittoIfPresent();
  } catch (error) {
    return { error: `mosquitto did not start: ${(error as Error).message}` };
  }
  if (!broker) return undefined;
  const b = broker;
  const chain = await startChain();
  const dirs: string[] = [];
  try {
    return await withChildren(async (own) => {
      const ceiling = await measureBroker(b.url, opts);
      const pair = await openPair(own, b, chain, opts);
      dirs.push(...pair.dirs);
      await sleep(1000);
      const idle = await idleCpu(pair.payer, pair.payee, b, opts.quick ? 2000 : 5000);
      return { ...(await throughputAndLatency(pair, b, opts, idle)), ceiling };
    });
  } catch (error) {
    return { error: (error as Error).message };
  } finally {
    await chain.close();
    await b.close();
    for (const d of dirs) removeDir(d);
  }
}

let memo: Promise<OnewayRun> | undefined;

/** The whole one-way run, once per bench process (sections 2, 4, 5 and 6 read it). */
export function runOneway(opts: BenchOptions): Promise<OnewayRun> {
  memo ??= (async () => {
    const crypto = await measureCrypto(opts);
    opts.log('ceilings: LMDB commits, process start-up');
    const lmdb = await measureLmdb(opts);
    const startup = await measureStartup();
    const broker = await startCountingBroker();
    runMeta.broker = 'aedes (embedded, loopback)';
    try {
      const aedes = await aedesRun(opts, broker);
      await broker.close();
      const mosquitto = await mosquittoRun(opts);
      if (mosquitto && !('error' in mosquitto)) runMeta.broker = 'aedes (embedded, loopback); also mosquitto (loopback)';
      return { crypto, lmdb, startup, aedes, mosquitto };
    } finally {
      await broker.close();
    }
  })();
  return memo;
}

// ---- figures ----

const ms = (x: number): number => round(x, 3);

/** Curve operations per payment on a side, e.g. "1 sign, 0 verify, 0 k·G". */
export function opsText(counts: Record<string, number> | undefined, per: number): string {
  if (!counts || per === 0) return 'not counted';
  const names: Record<string, string> = { sign: 'sign', verify: 'verify', publicKey: 'k·G', pointMultiply: 'k·P', pointAdd: 'P+Q' };
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${round(n / per, 2)} ${names[k] ?? k}`)
    .join(', ') || 'none';
}

/** ms of curve work per `per` events, at the backend's measured rates. */
export function cryptoMs(counts: Record<string, number> | undefined, per: number, rates: Record<string, number>): number | undefined {
  if (!counts || per === 0) return undefined;
  let total = 0;
  for (const [op, n] of Object.entries(counts)) total += (n / per) * (1000 / (rates[op] ?? Infinity));
  return total;
}

/**
 * The least a payment must carry (src/wire/update.ts oneway_pay): channel id 32 + payment number 8 +
 * amount 8 + signature 64, plus one 16-byte AEAD tag. The ack (32 + 8 + 8 + 16) is the payer's to know.
 */
export const ONEWAY_MIN_PAYMENT_BYTES = 32 + 8 + 8 + 64 + 16;
/** A data frame around a BOLT 8 message: 13 header (src/session/frames.ts) + 18 length + 16 body tag. */
export const DATA_FRAME_OVERHEAD = 13 + 18 + 16;

function onewayMessageSizes(): { pay: number; ack: number } {
  const channelId = new Uint8Array(32).fill(0xab);
  const pay = encodeMessage({ type: 'oneway_pay', channelId, paymentNumber: 5_000n, amountMsat: 5_000_000n, signature: new Uint8Array(64).fill(0x33) }).length;
  const ack = encodeMessage({ type: 'oneway_pay_ack', channelId, paymentNumber: 5_000n, amountMsat: 5_000_000n }).length;
  return { pay, ack };
}

function rateOf(r: PhaseResult): number {
  return (r.payments * 1000) / r.elapsedMs;
}

function fsyncs(d: Delta): { total: number; a: number; b: number } | undefined {
  if (d.aTxns === null || d.bTxns === null || d.payments === 0) return undefined;
  return { total: (d.aTxns + d.bTxns) / d.payments, a: d.aTxns / d.payments, b: d.bTxns / d.payments };
}

function whyRate(run: BrokerRun, c: CryptoResults, lmdb: LmdbCeiling): string {
  const t = run.throughput;
  const rate = rateOf(t.result);
  const seqMean = run.sequential.result.samplesMs.reduce((x, y) => x + y, 0) / run.sequential.result.samplesMs.length;
  const seqRate = 1000 / seqMean;
  const parts: string[] = [];
  if (rate < seqRate * 1.3) {
    parts.push(`the ${WINDOW} outstanding pay() calls complete no faster than one at a time (${round(rate)}/s vs ${round(seqRate)}/s sequential): payments on a channel are not pipelined, so each costs a full round trip`);
  } else {
    parts.push(`${round((rate * seqMean) / 1000, 2)}× the sequential rate (${round(seqRate)}/s): payments overlap`);
  }
  const n = t.d.payments;
  const cpu = cpuPer(t.d, run.idleCpu, n);
  parts.push(`CPU per payment beyond idle: payer ${ms(cpu.a)} ms, payee ${ms(cpu.b)} ms (the busier one alone caps the rate at ${round(1000 / Math.max(cpu.a, cpu.b))}/s; on 2 cores shared with the broker)`);
  const cm = cryptoMs(t.d.crypto?.a, n, c.inUse);
  const cmB = cryptoMs(t.d.crypto?.b, n, c.inUse);
  if (cm !== undefined && cmB !== undefined) parts.push(`of which curve work ${ms(cm)} ms (payer: ${opsText(t.d.crypto?.a, n)}) and ${ms(cmB)} ms (payee: ${opsText(t.d.crypto?.b, n)})`);
  const f = fsyncs(t.d);
  if (f) parts.push(`${round(f.total, 2)} LMDB write transactions per payment at ${ms(lmdb.sequential.p50Ms)} ms each (p50)`);
  parts.push(`broker round trip p50 ${ms(run.ceiling.p50Ms)} ms (${round(run.ceiling.roundTripsPerSec)} round trips/s with ${WINDOW} outstanding)`);
  return parts.join('; ');
}

/** Broker round trip, 2 LMDB commits (both sides persist before they speak), 1 sign and 1 verify, back to back. */
function serialMs(broker: BrokerCeiling, lmdb: LmdbCeiling, c: CryptoResults, q: 'p50' | 'p99'): number {
  const sign = 1000 / c.inUse.sign;
  const verify = 1000 / c.inUse.verify;
  return (q === 'p50' ? broker.p50Ms + 2 * lmdb.sequential.p50Ms : broker.p99Ms + 2 * lmdb.sequential.p99Ms) + sign + verify;
}

function latencyFigures(run: BrokerRun, lmdb: LmdbCeiling, c: CryptoResults, suffix: string, withTarget: boolean): Figure[] {
  const samples = run.sequential.result.samplesMs;
  const p50 = quantile(samples, 0.5);
  const p99 = quantile(samples, 0.99);
  // The floor is the broker round trip alone: the local work can hide in its waits (delayed ACKs), so the
  // serial sum is given in the label as an estimate, not as the ceiling.
  const floorText = (q: 'p50' | 'p99'): string =>
    `${run.broker} round trip ${q} (150 B QoS 1 ping-pong): a payment is one round trip; with 2 LMDB commits ${q} (both sides persist before they speak) + 1 sign + 1 verify back to back, ${ms(serialMs(run.ceiling, lmdb, c, q))} ms`;
  const floor = (q: 'p50' | 'p99'): number => ms(q === 'p50' ? run.ceiling.p50Ms : run.ceiling.p99Ms);
  const p99Figure: Figure = {
    key: `onewayP99Ms${suffix}`,
    label: `one-way payment round trip p99 (pay() → payee's ack), one at a time, ${samples.length} payments, ${run.broker}`,
    value: ms(p99),
    unit: 'ms',
    ceiling: { key: `onewayFloorP99Ms${suffix}`, label: floorText('p99'), value: floor('p99'), unit: 'ms' },
  };
  if (withTarget) {
    p99Figure.target = { op: '<=', value: 5 };
    if (p99 > 5) {
      const cpu = cpuPer(run.sequential.d, run.idleCpu, Math.max(1, run.sequential.d.payments));
      p99Figure.why = `p50 ${ms(p50)} ms, the broker round trip alone being ${ms(run.ceiling.p50Ms)} ms (p50, p99 ${ms(run.ceiling.p99Ms)} ms); CPU per payment beyond idle: payer ${ms(cpu.a)} ms, payee ${ms(cpu.b)} ms; ${slowestSteps(run.sequential.breakdown)}`;
    }
  }
  return [
    {
      key: `onewayP50Ms${suffix}`,
      label: `one-way payment round trip p50 (pay() → payee's ack), one at a time, ${samples.length} payments, ${run.broker}; where it goes: ${breakdownText(run.sequential.breakdown)}`,
      value: ms(p50),
      unit: 'ms',
      ceiling: { key: `onewayFloorP50Ms${suffix}`, label: floorText('p50'), value: floor('p50'), unit: 'ms' },
    },
    p99Figure,
  ];
}

/** The two slowest steps of a breakdown, for a why. */
export function slowestSteps(b: Breakdown | undefined): string {
  if (!b) return 'no trace of where the time goes';
  const steps = b.steps.slice(1).map((s, i) => ({ ...s, from: b.steps[i]!.event })).sort((x, y) => y.medianMs - x.medianMs).slice(0, 2);
  return `slowest steps (medians): ${steps.map((s) => `${s.from} → ${s.event} ${round(s.medianMs, 2)} ms`).join(', ')}`;
}

function brokerFigures(run: BrokerRun, suffix: string): Figure[] {
  const b = run.ceiling;
  return [
    {
      key: `mqttRoundTripP50Ms${suffix}`,
      label: `ceiling: raw MQTT round trip p50 through ${run.broker}, child ↔ child, ${b.payloadBytes} B QoS 1, TCP_NODELAY as the transport sets it (${b.samples} round trips, p99 ${ms(b.p99Ms)} ms)`,
      value: ms(b.p50Ms),
      unit: 'ms',
    },
  ];
}

function rateFigure(run: BrokerRun, c: CryptoResults, lmdb: LmdbCeiling, suffix: string, withTarget: boolean): Figure {
  const rate = rateOf(run.throughput.result);
  const f: Figure = {
    key: `onewayPaymentsPerSec${suffix}`,
    label: `one-way payments/s on one channel, payer and payee in separate processes, durable LMDB, ${WINDOW} pay() outstanding, ${run.broker} (${run.throughput.result.payments} payments in ${round(run.throughput.result.elapsedMs / 1000)} s)`,
    value: round(rate),
    unit: 'payments/s',
    ceiling: { key: `mqttRoundTripsPerSec${suffix}`, label: `raw MQTT round trips/s through ${run.broker}, child ↔ child, ${run.ceiling.payloadBytes} B QoS 1, ${WINDOW} outstanding`, value: round(run.ceiling.roundTripsPerSec), unit: 'round trips/s' },
  };
  if (withTarget) {
    f.target = { op: '>=', value: 2000 };
    if (rate < 2000) f.why = whyRate(run, c, lmdb);
  }
  return f;
}

export const onewaySection: Section = {
  name: '2. one-way',
  async run(opts) {
    const r = await runOneway(opts);
    const c = r.crypto;
    const a = r.aedes;
    const rate = rateOf(a.throughput.result);
    const figures: Figure[] = [
      rateFigure(a, c, r.lmdb, '', true),
      {
        key: 'onewayPaymentsPerVerify',
        label: `one-way payments/s ÷ verify ops/s of the backend in use (${a.backend.name}); 1.0 would mean the payee's one signature check per payment were its only cost`,
        value: round(rate / c.inUse.verify, 3),
        unit: '×',
        ceiling: { key: 'verifyOpsPerSec', label: `ECDSA verify ops/s, ${c.backend.description}`, value: round(c.inUse.verify), unit: 'ops/s' },
      },
      {
        key: 'lmdbCommitsPerSec',
        label: `ceiling: raw durable LMDB commits/s on this disk (LmdbStore, 200 B value, one at a time; p50 ${ms(r.lmdb.sequential.p50Ms)} ms, p99 ${ms(r.lmdb.sequential.p99Ms)} ms)`,
        value: round(r.lmdb.sequential.commitsPerSec),
        unit: 'commits/s',
      },
      {
        key: 'lmdbGroupedCommitsPerSec',
        label: `ceiling: the same with 64 commits outstanding (lmdb-js group commit${r.lmdb.grouped.txnsPerCommit === null ? '' : `: ${round(r.lmdb.grouped.txnsPerCommit, 2)} write transactions per commit`})`,
        value: round(r.lmdb.grouped.commitsPerSec),
        unit: 'commits/s',
      },
      ...latencyFigures(a, r.lmdb, c, '', true),
      ...brokerFigures(a, ''),
    ];
    const m = r.mosquitto;
    if (m === undefined) {
      figures.push(unmeasured({ key: 'onewayPaymentsPerSecMosquitto', label: 'one-way payments/s on Mosquitto', unit: 'payments/s' }, 'mosquitto is not installed'));
    } else if ('error' in m) {
      figures.push(unmeasured({ key: 'onewayPaymentsPerSecMosquitto', label: 'one-way payments/s on Mosquitto', unit: 'payments/s' }, m.error));
    } else {
      figures.push(rateFigure(m, c, r.lmdb, 'Mosquitto', false), ...latencyFigures(m, r.lmdb, c, 'Mosquitto', false), ...brokerFigures(m, 'Mosquitto'));
    }
    return figures;
  },
};

/** Section 4's one-way half (the RSMC half is in ./rsmc.ts). */
export async function onewayWireFigures(opts: BenchOptions): Promise<Figure[]> {
  const r = await runOneway(opts);
  const sizes = onewayMessageSizes();
  const ceilingLabel = `least a payment carries: channel id 32 + number 8 + amount 8 + signature 64 + AEAD tag 16 (here oneway_pay is ${sizes.pay} B of CBOR, ${sizes.pay + DATA_FRAME_OVERHEAD} B as a frame; its ack ${sizes.ack + DATA_FRAME_OVERHEAD} B)`;
  const figure = (key: string, phase: { d: Delta }, what: string, target: boolean): Figure => {
    const { d } = phase;
    if (d.payloadBytes === null || d.payments === 0) return unmeasured({ key, label: what, unit: 'B' }, 'the broker could not count');
    const value = d.payloadBytes / d.payments;
    const f: Figure = {
      key,
      label: `${what}: MQTT PUBLISH payloads clients sent to aedes (Noise-encrypted frames, session ACKs included; topics and MQTT headers not), ${round(d.publishes! / d.payments, 3)} publishes per payment`,
      value: round(value),
      unit: 'B',
      ceiling: { key: 'onewayWireMinBytesPerPayment', label: ceilingLabel, value: ONEWAY_MIN_PAYMENT_BYTES, unit: 'B' },
    };
    if (target) {
      f.target = { op: '<=', value: 150 };
      if (value > 150) {
        f.why = `each payment is a oneway_pay frame (${sizes.pay + DATA_FRAME_OVERHEAD} B: ${sizes.pay} B CBOR + ${DATA_FRAME_OVERHEAD} B frame header and BOLT 8 length/tags) and a oneway_pay_ack frame (${sizes.ack + DATA_FRAME_OVERHEAD} B), plus session ACK frames (29 B each): ${round(d.publishes! / d.payments, 3)} publishes per payment`;
      }
    }
    return f;
  };
  return [
    figure('onewayWireBytesPerPayment', r.aedes.throughput, `bytes on the wire per one-way payment (throughput phase, ${WINDOW} outstanding)`, true),
    figure('onewayWireBytesPerPaymentSequential', r.aedes.sequential, 'bytes on the wire per one-way payment (one at a time)', false),
  ];
}

/** Sections 5 and 6, the parts measured on the payer/payee processes. */
export const deviceSection: Section = {
  name: '5/6. device process (one-way)',
  async run(opts) {
    const r = await runOneway(opts);
    const a = r.aedes;
    const figures: Figure[] = [];
    const ft = fsyncs(a.throughput.d);
    const fs = fsyncs(a.sequential.d);
    const noStats = 'LmdbStore.stats() is not available, so write transactions cannot be counted';
    if (ft) {
      const f: Figure = {
        key: 'fsyncsPerPayment',
        label: `LMDB write transactions (each one durable sync group) per one-way payment, payer + payee, ${WINDOW} outstanding`,
        value: round(ft.total, 3),
        unit: 'fsyncs',
        target: { op: '<=', value: 1 },
      };
      if (ft.total > 1) {
        f.why = `payer ${round(ft.a, 3)} + payee ${round(ft.b, 3)}: each side commits every payment before it speaks, and with one channel there is ${fs && fs.total - ft.total < 0.2 ? 'nothing to group: the payments do not overlap' : 'too little overlap to group commits'}; group commit across channels needs payments in flight together`;
      }
      figures.push(
        f,
        { key: 'onewayPayerFsyncsPerPayment', label: 'of which payer', value: round(ft.a, 3), unit: 'fsyncs' },
        { key: 'onewayPayeeFsyncsPerPayment', label: 'of which payee', value: round(ft.b, 3), unit: 'fsyncs' },
      );
    } else {
      figures.push(unmeasured({ key: 'fsyncsPerPayment', label: 'LMDB write transactions per one-way payment', unit: 'fsyncs', target: { op: '<=', value: 1 } }, noStats));
    }
    if (fs) figures.push({ key: 'onewayFsyncsPerPaymentSequential', label: 'the same, one payment at a time (nothing to group)', value: round(fs.total, 3), unit: 'fsyncs' });

    figures.push({
      key: 'deviceIdleCpuPercent',
      label: `payer (device) process CPU while idle with an open channel (session timers, chain polling over HTTP every 100 ms; payee ${round(a.idleCpu.bMsPerSec / 10, 2)} %)`,
      value: round(a.idleCpu.aMsPerSec / 10, 2),
      unit: '% of a core',
    });
    const importsCeiling = { key: 'importsOnlyRssMb', label: 'a node process that only imported the same modules (same bundle, nothing started)', value: round(r.startup.importsRssBytes / MB), unit: 'MB' };
    figures.push({ key: 'deviceRssIdleMb', label: `payer (device) process RSS, channel open, before any payment (heap ${round(a.idle.heapUsedBytes / MB)} MB)`, value: round(a.idle.rssBytes / MB), unit: 'MB', ceiling: importsCeiling });
    const lr = a.longRun;
    const bound = opts.quick
      ? `quick run: stopped after ${round(lr.elapsedMs / 1000)} s, not ${LONG_RUN_PAYMENTS.toLocaleString('en')}`
      : lr.bounded
        ? `stopped at the ${LONG_RUN_BOUND_MS / 1000} s bound: ${LONG_RUN_PAYMENTS.toLocaleString('en')} not reached`
        : `${LONG_RUN_PAYMENTS.toLocaleString('en')} reached`;
    const rss: Figure = {
      key: 'deviceRssMb',
      label: `payer (device) process RSS after ${lr.payments.toLocaleString('en')} payments on the channel (${bound}; heap ${round(lr.heapUsedBytes / MB)} MB)`,
      value: round(lr.rssBytes / MB),
      unit: 'MB',
      ceiling: importsCeiling,
      target: { op: '<=', value: 64 },
    };
    if (lr.rssBytes / MB > 64) {
      rss.why = `${round(r.startup.importsRssBytes / MB)} MB are Node plus the imported modules before anything runs (bare node: ${round(r.startup.bareRssBytes / MB)} MB); the running node adds ${round((lr.rssBytes - r.startup.importsRssBytes) / MB)} MB (heap in use ${round(lr.heapUsedBytes / MB)} MB)`;
    }
    figures.push(
      rss,
      { key: 'deviceRssPayments', label: 'payments on the channel when deviceRssMb was read', value: lr.payments, unit: 'payments' },
      { key: 'nodeBareRssMb', label: "RSS of `node -e ''` (no modules)", value: round(r.startup.bareRssBytes / MB), unit: 'MB' },
    );
    const cs = a.coldStart;
    const startCeiling = { key: 'bundleImportMs', label: 'spawn → the same bundle imported (nothing started), seen by the parent', value: ms(r.startup.importsStartMs), unit: 'ms' };
    if ('error' in cs) {
      figures.push(unmeasured({ key: 'coldStartToFirstPaymentMs', label: 'cold start to first payment', unit: 'ms', ceiling: startCeiling }, cs.error));
    } else {
      figures.push({
        key: 'coldStartToFirstPaymentMs',
        label: `cold start: spawn of a payer with an open channel in its data dir → first payment acknowledged (in the child: imports ${ms(cs.importedAtMs)} ms, node up ${ms(cs.startedAtMs)} ms, paid ${ms(cs.paidAtMs)} ms after process start)`,
        value: ms(cs.ms),
        unit: 'ms',
        ceiling: startCeiling,
      });
    }
    figures.push({ key: 'nodeBareStartMs', label: "spawn → exit of `node -e ''`", value: ms(r.startup.bareStartMs), unit: 'ms' });
    return figures;
  },
};

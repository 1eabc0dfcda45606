/**
 * Child process of the bench (run bundled: `node <bundle> <role> [json]`, IPC to the parent).
 *
 *   node      a Trickle node (src/cli/setup.ts startLocalNode: seed, LMDB store, simnet chain over HTTP,
 *             MQTT messenger, one-way runtime, and RSMC when asked), driven by the parent's commands
 *   coldstart the same on an existing data dir, which pays once on its open channel at once and reports
 *             when that payment was acknowledged (cold start to first payment)
 *   imports   nothing but this bundle's imports: reports its RSS and exits (the RSS/start-up ceiling)
 *   mqtt      a bare mqtt.js client for the broker round-trip ceiling (./party-mqtt.ts)
 *
 * Requests are `{ id, cmd, ...args }`; answers `{ id, ok, result | error }`; unasked messages `{ event }`.
 */
import { bytesToHex } from '../src/bytes.js';
import type { OnewayChannel } from '../src/channel/oneway/channel.js';
import type { RsmcChannel } from '../src/channel/rsmc/channel.js';
import { startLocalNode, type LocalNode } from '../src/cli/setup.js';
import { useBenchBackend, cryptoCounts } from './crypto.js';
import { mqttCommand } from './party-mqtt.js';

const importedAtMs = performance.now();

export interface NodeInit {
  dataDir: string;
  brokerUrl: string;
  simnetUrl: string;
  /** Sell the bench service over one-way channels (payee). */
  payee: boolean;
  /** Run the RSMC runtime too. */
  rsmc: boolean;
}

/** What the payee sells: 1 msat a unit, capacities wide enough for 100k payments of 1 sat. */
export const BENCH_OFFER = {
  serviceId: 'bench',
  unit: 'msat',
  tariffMsatPerUnit: 1n,
  creditWindowUnits: 1_000_000n,
  minCapacitySat: 10_000n,
  maxCapacitySat: 10_000_000n,
};

export interface Stats {
  /** LMDB write transactions so far (LmdbStore.stats()), or null when the store cannot say. */
  writeTransactions: number | null;
  rssBytes: number;
  heapUsedBytes: number;
  /** User + system CPU of this process so far. */
  cpuMicros: number;
  crypto: ReturnType<typeof cryptoCounts>;
  /** Payments on the channel under test (payer: acknowledged; payee: stored; RSMC: both ways). */
  payments: number | null;
  /** RSMC: our current commitment number. */
  commitmentNumber: number | null;
}

export interface PhaseResult {
  payments: number;
  elapsedMs: number;
  failed: number;
  error?: string;
}

let local: LocalNode | undefined;
let oneway: OnewayChannel | undefined;
let rsmc: RsmcChannel | undefined;

/**
 * Timestamped events while tracing (latency phases): pay() called and resolved, each wire message handed
 * to the messenger and each one delivered by it. The clock is CLOCK_MONOTONIC (process.hrtime), the same
 * for every process on the machine, so the parent can merge both sides' events into one timeline.
 */
let trace: Array<[number, string]> | undefined;
const MAX_TRACE = 50_000;

function stamp(what: string): void {
  if (trace && trace.length < MAX_TRACE) trace.push([Number(process.hrtime.bigint()) / 1e6, what]);
}

function instrument(node: LocalNode): void {
  const m = node.messenger;
  const send = m.send.bind(m);
  m.send = (peer, message) => {
    stamp(`send ${message.type}`);
    return send(peer, message);
  };
  m.onMessage((_peer, message) => stamp(`recv ${message.type}`));
}

function send(message: Record<string, unknown>): void {
  process.send?.(message);
}

async function startNode(init: NodeInit): Promise<LocalNode> {
  return startLocalNode({
    dataDir: init.dataDir,
    brokerUrl: init.brokerUrl,
    chain: { kind: 'simnet', url: init.simnetUrl },
    ...(init.payee ? { offers: [BENCH_OFFER] } : {}),
    node: { payTimeoutMs: 120_000 },
    ...(init.rsmc ? { rsmc: { policy: { toSelfDelay: 6, maxContributionSat: 0n }, node: { payTimeoutMs: 120_000 } } } : {}),
  });
}

function stats(): Stats {
  const store = local?.store as unknown as { stats?: () => { writeTransactions: number } } | undefined;
  const cpu = process.cpuUsage();
  const channel = oneway ?? local?.node.channels().find((c) => c.phase === 'open');
  const r = rsmc ?? local?.rsmc?.channels().find((c) => c.phase === 'open');
  return {
    writeTransactions: typeof store?.stats === 'function' ? store.stats().writeTransactions : null,
    rssBytes: process.memoryUsage().rss,
    heapUsedBytes: process.memoryUsage().heapUsed,
    cpuMicros: cpu.user + cpu.system,
    crypto: cryptoCounts(),
    payments: r ? Number(r.updates) : channel ? Number(channel.payments) : null,
    commitmentNumber: r ? Number(r.snapshot().localCommit?.number ?? 0n) : null,
  };
}

/**
 * Keep `window` payments outstanding until `durationMs` has passed (or `maxPayments` were started), then
 * let the outstanding ones finish. The rate is payments ÷ the whole time, drain included.
 */
async function payWindow(pay: () => Promise<unknown>, window: number, durationMs: number, maxPayments = Infinity, progress?: (done: number) => void): Promise<PhaseResult> {
  const start = performance.now();
  const deadline = start + durationMs;
  let started = 0;
  let done = 0;
  let failed = 0;
  let error: string | undefined;
  let inFlight = 0;
  let lastProgress = start;
  await new Promise<void>((resolve) => {
    const fill = (): void => {
      while (inFlight < window && failed === 0 && started < maxPayments && performance.now() < deadline) {
        started++;
        inFlight++;
        pay().then(
          () => void done++,
          (e: unknown) => {
            failed++;
            error ??= (e as Error).message;
          },
        ).finally(() => {
          inFlight--;
          if (progress && performance.now() - lastProgress > 10_000) {
            lastProgress = performance.now();
            progress(done);
          }
          fill();
          if (inFlight === 0) resolve();
        });
      }
      if (inFlight === 0) resolve();
    };
    fill();
  });
  return { payments: done, elapsedMs: performance.now() - start, failed, ...(error !== undefined ? { error } : {}) };
}

/** Up to `count` payments one after the other, for at most `maxMs`; the duration of each pay() call, ms. */
async function paySequential(pay: () => Promise<unknown>, count: number, maxMs = Infinity): Promise<{ samplesMs: number[]; elapsedMs: number }> {
  const samplesMs: number[] = [];
  const start = performance.now();
  for (let i = 0; i < count && performance.now() - start < maxMs; i++) {
    const t = performance.now();
    await pay();
    samplesMs.push(performance.now() - t);
  }
  return { samplesMs, elapsedMs: performance.now() - start };
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`no ${what} yet`);
  return value;
}

function payFn(kind: 'oneway' | 'rsmc', amountMsat: bigint): () => Promise<unknown> {
  const ch = kind === 'oneway' ? need(oneway, 'one-way channel') : need(rsmc, 'RSMC channel');
  return async () => {
    stamp('call');
    const receipt = await ch.pay(amountMsat);
    stamp('resolved');
    return receipt;
  };
}

type Request = { id: number; cmd: string } & Record<string, unknown>;

async function handle(req: Request): Promise<unknown> {
  switch (req.cmd) {
    case 'init': {
      const init = req.init as NodeInit;
      local = await startNode(init);
      instrument(local);
      const backend = useBenchBackend();
      return {
        nodeId: local.node.nodeId,
        walletScriptHex: bytesToHex(local.keys.walletScript),
        backend,
        stats: stats(),
      };
    }
    case 'oneway-open': {
      const node = need(local, 'node').node;
      oneway = await node.open(req.peer as string, { capacitySat: req.capacitySat as bigint, expiryBlocks: 1000 });
      return { channelId: oneway.id };
    }
    case 'rsmc-open': {
      const node = need(need(local, 'node').rsmc, 'RSMC runtime');
      rsmc = await node.openRsmc(req.peer as string, { localSat: req.localSat as bigint });
      return { channelId: rsmc.id };
    }
    case 'rsmc-wait-open': {
      // The accepter: its end of the channel, open.
      const node = need(need(local, 'node').rsmc, 'RSMC runtime');
      const deadline = performance.now() + 60_000;
      for (;;) {
        const ch = node.channel(req.channelId as string);
        if (ch?.phase === 'open') {
          rsmc = ch;
          return { channelId: ch.id };
        }
        if (performance.now() > deadline) throw new Error('the RSMC channel did not open on the accepter');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    case 'pay-window':
      return payWindow(payFn(req.kind as 'oneway' | 'rsmc', req.amountMsat as bigint), req.window as number, req.durationMs as number, (req.maxPayments as number | undefined) ?? Infinity, (done) =>
        send({ event: 'progress', done }),
      );
    case 'pay-sequential':
      return paySequential(payFn(req.kind as 'oneway' | 'rsmc', req.amountMsat as bigint), req.count as number, (req.maxMs as number | undefined) ?? Infinity);
    case 'stats':
      return stats();
    case 'trace-start':
      trace = [];
      return { tracing: true };
    case 'trace-stop': {
      const events = trace ?? [];
      trace = undefined;
      return { events };
    }
    case 'mqtt':
      return mqttCommand(req);
    default:
      throw new Error(`unknown command ${req.cmd}`);
  }
}

async function exit(code: number): Promise<never> {
  const closing = local?.close().catch(() => undefined);
  // A node that will not close in time is killed by its parent anyway.
  await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  process.exit(code);
}

function serve(): void {
  process.on('message', (raw) => {
    const req = raw as Request;
    if (req.cmd === 'exit') {
      void exit(0);
      return;
    }
    handle(req).then(
      (result) => send({ id: req.id, ok: true, result }),
      (error: unknown) => send({ id: req.id, ok: false, error: (error as Error).stack ?? String(error) }),
    );
  });
  // The parent is gone: so are we.
  process.on('disconnect', () => void exit(1));
}

async function coldStart(init: NodeInit): Promise<void> {
  local = await startNode(init);
  const startedAtMs = performance.now();
  oneway = local.node.channels().find((c) => c.role === 'payer' && c.phase === 'open');
  if (!oneway) throw new Error('cold start: no open channel in the data dir');
  await oneway.pay(1000n);
  const paidAtMs = performance.now();
  send({ event: 'first-payment', importedAtMs, startedAtMs, paidAtMs, backend: useBenchBackend(), rssBytes: process.memoryUsage().rss });
}

const role = process.argv[2];
switch (role) {
  case 'node':
    useBenchBackend();
    serve();
    break;
  case 'coldstart':
    useBenchBackend();
    serve();
    coldStart(JSON.parse(process.argv[3]!) as NodeInit).catch((error: unknown) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      void exit(1);
    });
    break;
  case 'imports':
    process.send?.({ event: 'imported', importedAtMs, rssBytes: process.memoryUsage().rss }, () => process.exit(0));
    break;
  default:
    process.stderr.write(`bench/party: unknown role ${String(role)}\n`);
    process.exit(2);
}

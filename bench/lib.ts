/**
 * The bench framework (issue 8): what a section returns (Figure), how figures are summarised (quantiles,
 * rates), and the machinery the process runs share — child processes spoken to over IPC and always
 * killed, temp dirs always removed, an embedded aedes broker that counts PUBLISH payload bytes, and
 * the simnet served over loopback HTTP. Loopback only, everywhere.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';

export interface Figure {
  /** JSON key, named with its unit: 'onewayPaymentsPerSec', 'onewayP99Ms', 'onewayWireBytesPerPayment'. */
  key: string;
  /** Table row text. */
  label: string;
  /** null only when it could not be measured (say why in `why`). */
  value: number | null;
  /** 'payments/s', 'ms', 'B', 'MB', 'fsyncs', 's', 'ops/s', ... */
  unit: string;
  /**
   * The limit it is measured against, measured in the same run. `key` (an addition to the issue's
   * contract, optional) names it in the JSON; without one it is `<figure key>Ceiling`.
   */
  ceiling?: { label: string; value: number; unit: string; key?: string };
  /** The target, when it has one. */
  target?: { op: '>=' | '<='; value: number };
  /** Printed when the target is missed (or value is null): why. */
  why?: string;
}

export interface BenchOptions {
  quick: boolean;
  /** Progress, to stderr. */
  log: (line: string) => void;
}

export type Section = { name: string; run: (opts: BenchOptions) => Promise<Figure[]> };

/** Facts about the run for the JSON's `meta`; sections fill in what they learn (backend, broker). */
export const runMeta: Record<string, unknown> = {};

// ---- numbers ----

/** The q-quantile (0..1) of `samples` by nearest rank; NaN when empty. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** Round to `digits` significant digits (table and JSON stay readable; the noise is larger anyway). */
export function round(value: number, digits = 3): number {
  if (!Number.isFinite(value) || value === 0) return value;
  const scale = 10 ** (digits - 1 - Math.floor(Math.log10(Math.abs(value))));
  return Math.round(value * scale) / scale;
}

/** Run `op` repeatedly for about `ms` (after a short warm-up); ops per second. */
export function opsPerSec(op: () => void, ms: number): number {
  const warm = performance.now() + Math.min(200, ms / 5);
  while (performance.now() < warm) op();
  let n = 0;
  const start = performance.now();
  let now = start;
  do {
    for (let i = 0; i < 16; i++) op();
    n += 16;
    now = performance.now();
  } while (now - start < ms);
  return (n * 1000) / (now - start);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A figure that could not be measured, with why. */
export function unmeasured(figure: Omit<Figure, 'value' | 'why'>, why: string): Figure {
  return { ...figure, value: null, why };
}

/** Whether `figure` misses its target (a null value with a target counts as missed). */
export function missesTarget(figure: Figure): boolean {
  if (!figure.target) return false;
  if (figure.value === null) return true;
  return figure.target.op === '>=' ? figure.value < figure.target.value : figure.value > figure.target.value;
}

// ---- temp dirs and children: removed and killed whatever happens ----

const liveDirs = new Set<string>();
const liveChildren = new Set<ChildProcess>();
let exitHook = false;

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => process.exit(130));
  }
}

/** A fresh directory under the OS temp dir (on this disk: LMDB's fsyncs are real), removed at exit. */
export function tempDir(prefix: string): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), `trickle-bench-${prefix}-`));
  liveDirs.add(dir);
  return dir;
}

export function removeDir(dir: string): void {
  liveDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** A message a child sends without being asked (e.g. `{ event: 'paid', ... }`). */
export type ChildEvent = { event: string } & Record<string, unknown>;

/**
 * A child process running a bundled entry, spoken to over IPC with structured-clone serialisation
 * (bigints pass). request() sends `{ id, cmd, ...args }` and resolves with the child's `result`.
 */
export class Child {
  readonly proc: ChildProcess;
  readonly name: string;
  /** performance.now() in this process just before the spawn. */
  readonly spawnedAt: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; cmd: string }>();
  readonly #events: ChildEvent[] = [];
  readonly #eventWaiters = new Set<() => void>();
  #nextId = 1;
  #stderr = '';

  constructor(name: string, script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    installExitHook();
    this.name = name;
    this.spawnedAt = performance.now();
    // The crash tests' hooks must never reach a bench node, whatever the shell exported.
    const { TRICKLE_CRASH_AT: _crash, TRICKLE_TRACE: _trace, ...inherited } = process.env;
    this.proc = fork(script, args, {
      env: { ...inherited, ...env },
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      execArgv: [],
    });
    liveChildren.add(this.proc);
    this.proc.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-8000);
    });
    this.proc.on('message', (raw) => this.#onMessage(raw as Record<string, unknown>));
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        liveChildren.delete(this.proc);
        const why = new Error(`${this.name} exited (${code ?? signal}) ${this.stderrTail()}`);
        for (const p of this.#pending.values()) p.reject(why);
        this.#pending.clear();
        for (const w of [...this.#eventWaiters]) w();
        resolve({ code, signal });
      });
    });
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  stderrTail(): string {
    const tail = this.#stderr.trim();
    return tail === '' ? '' : `; stderr: ${tail.slice(-1500)}`;
  }

  request<T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
    if (!this.alive) return Promise.reject(new Error(`${this.name} is not running${this.stderrTail()}`));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name}: no answer to ${cmd} within ${timeoutMs} ms${this.stderrTail()}`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        cmd,
      });
      this.proc.send({ id, cmd, ...args });
    });
  }

  /** The first event named `name` (already received or still to come); rejects if the child exits first. */
  waitEvent(name: string, timeoutMs = 120_000): Promise<ChildEvent & { receivedAt: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#eventWaiters.delete(check);
        reject(new Error(`${this.name}: no '${name}' within ${timeoutMs} ms${this.stderrTail()}`));
      }, timeoutMs);
      const check = (): void => {
        const found = this.#events.find((e) => e.event === name);
        if (found) {
          clearTimeout(timer);
          this.#eventWaiters.delete(check);
          resolve(found as ChildEvent & { receivedAt: number });
        } else if (!this.alive) {
          clearTimeout(timer);
          this.#eventWaiters.delete(check);
          reject(new Error(`${this.name} exited before '${name}'${this.stderrTail()}`));
        }
      };
      this.#eventWaiters.add(check);
      check();
    });
  }

  /** Ask it to exit cleanly; SIGKILL if it has not within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.alive) return;
    try {
      this.proc.send({ id: 0, cmd: 'exit' });
    } catch {
      // the IPC channel is already gone
    }
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (this.alive) this.proc.kill('SIGKILL');
    await this.exited;
  }

  #onMessage(message: Record<string, unknown>): void {
    if (typeof message.event === 'string') {
      this.#events.push({ ...(message as ChildEvent), receivedAt: performance.now() });
      for (const w of [...this.#eventWaiters]) w();
      return;
    }
    const pending = this.#pending.get(message.id as number);
    if (!pending) return;
    this.#pending.delete(message.id as number);
    if (message.ok) pending.resolve(message.result);
    else pending.reject(new Error(`${this.name}: ${pending.cmd} failed: ${String(message.error)}${this.stderrTail()}`));
  }
}

/** Run `body` with the children it starts; every one of them is stopped (or killed) afterwards. */
export async function withChildren<T>(body: (spawn: (c: Child) => Child) => Promise<T>): Promise<T> {
  const started: Child[] = [];
  try {
    return await body((c) => {
      started.push(c);
      return c;
    });
  } finally {
    await Promise.all(started.map((c) => c.stop(5_000)));
  }
}

// ---- the embedded broker, counting what it is sent ----

export interface CountingBroker {
  readonly url: string;
  readonly kind: 'aedes' | 'mosquitto';
  /** PUBLISH packets from clients and their payload bytes so far (undefined: this broker cannot count). */
  counts(): { publishes: number; payloadBytes: number; topicBytes: number } | undefined;
  close(): Promise<void>;
}

/**
 * The embedded aedes broker, set up as src/transport/mqtt/broker.ts's startEmbeddedBroker() does
 * (aedes 1.x over node:net on loopback, TCP_NODELAY, routine client errors silenced, every socket torn
 * down on close), plus a 'publish' listener that counts what clients publish. That module does not hand out
 * its aedes instance, hence this copy; the broker's work per message is the same.
 */
export async function startCountingBroker(): Promise<CountingBroker> {
  const aedes = await Aedes.createBroker();
  aedes.on('clientError', () => {});
  aedes.on('connectionError', () => {});
  let publishes = 0;
  let payloadBytes = 0;
  let topicBytes = 0;
  // client === null: published by the broker itself ($SYS heartbeats, wills): not client traffic.
  aedes.on('publish', (packet, client) => {
    if (client === null) return;
    publishes++;
    payloadBytes += packet.payload.length;
    topicBytes += Buffer.byteLength(packet.topic);
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true); // as broker.ts: small frames that wait for answers, no Nagle delay
    aedes.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('counting broker: no TCP address');
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    kind: 'aedes',
    counts: () => ({ publishes, payloadBytes, topicBytes }),
    close: () => {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        await closed;
      })();
      return closing;
    },
  };
}

/** Mosquitto on a random loopback port when the binary is installed, else undefined. */
export async function startMosquittoIfPresent(): Promise<CountingBroker | undefined> {
  const { mosquittoPath, startMosquitto } = await import('../test/helpers/mosquitto.js');
  if (mosquittoPath() === undefined) return undefined;
  const broker = await startMosquitto();
  runMeta.mosquitto = mosquittoPath();
  return { url: broker.url, kind: 'mosquitto', counts: () => undefined, close: () => broker.stop() };
}

// ---- what every process run needs: the party bundle, a chain, and the ceilings measured around it ----

let partyBundle: Promise<string> | undefined;

/** The child entry bench/party.ts, bundled once (node starts it without a TypeScript loader), removed at exit. */
export function partyScript(): Promise<string> {
  partyBundle ??= import('../test/helpers/bundle.js').then(async ({ bundleEntry }) => {
    const path = await bundleEntry('bench/party.ts');
    installExitHook();
    process.on('exit', () => rmSync(path, { force: true }));
    return path;
  });
  return partyBundle;
}

export async function spawnParty(name: string, role: 'node' | 'coldstart' | 'imports', arg?: string): Promise<Child> {
  return new Child(name, await partyScript(), arg === undefined ? [role] : [role, arg]);
}

/** A Simnet served on loopback HTTP, mining every 100 ms while its mempool holds something. */
export async function startChain(): Promise<{ url: string; simnet: import('../src/chain/simnet/index.js').Simnet; close(): Promise<void> }> {
  const { Simnet } = await import('../src/chain/simnet/index.js');
  const { serveSimnet } = await import('../src/chain/simnet/server.js');
  const simnet = new Simnet();
  const server = await serveSimnet(simnet, { autoMine: { intervalMs: 100 } });
  return { url: server.url, simnet, close: () => server.close() };
}

export interface LmdbCeiling {
  /** One commit at a time (each one a write transaction and its syncs). */
  sequential: { commitsPerSec: number; p50Ms: number; p99Ms: number };
  /** 64 commits outstanding: lmdb-js runs waiting commits in one write transaction. */
  grouped: { commitsPerSec: number; txnsPerCommit: number | null };
}

let lmdbMemo: Promise<LmdbCeiling> | undefined;

/** Raw durable commits of the LmdbStore the nodes use, on this disk: one 200-byte value per commit. */
export function measureLmdb(opts: BenchOptions): Promise<LmdbCeiling> {
  lmdbMemo ??= (async () => {
    const { LmdbStore } = await import('../src/store/lmdb.js');
    const dir = tempDir('lmdb');
    const store = await LmdbStore.open({ path: join(dir, 'store') });
    try {
      const value = new Uint8Array(200).fill(7);
      const ms = opts.quick ? 1500 : 5000;
      let i = 0;
      const commit = (): Promise<void> => store.commit([{ key: `bench/${i++ % 1000}`, value }]);
      for (let w = 0; w < 20; w++) await commit();
      const samples: number[] = [];
      const start = performance.now();
      while (performance.now() - start < ms) {
        const t = performance.now();
        await commit();
        samples.push(performance.now() - t);
      }
      const sequential = { commitsPerSec: (samples.length * 1000) / (performance.now() - start), p50Ms: quantile(samples, 0.5), p99Ms: quantile(samples, 0.99) };
      const txns = (): number | null => {
        const s = store as unknown as { stats?: () => { writeTransactions: number } };
        return typeof s.stats === 'function' ? s.stats().writeTransactions : null;
      };
      const before = txns();
      let done = 0;
      const gStart = performance.now();
      await new Promise<void>((resolve, reject) => {
        let inFlight = 0;
        const fill = (): void => {
          while (inFlight < 64 && performance.now() - gStart < ms) {
            inFlight++;
            commit().then(() => {
              inFlight--;
              done++;
              fill();
              if (inFlight === 0) resolve();
            }, reject);
          }
        };
        fill();
      });
      const elapsed = performance.now() - gStart;
      const after = txns();
      return {
        sequential,
        grouped: { commitsPerSec: (done * 1000) / elapsed, txnsPerCommit: before === null || after === null ? null : (after - before) / done },
      };
    } finally {
      await store.close();
      removeDir(dir);
    }
  })();
  return lmdbMemo;
}

export interface BrokerCeiling {
  /** Round trips/s with 64 outstanding. */
  roundTripsPerSec: number;
  /** One at a time. */
  p50Ms: number;
  p99Ms: number;
  samples: number;
  payloadBytes: number;
}

const brokerMemo = new Map<string, Promise<BrokerCeiling>>();

/**
 * Child ↔ child QoS 1 ping-pong of 150-byte payloads (about a oneway_pay frame) through `brokerUrl`, with
 * mqtt.js set up as the Trickle transport sets it up (TCP_NODELAY): the fastest a payment round trip can
 * be on this broker with nothing else to do.
 */
export function measureBroker(brokerUrl: string, opts: BenchOptions): Promise<BrokerCeiling> {
  let memo = brokerMemo.get(brokerUrl);
  if (!memo) {
    const base = `bench/${process.pid}/${brokerMemo.size}`;
    memo = withChildren(async (own) => {
      const echo = own(await spawnParty('mqtt-echo', 'node'));
      const ping = own(await spawnParty('mqtt-ping', 'node'));
      const payloadBytes = 150;
      await echo.request('mqtt', { op: 'echo', url: brokerUrl, listen: `${base}/a`, reply: `${base}/b` });
      const r = await ping.request<{ windowed: { roundTrips: number; elapsedMs: number }; sequentialMs: number[] }>('mqtt', {
        op: 'ping',
        url: brokerUrl,
        listen: `${base}/b`,
        target: `${base}/a`,
        window: 64,
        durationMs: opts.quick ? 2000 : 5000,
        count: opts.quick ? 1000 : 5000,
        sequentialMaxMs: opts.quick ? 3000 : 15_000,
        payloadBytes,
      });
      await Promise.all([echo.request('mqtt', { op: 'close' }), ping.request('mqtt', { op: 'close' })]);
      const seq = r.sequentialMs.slice(Math.min(10, r.sequentialMs.length >> 3)); // the first few connect the path
      return {
        roundTripsPerSec: (r.windowed.roundTrips * 1000) / r.windowed.elapsedMs,
        p50Ms: quantile(seq, 0.5),
        p99Ms: quantile(seq, 0.99),
        samples: seq.length,
        payloadBytes,
      };
    });
    brokerMemo.set(brokerUrl, memo);
  }
  return memo;
}

export interface StartupCeiling {
  /** The party bundle with every module a node needs imported, nothing started (median of 3). */
  importsRssBytes: number;
  /** Spawn → that bundle's imports done, as the parent sees it (median of 3). */
  importsStartMs: number;
  /** `node -e ''`: RSS and spawn → exit (median of 3). */
  bareRssBytes: number;
  bareStartMs: number;
}

let startupMemo: Promise<StartupCeiling> | undefined;

export function measureStartup(): Promise<StartupCeiling> {
  startupMemo ??= (async () => {
    const { execFile } = await import('node:child_process');
    const imports: Array<{ rss: number; ms: number }> = [];
    const bare: Array<{ rss: number; ms: number }> = [];
    for (let i = 0; i < 3; i++) {
      const child = await spawnParty('imports', 'imports');
      const ev = await child.waitEvent('imported', 30_000);
      imports.push({ rss: ev.rssBytes as number, ms: ev.receivedAt - child.spawnedAt });
      await child.exited;
      const t = performance.now();
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['-e', 'process.stdout.write(String(process.memoryUsage().rss))'], (error, stdout) => (error ? reject(error) : resolve(stdout))),
      );
      bare.push({ rss: Number(out), ms: performance.now() - t });
    }
    const med = (xs: number[]): number => quantile(xs, 0.5);
    return {
      importsRssBytes: med(imports.map((x) => x.rss)),
      importsStartMs: med(imports.map((x) => x.ms)),
      bareRssBytes: med(bare.map((x) => x.rss)),
      bareStartMs: med(bare.map((x) => x.ms)),
    };
  })();
  return startupMemo;
}

// ---- where a round trip's time goes ----

export interface Breakdown {
  /** Consecutive steps of the most common event sequence and the median time between each and the last. */
  steps: Array<{ event: string; medianMs: number }>;
  /** Round trips with that sequence, of all traced. */
  matched: number;
  traced: number;
}

/**
 * Merge two processes' traces (bench/party.ts: [CLOCK_MONOTONIC ms, event]) into one timeline, cut it at
 * each `call` of side A, and take the median gap before each step of the most common sequence.
 */
export function breakdown(a: { name: string; events: Array<[number, string]> }, b: { name: string; events: Array<[number, string]> }): Breakdown | undefined {
  const all = [...a.events.map(([t, e]) => [t, `${a.name} ${e}`] as const), ...b.events.map(([t, e]) => [t, `${b.name} ${e}`] as const)].sort((x, y) => x[0] - y[0]);
  const start = `${a.name} call`;
  const rounds: Array<Array<readonly [number, string]>> = [];
  for (const ev of all) {
    if (ev[1] === start) rounds.push([ev]);
    else rounds.at(-1)?.push(ev);
  }
  if (rounds.length === 0) return undefined;
  const shapes = new Map<string, Array<Array<readonly [number, string]>>>();
  for (const r of rounds) {
    const key = r.map((e) => e[1]).join('|');
    shapes.set(key, [...(shapes.get(key) ?? []), r]);
  }
  const common = [...shapes.values()].sort((x, y) => y.length - x.length)[0]!;
  const steps = common[0]!.map((e, i) => ({ event: e[1], medianMs: i === 0 ? 0 : quantile(common.map((r) => r[i]![0] - r[i - 1]![0]), 0.5) }));
  return { steps, matched: common.length, traced: rounds.length };
}

/** "call → payer send oneway_pay 0.8 ms → payee recv oneway_pay 0.3 ms → …" */
export function breakdownText(b: Breakdown | undefined): string {
  if (!b) return 'no trace';
  const steps = b.steps.map((s, i) => (i === 0 ? s.event : `${s.event} +${round(s.medianMs, 2)} ms`)).join(' → ');
  return `${steps} (medians of the ${b.matched} of ${b.traced} round trips with this sequence)`;
}

/**
 * The crash harness's child processes: each life of a party is one `node <bundle> <trickle args> --json`
 * process whose JSON lines are collected as they come. A life ends by exiting, by its own crash hook
 * (TRICKLE_CRASH_AT: SIGKILL from inside) or by the parent's SIGKILL; the harness tells these apart by
 * `killedByParent`. Every child is registered until it exits, so `killAllChildren()` (and, last resort,
 * the parent's own exit) leaves no orphan behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';
import { bundleEntry, REPO_ROOT } from './bundle.js';

export type Event = Record<string, unknown>;
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

const scratch = new Set<string>();

/** SIGKILL every child still running (harness teardown; also runs when the parent exits). */
export function killAllChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

/** Remove `dir` if the parent exits or is interrupted before the harness removes it itself. */
export function removeOnExit(dir: string): () => void {
  scratch.add(dir);
  return () => scratch.delete(dir);
}

function cleanUp(): void {
  killAllChildren();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
}

/**
 * Wakes whoever waits on it when anything happens (a line from a child, an exit): the run loops wait on
 * one pulse instead of on each process.
 */
export class Pulse {
  #waiters: Array<() => void> = [];

  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves at the next notify() or after `ms`, whichever comes first. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(done);
    });
  }
}

export class Life {
  readonly events: Event[] = [];
  readonly stderr: string[] = [];
  readonly exit: Promise<Exit>;
  exited: Exit | undefined;
  killedByParent = false;
  readonly startedMs = performance.now();
  /** When it last printed a line (or started, or ended). */
  lastActivityMs = performance.now();
  readonly #proc: ChildProcess;

  constructor(
    readonly name: string,
    proc: ChildProcess,
    readonly crashAt: string | undefined,
    pulse: Pulse,
  ) {
    this.#proc = proc;
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      this.lastActivityMs = performance.now();
      try {
        this.events.push(JSON.parse(line) as Event);
      } catch {
        this.stderr.push(`stdout: ${line}`);
      }
      pulse.notify();
    });
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      if (this.stderr.length < 400) this.stderr.push(line);
    });
    // 'close', not 'exit': by then every line the child wrote has been read.
    this.exit = new Promise((resolve) => {
      proc.once('close', (code, signal) => {
        children.delete(proc);
        this.lastActivityMs = performance.now();
        this.exited = { code, signal };
        resolve(this.exited);
        pulse.notify();
      });
    });
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  get running(): boolean {
    return this.exited === undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Died of SIGKILL (its own crash hook or ours): an injection that happened. */
  get crashed(): boolean {
    return this.exited?.signal === 'SIGKILL';
  }

  find(predicate: (e: Event) => boolean): Event | undefined {
    return this.events.find(predicate);
  }

  /** The parent's crash: SIGKILL at an arbitrary moment. */
  kill(): void {
    if (!this.running) return;
    this.killedByParent = true;
    this.#proc.kill('SIGKILL');
  }

  /** SIGTERM (a clean shutdown), SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 10_000): Promise<Exit> {
    if (this.running) {
      this.#proc.kill('SIGTERM');
      const timer = setTimeout(() => this.#proc.kill('SIGKILL'), graceMs);
      await this.exit;
      clearTimeout(timer);
    }
    return this.exit;
  }

  tail(lines = 12): string {
    return this.stderr.slice(-lines).join('\n');
  }
}

let inlined: Promise<string> | undefined;

/**
 * The CLI as one file with its packages inlined too (all but the native addons and the wasm one, which
 * load their binaries relative to themselves): each start then reads one file instead of a few hundred
 * from node_modules, about 40 % less CPU than ./bundle.ts's bundle, which keeps packages external. The
 * harness starts a process per injection, on machines where CPU is the limit. CRASH_BUNDLE=external
 * uses bundleEntry's bundle instead.
 */
function partyBundle(): Promise<string> {
  if (process.env['CRASH_BUNDLE'] === 'external') return bundleEntry('test/helpers/crash-party.ts');
  inlined ??= (async () => {
    const outfile = join(REPO_ROOT, 'node_modules', '.cache', 'trickle', `crash-party-inlined-${process.pid}.mjs`);
    await mkdir(dirname(outfile), { recursive: true });
    await build({
      entryPoints: [join(REPO_ROOT, 'test', 'helpers', 'crash-party.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: ['lmdb', 'secp256k1', 'node-hid', 'tiny-secp256k1', 'bitcore-lib'],
      // CommonJS packages inlined into an ES module still call require() for Node's own modules.
      banner: { js: "import { createRequire as __trickleRequire } from 'node:module'; const require = __trickleRequire(import.meta.url);" },
      logLevel: 'error',
    });
    process.once('exit', () => rmSync(outfile, { force: true }));
    return outfile;
  })();
  return inlined;
}

/** Start one life: `trickle <args> --json` on the bundled CLI. */
export async function spawnTrickle(name: string, args: string[], env: Record<string, string | undefined>, pulse: Pulse): Promise<Life> {
  const entry = await partyBundle();
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', cleanUp);
    // Interrupted (Ctrl-C, a test runner's timeout): the long-running children would wait for a signal forever.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        cleanUp();
        process.exit(signal === 'SIGINT' ? 130 : 143);
      });
    }
  }
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  delete childEnv['TRICKLE_CRASH_AT'];
  delete childEnv['TRICKLE_TRACE'];
  // A killed peer that comes back with nothing to resume is noticed in seconds, not a minute (setup.ts).
  childEnv['TRICKLE_SESSION_RTO_MS'] = '300,1200,4,500';
  for (const [k, v] of Object.entries(env)) if (v !== undefined) childEnv[k] = v;
  const proc = spawn(process.execPath, [entry, ...args, '--json'], { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  return new Life(name, proc, env['TRICKLE_CRASH_AT'], pulse);
}

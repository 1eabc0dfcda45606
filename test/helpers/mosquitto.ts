/**
 * Runs a real mosquitto broker for tests: a fresh temp dir with a generated config, a random
 * free loopback port, optional password file and ACL, optional persistence, and restart() on
 * the same port so clients can reconnect to "the same" broker. Every process started here is
 * killed on stop() and, as a last resort, when the test process exits.
 *
 * Loopback only: the listener is always 127.0.0.1.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface MosquittoUser {
  username: string;
  password: string;
}

export interface MosquittoOptions {
  /** Require a username/password (anonymous access off) and optionally apply an ACL file. */
  auth?: { users: MosquittoUser[]; acl?: string };
  /** Keep sessions, queued messages and retained messages across restart(). */
  persistence?: boolean;
  /** Fixed port; default a random free one. */
  port?: number;
}

export interface MosquittoBroker {
  readonly url: string;
  readonly port: number;
  /** SIGTERM, wait for the exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /**
   * SIGTERM, wait for the exit, run `whileDown` (if given), then start again on the same port
   * with the same config (and database).
   */
  restart(whileDown?: () => Promise<void> | void): Promise<void>;
  /** Everything mosquitto logged so far (all runs). */
  logs(): string;
}

const HOST = '127.0.0.1';

/**
 * The ACL a site would deploy. Username = node id, so one set of `pattern` lines covers every
 * node: read only your own inbox, write any inbox, read/write your own status and
 * announcement, read everyone's.
 */
export const NODE_ACL = `
pattern read trickle/v1/node/%u/in
pattern write trickle/v1/node/+/in
pattern readwrite trickle/v1/node/%u/status
pattern read trickle/v1/node/+/status
pattern readwrite trickle/v1/announce/%u
pattern read trickle/v1/announce/+
`;
const MAX_LOG_CHARS = 1_000_000;

function findExecutable(name: string, extraDirs: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The mosquitto binary, or undefined if absent: $TRICKLE_MOSQUITTO if set (point it at a
 * missing file to try the skip path), else PATH, /usr/sbin and /usr/local/sbin.
 */
export function mosquittoPath(): string | undefined {
  const override = process.env.TRICKLE_MOSQUITTO;
  if (override !== undefined && override !== '') {
    try {
      accessSync(override, constants.X_OK);
      return override;
    } catch {
      return undefined;
    }
  }
  return findExecutable('mosquitto', ['/usr/sbin', '/usr/local/sbin']);
}

/** mosquitto_passwd (shipped with mosquitto on Debian), needed for brokers with passwords. */
export function mosquittoPasswdPath(): string | undefined {
  return findExecutable('mosquitto_passwd', ['/usr/bin', '/usr/local/bin', '/usr/sbin']);
}

// Last-resort cleanup: a test that forgets stop() (or throws past it) must not leave a broker
// running after the test process is gone.
const live = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
}
function track(child: ChildProcess): void {
  installExitHook();
  live.add(child);
  child.once('exit', () => live.delete(child));
}
function makeDir(): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'trickle-mosquitto-'));
  liveDirs.add(dir);
  return dir;
}
function removeDir(dir: string): void {
  liveDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** A port that was free a moment ago (bind to 0, read it, release it). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<MosquittoBroker> {
  const binary = mosquittoPath();
  if (binary === undefined) throw new Error('mosquitto not installed');
  const dir = makeDir();
  let log = '';
  const appendLog = (chunk: Buffer | string): void => {
    log += chunk.toString();
    if (log.length > MAX_LOG_CHARS) log = log.slice(-MAX_LOG_CHARS);
  };

  const lines = (port: number): string[] => {
    // stderr, not stdout: C stdio fully buffers a piped stdout, so lines would arrive late.
    const conf = [`listener ${port} ${HOST}`, 'set_tcp_nodelay true', 'log_dest stderr', 'log_type error', 'log_type warning', 'log_type notice', 'log_type information', 'log_timestamp false'];
    // Run as root (CI), mosquitto would switch to the 'mosquitto' user, which cannot read our
    // 0700 temp dir; 'user root' keeps it as is. Harmless for an unprivileged user.
    if (process.getuid?.() === 0) conf.push('user root');
    if (opts.auth) {
      conf.push('allow_anonymous false', `password_file ${join(dir, 'passwd')}`);
      if (opts.auth.acl !== undefined) conf.push(`acl_file ${join(dir, 'acl')}`);
    } else {
      conf.push('allow_anonymous true');
    }
    if (opts.persistence) {
      conf.push('persistence true', `persistence_location ${dir}/`, 'persistence_file mosquitto.db');
    }
    return conf;
  };

  try {
    if (opts.auth) {
      const passwd = mosquittoPasswdPath();
      if (passwd === undefined) throw new Error('mosquitto_passwd not installed');
      for (const { username, password } of opts.auth.users) {
        if (/[:\s]/.test(username) || username === '') throw new RangeError(`bad username ${JSON.stringify(username)}`);
        if (/[\r\n]/.test(password)) throw new RangeError('password contains a newline');
      }
      const file = join(dir, 'passwd');
      // Plain "user:password" lines, hashed in place by mosquitto_passwd -U.
      writeFileSync(file, opts.auth.users.map((u) => `${u.username}:${u.password}\n`).join(''), { mode: 0o600 });
      execFileSync(passwd, ['-U', file], { stdio: 'ignore' });
      if (opts.auth.acl !== undefined) writeFileSync(join(dir, 'acl'), opts.auth.acl, { mode: 0o600 });
    }
  } catch (err) {
    removeDir(dir);
    throw err;
  }

  let child: ChildProcess | undefined;

  /** Start mosquitto on `port`; resolves once it accepts TCP, rejects if it exits first. */
  const launch = async (port: number): Promise<void> => {
    // This run's own output: the shared log is trimmed when long, so offsets into it drift.
    let runLog = '';
    const appendRunLog = (chunk: Buffer | string): void => {
      appendLog(chunk);
      if (runLog.length < 100_000) runLog += chunk.toString();
    };
    const confFile = join(dir, 'mosquitto.conf');
    writeFileSync(confFile, lines(port).join('\n') + '\n');
    const proc = spawn(binary, ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(proc);
    proc.stdout?.on('data', appendRunLog);
    proc.stderr?.on('data', appendRunLog);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    child = proc;
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline) {
      // Both: "running" is logged only once every listener is bound (a TCP connect alone could
      // reach whoever else holds the port), and the connect shows the socket really accepts.
      if (/ running\s*$/m.test(runLog) && (await canConnect(port)) && !exited) {
        // A broker that outlives its test must not hold the event loop open; the exit hook kills it.
        proc.unref();
        for (const pipe of [proc.stdout, proc.stderr]) (pipe as { unref?: () => void } | null)?.unref?.();
        return;
      }
      await sleep(25);
    }
    if (!exited) await kill(proc);
    child = undefined;
    throw new Error(`mosquitto did not start on ${HOST}:${port}:\n${runLog.slice(-2000)}`);
  };

  const kill = async (proc: ChildProcess): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    // Referenced timer: keeps the event loop alive while we wait for the (unref'd) child.
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  /** Launch with retries: another process may grab a "free" port between probe and bind. */
  const launchWithRetry = async (fixedPort: number | undefined): Promise<number> => {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = fixedPort ?? (await freeLoopbackPort());
      try {
        await launch(port);
        return port;
      } catch (err) {
        lastError = err;
        const inUse = /Address already in use/i.test(String(err));
        if (!inUse) break;
        // A fixed port (restart) may still be held for a moment by the previous process.
        if (fixedPort !== undefined) await sleep(100 * (attempt + 1));
      }
    }
    throw lastError;
  };

  let port: number;
  try {
    port = await launchWithRetry(opts.port);
  } catch (err) {
    removeDir(dir);
    throw err;
  }

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child !== undefined) await kill(child);
    child = undefined;
    removeDir(dir);
  };
  const restart = async (whileDown?: () => Promise<void> | void): Promise<void> => {
    if (stopped) throw new Error('mosquitto: restart() after stop()');
    if (child !== undefined) await kill(child);
    child = undefined;
    await whileDown?.();
    await launchWithRetry(port);
  };

  return { url: `mqtt://${HOST}:${port}`, port, stop, restart, logs: () => log };
}

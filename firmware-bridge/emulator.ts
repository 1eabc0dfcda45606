/**
 * The Trickle key's emulator: the real key logic (core/key.ts behind core/link.ts) with its state in a
 * file, serving the USB HID report stream over a Unix socket or loopback TCP instead of USB, so the host
 * side (src/signer/hid, SocketHidConnector) can be developed and tested without hardware. The reports are
 * the same 64 bytes as on USB (firmware-bridge/PROTOCOL.md §1), back to back with no length prefix.
 *
 * Like the one USB host a key is plugged into, one connection is served at a time: a new connection
 * replaces the old one (a re-plug), and the link forgets its channels and abandons the running command.
 *
 * Run directly it is a CLI that prints one JSON line `{"ready":true,...}` on stdout once it listens (for a
 * parent process to wait on) and logs to stderr:
 *
 *   tsx firmware-bridge/emulator.ts --socket PATH | --port N [--host 127.0.0.1|::1] --state DIR
 *       [--confirm auto|deny|prompt] [--confirm-delay-ms N]
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { realpathSync } from 'node:fs';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FIRMWARE_VERSION, KeyCore, type ConfirmPort, type ConfirmRequest } from './core/key.js';
import { KeyLink, type CommandHandler } from './core/link.js';
import { FileKeyStorage } from './file-storage.js';

export type ConfirmMode = 'auto' | 'deny' | 'prompt';

export interface EmulatorOptions {
  /** Serve on this Unix socket (a stale socket file is replaced). Exactly one of socketPath and port. */
  socketPath?: string;
  /** Loopback only, default 127.0.0.1. */
  host?: '127.0.0.1' | '::1';
  /** TCP port; 0 picks a free one (see RunningEmulator.port). */
  port?: number;
  /** The key's state lives in `<stateDir>/key-state.bin`. */
  stateDir: string;
  /** Default 'auto': every confirmation approved. */
  confirm?: ConfirmMode | ConfirmPort;
  /** 'auto' and 'deny' answer after this long (default 0), so a host sees UP_NEEDED keepalives meanwhile. */
  confirmDelayMs?: number;
  log?: (line: string) => void;
}

export interface RunningEmulator {
  serial: string;
  socketPath?: string;
  port?: number;
  /** Stops listening, drops the host, waits for the running command to settle. */
  close(): Promise<void>;
}

export const STATE_FILE_NAME = 'key-state.bin';

/**
 * Reports queued to a host that does not read: beyond this the host is dropped rather than buffered
 * without bound (keepalives alone would otherwise grow the queue forever).
 */
const MAX_PENDING_WRITE_BYTES = 1 << 20;
const REPORT_SIZE = 64;

function checkOptions(options: EmulatorOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('"options" expected an object');
  const { socketPath, host, port, stateDir, confirm, confirmDelayMs, log } = options;
  if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('"stateDir" expected a non-empty string');
  if ((socketPath === undefined) === (port === undefined)) throw new TypeError('expected exactly one of "socketPath" and "port"');
  if (socketPath !== undefined && (typeof socketPath !== 'string' || socketPath.length === 0)) throw new TypeError('"socketPath" expected a non-empty string');
  if (socketPath !== undefined && host !== undefined) throw new TypeError('"host" goes with "port", not "socketPath"');
  if (port !== undefined && (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535)) throw new RangeError('"port" expected 0..65535');
  // The report stream has no authentication of its own: it must not be reachable from the network.
  if (host !== undefined && host !== '127.0.0.1' && host !== '::1') throw new RangeError('"host" expected a loopback address: 127.0.0.1 or ::1');
  if (confirm !== undefined && confirm !== 'auto' && confirm !== 'deny' && confirm !== 'prompt') {
    if (typeof confirm !== 'object' || confirm === null || typeof confirm.confirm !== 'function') throw new TypeError('"confirm" expected auto, deny, prompt or a ConfirmPort');
  }
  if (confirmDelayMs !== undefined && (typeof confirmDelayMs !== 'number' || !Number.isFinite(confirmDelayMs) || confirmDelayMs < 0)) {
    throw new RangeError('"confirmDelayMs" expected a non-negative number of milliseconds');
  }
  if (log !== undefined && typeof log !== 'function') throw new TypeError('"log" expected a function');
}

/** Resolves after `ms`, or at once when the signal aborts (with false). */
function wait(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** 'auto' / 'deny': the same answer every time, after `delayMs`. */
export function fixedConfirm(answer: boolean, delayMs = 0, log?: (line: string) => void): ConfirmPort {
  return {
    async confirm(request: ConfirmRequest, signal: AbortSignal): Promise<boolean> {
      log?.(`confirm ${request.kind}: ${request.summary} -> ${answer ? 'approved' : 'denied'} (emulator)`);
      const waited = await wait(delayMs, signal);
      return waited && answer;
    },
  };
}

/**
 * 'prompt': asks on the terminal (stdin, with the question on stderr so stdout stays machine-readable).
 * Only a typed y/yes approves; end of input, a cancel from the host or anything else denies.
 */
export function promptConfirm(input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stderr): ConfirmPort {
  return {
    confirm(request: ConfirmRequest, signal: AbortSignal): Promise<boolean> {
      return new Promise((resolve) => {
        if (signal.aborted) return resolve(false);
        const rl = createInterface({ input, output, terminal: (input as { isTTY?: boolean }).isTTY === true });
        let settled = false;
        const finish = (answer: boolean): void => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          rl.close();
          resolve(answer);
        };
        const onAbort = (): void => {
          output.write('\n(cancelled by the host)\n');
          finish(false);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        rl.once('close', () => finish(false));
        // Ctrl-C at the prompt is a no (the next one, with no prompt open, stops the emulator).
        rl.once('SIGINT', () => finish(false));
        output.write(`\nThe host asks to ${request.kind === 'set-policy' ? 'change the policy' : 'set up a channel'}:\n  ${request.summary}\n`);
        rl.question('approve? [y/N] ', (answer) => finish(/^\s*y(es)?\s*$/i.test(answer)));
      });
    },
  };
}

function confirmPort(options: EmulatorOptions, log: (line: string) => void): ConfirmPort {
  const confirm = options.confirm ?? 'auto';
  if (typeof confirm === 'object') return confirm;
  if (confirm === 'prompt') return promptConfirm();
  return fixedConfirm(confirm === 'auto', options.confirmDelayMs ?? 0, log);
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

/**
 * A socket file left by an emulator that died is removed; a live one (something answers) or a path that
 * is not a socket is refused rather than clobbered.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) throw new Error(`${path} exists and is not a socket; not replacing it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another process is serving ${path}`);
  await unlink(path);
}

function listen(server: Server, options: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Starts the emulator: opens (or creates) the key's state, then listens. */
export async function startEmulator(options: EmulatorOptions): Promise<RunningEmulator> {
  checkOptions(options);
  const log = options.log ?? (() => undefined);
  const storage = new FileKeyStorage(join(options.stateDir, STATE_FILE_NAME));
  const core = await KeyCore.open({ storage, confirm: confirmPort(options, log), log });
  if (core.locked) log('the key is locked: its state file is unreadable; it answers GET_INFO only');

  let current: Socket | undefined;
  /** Commands under way: close() waits for them so a state commit is never cut short by our exit. */
  const inflight = new Set<Promise<Uint8Array>>();
  const handle: CommandHandler = (command, payload, context) => {
    const run = core.handle(command, payload, context);
    inflight.add(run);
    const done = (): void => void inflight.delete(run);
    run.then(done, done);
    return run;
  };
  const link = new KeyLink({
    send: (report) => {
      const socket = current;
      if (!socket || socket.destroyed || !socket.writable) return; // no host: the report is lost, as on a bus
      if (socket.writableLength > MAX_PENDING_WRITE_BYTES) {
        log('host is not reading its reports; dropping it');
        socket.destroy();
        return;
      }
      socket.write(report);
    },
    handle,
    version: FIRMWARE_VERSION,
  });

  const server = createServer({ allowHalfOpen: false }, (socket) => {
    const previous = current;
    current = socket;
    if (previous) {
      log('a new host connected: dropping the previous one');
      previous.destroy();
    } else {
      log('host connected');
    }
    // A new host starts from a clean link, whatever the old one left half-done.
    link.reset();
    socket.setNoDelay(true);
    let partial = new Uint8Array(REPORT_SIZE);
    let filled = 0;
    socket.on('data', (chunk: Buffer) => {
      if (current !== socket) return;
      let offset = 0;
      while (offset < chunk.length) {
        const take = Math.min(REPORT_SIZE - filled, chunk.length - offset);
        partial.set(chunk.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === REPORT_SIZE) {
          const report = partial;
          partial = new Uint8Array(REPORT_SIZE);
          filled = 0;
          link.receive(report);
          if (current !== socket) return; // the link's answer dropped this host
        }
      }
    });
    socket.on('error', (error) => log(`host connection error: ${error.message}`));
    socket.on('close', () => {
      // Only the host being served matters; a replaced one has been dealt with already.
      if (current !== socket) return;
      current = undefined;
      link.reset();
      log('host disconnected');
    });
  });
  server.on('error', (error) => log(`server error: ${error.message}`));

  let socketPath: string | undefined;
  let port: number | undefined;
  if (options.socketPath !== undefined) {
    socketPath = resolve(options.socketPath);
    await clearStaleSocket(socketPath);
    await listen(server, { path: socketPath });
    // Only this user may talk to the key: the report stream has no authentication of its own.
    await chmod(socketPath, 0o600).catch((error: Error) => log(`cannot restrict ${socketPath}: ${error.message}`));
  } else {
    await listen(server, { host: options.host ?? '127.0.0.1', port: options.port! });
    const address = server.address();
    port = typeof address === 'object' && address !== null ? address.port : options.port;
  }
  log(`key ${core.serial} listening on ${socketPath !== undefined ? `unix:${socketPath}` : `tcp:${options.host ?? '127.0.0.1'}:${port}`}`);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const socket = current;
      current = undefined;
      socket?.destroy();
      link.reset(); // aborts a confirmation under way
      await closed;
      await Promise.allSettled([...inflight]);
      if (socketPath !== undefined) await unlink(socketPath).catch(() => undefined);
      log('emulator stopped');
    })();
    return closing;
  };

  return {
    serial: core.serial,
    ...(socketPath !== undefined ? { socketPath } : {}),
    ...(port !== undefined ? { port } : {}),
    close,
  };
}

const USAGE = `usage: tsx firmware-bridge/emulator.ts (--socket PATH | --port N [--host 127.0.0.1|::1]) --state DIR
         [--confirm auto|deny|prompt] [--confirm-delay-ms N]`;

/** The CLI's arguments as EmulatorOptions; throws TypeError/RangeError naming the flag. */
export function parseEmulatorArgs(argv: string[]): EmulatorOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      socket: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      state: { type: 'string' },
      confirm: { type: 'string' },
      'confirm-delay-ms': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.state === undefined) throw new TypeError('--state DIR is required');
  if ((values.socket === undefined) === (values.port === undefined)) throw new TypeError('expected exactly one of --socket and --port');
  const options: EmulatorOptions = { stateDir: values.state };
  if (values.socket !== undefined) options.socketPath = values.socket;
  if (values.port !== undefined) {
    if (!/^\d{1,5}$/.test(values.port)) throw new RangeError('--port expected 0..65535');
    options.port = Number(values.port);
  }
  if (values.host !== undefined) {
    if (values.host !== '127.0.0.1' && values.host !== '::1') throw new RangeError('--host expected 127.0.0.1 or ::1 (loopback only)');
    options.host = values.host;
  }
  if (values.confirm !== undefined) {
    if (values.confirm !== 'auto' && values.confirm !== 'deny' && values.confirm !== 'prompt') throw new RangeError('--confirm expected auto, deny or prompt');
    options.confirm = values.confirm;
  }
  if (values['confirm-delay-ms'] !== undefined) {
    if (!/^\d{1,9}$/.test(values['confirm-delay-ms'])) throw new RangeError('--confirm-delay-ms expected a non-negative integer');
    options.confirmDelayMs = Number(values['confirm-delay-ms']);
  }
  return options;
}

async function main(argv: string[]): Promise<void> {
  const log = (line: string): void => void process.stderr.write(`[trickle-key emulator] ${line}\n`);
  let options: EmulatorOptions;
  try {
    options = parseEmulatorArgs(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const emulator = await startEmulator({ ...options, log });
  process.stdout.write(`${JSON.stringify({ ready: true, serial: emulator.serial, socket: emulator.socketPath ?? null, port: emulator.port ?? null })}\n`);
  const stop = (signal: string): void => {
    log(`${signal}: stopping`);
    emulator.close().then(
      () => process.exit(0),
      (error: Error) => {
        log(`stop failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

/** True when this file is the process's entry script (through a symlink too), not an import. */
function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(resolve(entry)) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

// Run only as a script: tests and other tools import startEmulator.
if (isMain()) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`[trickle-key emulator] failed to start: ${(error as Error).message}\n`);
    process.exit(1);
  });
}

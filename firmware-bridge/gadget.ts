/**
 * The Trickle key on a Raspberry Pi Zero (2 W): the Pi is the USB key itself, through the Linux USB gadget
 * HID function that setup-gadget.sh creates. The host's 64-byte output reports arrive on /dev/hidg0
 * (the gadget side sees no report-id byte) and the key's 64-byte input reports are written back to it.
 * Behind that is the same key as in the emulator: core/key.ts behind core/link.ts, its state in a file.
 *
 * The user's confirmation (a channel setup, a policy change) is a push button between a GPIO and GND,
 * read with libgpiod's command-line tools so the runner needs no native addon; an optional LED shows the
 * key is waiting. Without a button every confirmation is denied: a key that cannot ask its user must not
 * take the host's word for it.
 *
 *   node --import tsx firmware-bridge/gadget.ts [--device /dev/hidg0] [--state /var/lib/trickle-key]
 *       [--button-gpio N [--led-gpio N] [--gpio-chip gpiochip0] [--confirm-timeout-ms 60000]]
 *       [--print-serial]
 *
 * The parts that need no hardware (argument parsing, the serial, the libgpiod syntax, the button logic
 * with an injected command runner) are exported for tests.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FIRMWARE_VERSION, KeyCore, type ConfirmPort, type ConfirmRequest } from './core/key.js';
import { KeyLink, type CommandHandler } from './core/link.js';
import { FileKeyStorage } from './file-storage.js';

export const DEFAULT_DEVICE = '/dev/hidg0';
export const DEFAULT_STATE_DIR = '/var/lib/trickle-key';
export const DEFAULT_GPIO_CHIP = 'gpiochip0';
export const DEFAULT_CONFIRM_TIMEOUT_MS = 60_000;
export const STATE_FILE_NAME = 'key-state.bin';
/** How often the button is read while the key waits for it. */
export const BUTTON_POLL_MS = 50;
/** After the host closes the device (cable pulled, host rebooted), wait this long before reopening it. */
export const REOPEN_DELAY_MS = 1000;
const REPORT_SIZE = 64;
/** Reports waiting for the host to take them; beyond this a host that does not read loses them. */
const MAX_QUEUED_REPORTS = 256;
/** A gpioget that takes longer than this is stuck (a wedged chip driver): the read fails. */
const GPIO_COMMAND_TIMEOUT_MS = 2000;

export interface GadgetOptions {
  device: string;
  stateDir: string;
  /** BCM number of the confirm button (to GND, internal pull-up); none: every confirmation is denied. */
  buttonGpio?: number;
  /** BCM number of an LED lit while the key waits for the button. */
  ledGpio?: number;
  gpioChip: string;
  confirmTimeoutMs: number;
  /** Print the key's serial (creating the key's state if there is none) and exit. */
  printSerial: boolean;
}

export const GADGET_USAGE = `usage: node --import tsx firmware-bridge/gadget.ts [--device ${DEFAULT_DEVICE}] [--state ${DEFAULT_STATE_DIR}]
         [--button-gpio N [--led-gpio N] [--gpio-chip ${DEFAULT_GPIO_CHIP}] [--confirm-timeout-ms ${DEFAULT_CONFIRM_TIMEOUT_MS}]]
         [--print-serial]`;

function parseInteger(value: string, flag: string, min: number, max: number): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) < min || Number(value) > max) throw new RangeError(`${flag} expected an integer ${min}..${max}`);
  return Number(value);
}

/** The runner's arguments; throws TypeError/RangeError naming the flag. */
export function parseGadgetArgs(argv: string[]): GadgetOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      device: { type: 'string' },
      state: { type: 'string' },
      'button-gpio': { type: 'string' },
      'led-gpio': { type: 'string' },
      'gpio-chip': { type: 'string' },
      'confirm-timeout-ms': { type: 'string' },
      'print-serial': { type: 'boolean' },
    },
    strict: true,
    allowPositionals: false,
  });
  const options: GadgetOptions = {
    device: values.device ?? DEFAULT_DEVICE,
    stateDir: values.state ?? DEFAULT_STATE_DIR,
    gpioChip: values['gpio-chip'] ?? DEFAULT_GPIO_CHIP,
    confirmTimeoutMs: DEFAULT_CONFIRM_TIMEOUT_MS,
    printSerial: values['print-serial'] === true,
  };
  if (options.device.length === 0) throw new TypeError('--device expected a path');
  if (options.stateDir.length === 0) throw new TypeError('--state expected a directory');
  // The chip name goes on gpioget's command line: a name, number or /dev path, never something that
  // reads as an option.
  if (!/^[A-Za-z0-9_./][A-Za-z0-9_./-]{0,63}$/.test(options.gpioChip)) throw new RangeError('--gpio-chip expected a chip name, number or path (e.g. gpiochip0)');
  if (values['button-gpio'] !== undefined) options.buttonGpio = parseInteger(values['button-gpio'], '--button-gpio', 0, 511);
  if (values['led-gpio'] !== undefined) {
    options.ledGpio = parseInteger(values['led-gpio'], '--led-gpio', 0, 511);
    if (options.buttonGpio === undefined) throw new TypeError('--led-gpio goes with --button-gpio');
    if (options.ledGpio === options.buttonGpio) throw new RangeError('--led-gpio must differ from --button-gpio');
  }
  if (values['confirm-timeout-ms'] !== undefined) options.confirmTimeoutMs = parseInteger(values['confirm-timeout-ms'], '--confirm-timeout-ms', 1, 3_600_000);
  return options;
}

/** A confirmation port that says no to everything: the key has no way to ask its user. */
export const denyAllConfirm: ConfirmPort = {
  async confirm() {
    return false;
  },
};

/**
 * The key's serial, from its state in `stateDir`. A key without state gets one now (seed and serial are
 * created and stored), so the serial printed is the one the key keeps. A locked key (unreadable state)
 * has no serial: that rejects.
 */
export async function keySerial(stateDir: string, log?: (line: string) => void): Promise<string> {
  if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('"stateDir" expected a non-empty string');
  const core = await KeyCore.open({ storage: new FileKeyStorage(join(stateDir, STATE_FILE_NAME)), confirm: denyAllConfirm, ...(log ? { log } : {}) });
  if (core.locked) throw new Error(`the key's state in ${stateDir} is unreadable: the key is locked`);
  return core.serial;
}

// ---------------------------------------------------------------------------------------------------
// libgpiod command-line tools (v1 and v2 differ in syntax and output)

/** Runs a program (never through a shell) and resolves with its stdout; rejects on failure or abort. */
export type CommandRunner = (file: string, args: string[], signal?: AbortSignal) => Promise<string>;

export const execFileRunner: CommandRunner = (file, args, signal) =>
  new Promise((resolve, reject) => {
    execFile(file, args, { timeout: GPIO_COMMAND_TIMEOUT_MS, maxBuffer: 64 * 1024, ...(signal ? { signal } : {}) }, (error, stdout) => {
      if (error) reject(error);
      else resolve(stdout);
    });
  });

export type GpiodMajor = 1 | 2;

/** The major version from `gpioget --version` ("gpioget (libgpiod) v1.6.3", "... v2.1.2"). */
export function parseGpiodMajor(versionOutput: string): GpiodMajor | undefined {
  const match = /\bv?(\d+)\.\d+/.exec(versionOutput);
  if (!match) return undefined;
  const major = Number(match[1]);
  if (major === 1) return 1;
  if (major >= 2) return 2; // v2's syntax is the one going forward
  return undefined;
}

/** gpioget's arguments to read one line with the pull-up on. */
export function gpiogetArgs(major: GpiodMajor, chip: string, line: number): string[] {
  return major === 1 ? ['--bias=pull-up', chip, String(line)] : ['-c', chip, '--bias=pull-up', String(line)];
}

/** gpioset's arguments to drive one line and hold it until the process is signalled. */
export function gpiosetHoldArgs(major: GpiodMajor, chip: string, line: number, value: 0 | 1): string[] {
  // v1 exits at once by default (and the line may then revert); v2 holds until killed by default.
  return major === 1 ? ['--mode=signal', chip, `${line}=${value}`] : ['-c', chip, `${line}=${value}`];
}

/** gpioget's output: v1 prints "0"/"1", v2 `"17"=inactive` / `"17"=active` (or 0/1 with --numeric). */
export function parseGpioValue(stdout: string): 0 | 1 | undefined {
  const text = stdout.trim();
  if (text === '0' || text === '1') return Number(text) as 0 | 1;
  const match = /=\s*(active|inactive|0|1)\s*$/.exec(text);
  if (!match) return undefined;
  return match[1] === 'active' || match[1] === '1' ? 1 : 0;
}

/** Detects the libgpiod version once (a failed detection is retried at the next use). */
export class GpiodTools {
  readonly #run: CommandRunner;
  #major: Promise<GpiodMajor> | undefined;

  constructor(run: CommandRunner = execFileRunner) {
    this.#run = run;
  }

  major(): Promise<GpiodMajor> {
    if (this.#major) return this.#major;
    const detecting = this.#detect();
    this.#major = detecting;
    detecting.catch(() => {
      if (this.#major === detecting) this.#major = undefined;
    });
    return detecting;
  }

  async #detect(): Promise<GpiodMajor> {
    let output: string;
    try {
      output = await this.#run('gpioget', ['--version']);
    } catch (error) {
      throw new Error(`cannot run gpioget (install libgpiod's tools: apt install gpiod): ${(error as Error).message}`);
    }
    const major = parseGpiodMajor(output);
    if (major === undefined) throw new Error(`unrecognised gpioget version: ${output.trim().slice(0, 80)}`);
    return major;
  }
}

/**
 * An LED driven by a gpioset process that holds the line (a released line's level is undefined). Each
 * change replaces the holder; changes run in order.
 */
export class GpioLed {
  readonly #chip: string;
  readonly #line: number;
  readonly #tools: GpiodTools;
  readonly #log: (line: string) => void;
  #holder: ChildProcess | undefined;
  #chain: Promise<void> = Promise.resolve();
  #warned = false;

  constructor(o: { chip: string; line: number; tools: GpiodTools; log: (line: string) => void }) {
    this.#chip = o.chip;
    this.#line = o.line;
    this.#tools = o.tools;
    this.#log = o.log;
  }

  set(on: boolean): Promise<void> {
    this.#chain = this.#chain.then(() => this.#set(on)).catch((error: Error) => {
      if (!this.#warned) this.#log(`LED on GPIO ${this.#line}: ${error.message}`);
      this.#warned = true;
    });
    return this.#chain;
  }

  /** Releases the line (stops the holder). */
  close(): Promise<void> {
    this.#chain = this.#chain.then(() => this.#stopHolder());
    return this.#chain;
  }

  async #set(on: boolean): Promise<void> {
    const major = await this.#tools.major();
    await this.#stopHolder();
    const holder = spawn('gpioset', gpiosetHoldArgs(major, this.#chip, this.#line, on ? 1 : 0), { stdio: 'ignore' });
    this.#holder = holder;
    holder.on('error', (error) => {
      if (!this.#warned) this.#log(`LED on GPIO ${this.#line}: cannot run gpioset: ${error.message}`);
      this.#warned = true;
    });
  }

  #stopHolder(): Promise<void> {
    const holder = this.#holder;
    this.#holder = undefined;
    if (!holder || holder.exitCode !== null || holder.signalCode !== null || holder.pid === undefined) return Promise.resolve();
    // The next holder can request the line only once this one has let it go.
    return new Promise((resolve) => {
      holder.once('exit', () => resolve());
      holder.kill('SIGTERM');
    });
  }
}

export interface ButtonConfirmOptions {
  chip: string;
  /** BCM number of the button: pulled up, pressed connects it to GND (reads 0). */
  line: number;
  timeoutMs: number;
  pollMs?: number;
  tools?: GpiodTools;
  run?: CommandRunner;
  led?: { set(on: boolean): Promise<void> };
  log?: (line: string) => void;
}

/**
 * Confirmation by a push button. The button must be seen released and then pressed while the key waits:
 * a button held down (or a stuck one, or a line shorted to GND) never approves anything. Gives up after
 * timeoutMs or when the host cancels; a button that cannot be read denies at once.
 */
export class ButtonConfirm implements ConfirmPort {
  readonly #o: Required<Omit<ButtonConfirmOptions, 'led' | 'log'>> & Pick<ButtonConfirmOptions, 'led'> & { log: (line: string) => void };

  constructor(o: ButtonConfirmOptions) {
    if (typeof o !== 'object' || o === null) throw new TypeError('"options" expected an object');
    if (typeof o.chip !== 'string' || o.chip.length === 0) throw new TypeError('"chip" expected a non-empty string');
    if (!Number.isInteger(o.line) || o.line < 0) throw new RangeError('"line" expected a GPIO number');
    if (typeof o.timeoutMs !== 'number' || !(o.timeoutMs > 0)) throw new RangeError('"timeoutMs" expected a positive number of milliseconds');
    const pollMs = o.pollMs ?? BUTTON_POLL_MS;
    if (typeof pollMs !== 'number' || !(pollMs >= 0)) throw new RangeError('"pollMs" expected a non-negative number of milliseconds');
    const run = o.run ?? execFileRunner;
    this.#o = {
      chip: o.chip,
      line: o.line,
      timeoutMs: o.timeoutMs,
      pollMs,
      run,
      tools: o.tools ?? new GpiodTools(run),
      led: o.led,
      log: o.log ?? (() => undefined),
    };
  }

  async confirm(request: ConfirmRequest, signal: AbortSignal): Promise<boolean> {
    const o = this.#o;
    if (signal.aborted) return false;
    let major: GpiodMajor;
    try {
      major = await o.tools.major();
    } catch (error) {
      o.log(`confirm ${request.kind}: denied, the button cannot be read: ${(error as Error).message}`);
      return false;
    }
    o.log(`confirm ${request.kind}: ${request.summary}`);
    o.log(`press the button (GPIO ${o.line}) within ${Math.round(o.timeoutMs / 1000)} s to approve`);
    // One signal for "stop waiting": the host's cancel or our own timeout.
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) stop.abort(); // cancelled while the version was being detected
    const timer = setTimeout(() => stop.abort(), o.timeoutMs);
    await o.led?.set(true);
    try {
      let released = false;
      let heldWarned = false;
      while (!stop.signal.aborted) {
        let value: 0 | 1 | undefined;
        try {
          value = parseGpioValue(await o.run('gpioget', gpiogetArgs(major, o.chip, o.line), stop.signal));
        } catch (error) {
          if (stop.signal.aborted) break;
          o.log(`confirm ${request.kind}: denied, gpioget failed: ${(error as Error).message}`);
          return false;
        }
        if (value === undefined) {
          o.log(`confirm ${request.kind}: denied, gpioget gave no value`);
          return false;
        }
        if (value === 1) released = true;
        else if (released) {
          o.log(`confirm ${request.kind}: approved with the button`);
          return true;
        } else if (!heldWarned) {
          heldWarned = true;
          o.log('the button is held down: release it, then press it');
        }
        await sleep(o.pollMs, stop.signal);
      }
      o.log(`confirm ${request.kind}: denied (${signal.aborted ? 'cancelled by the host' : 'no press in time'})`);
      return false;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      await o.led?.set(false);
    }
  }
}

/** Resolves after `ms`, or at once when the signal aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------------
// /dev/hidg0

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

/**
 * The gadget's HID character device. Reads block in the kernel until the host sends a report; they run
 * on libuv's threadpool through the FileHandle, so the event loop is free meanwhile. Writes are queued
 * one at a time (a write waits for the host to poll the IN endpoint).
 */
export class HidGadgetDevice {
  readonly #path: string;
  readonly #log: (line: string) => void;
  #handle: FileHandle | undefined;
  #writes: Promise<void> = Promise.resolve();
  #queued = 0;
  #lastOpenError: string | undefined;

  constructor(path: string, log: (line: string) => void) {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError('"path" expected a non-empty string');
    this.#path = path;
    this.#log = log;
  }

  /** One report to the host; dropped when the device is not open or the host does not read. */
  send(report: Uint8Array): void {
    const handle = this.#handle;
    if (!handle) return;
    if (this.#queued >= MAX_QUEUED_REPORTS) return;
    this.#queued++;
    this.#writes = this.#writes
      .then(async () => {
        if (this.#handle !== handle) return; // reopened since: this report was for the old host
        await handle.write(report, 0, report.length, null);
      })
      .catch((error: unknown) => {
        if (this.#handle === handle) this.#log(`${this.#path}: write failed: ${errorCode(error) ?? (error as Error).message}`);
      })
      .finally(() => {
        this.#queued--;
      });
  }

  /**
   * Opens the device and feeds every report to `onReport` until `signal` aborts. When the host goes away
   * (EIO/ESHUTDOWN on read) `onReset` runs and the device is reopened after REOPEN_DELAY_MS. Never
   * rejects. A read blocked in the kernel cannot be interrupted: on abort this resolves without waiting
   * for it, and the process is expected to exit.
   */
  async run(onReport: (report: Uint8Array) => void, onReset: () => void, signal: AbortSignal): Promise<void> {
    const aborted = new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    while (!signal.aborted) {
      let handle: FileHandle;
      try {
        handle = await open(this.#path, 'r+');
      } catch (error) {
        const message = errorCode(error) === 'ENOENT' ? `${this.#path} does not exist: is the USB gadget set up (setup-gadget.sh)?` : `cannot open ${this.#path}: ${(error as Error).message}`;
        if (message !== this.#lastOpenError) this.#log(`${message}; retrying every ${REOPEN_DELAY_MS / 1000} s`);
        this.#lastOpenError = message;
        await sleep(REOPEN_DELAY_MS, signal);
        continue;
      }
      this.#lastOpenError = undefined;
      this.#handle = handle;
      this.#log(`${this.#path} open`);
      await Promise.race([this.#readLoop(handle, onReport, signal), aborted]);
      if (signal.aborted) return;
      this.#handle = undefined;
      onReset();
      handle.close().catch(() => undefined);
      await sleep(REOPEN_DELAY_MS, signal);
    }
  }

  async #readLoop(handle: FileHandle, onReport: (report: Uint8Array) => void, signal: AbortSignal): Promise<void> {
    const buffer = new Uint8Array(REPORT_SIZE);
    try {
      while (!signal.aborted) {
        const { bytesRead } = await handle.read(buffer, 0, REPORT_SIZE, null);
        if (bytesRead === 0) {
          this.#log(`${this.#path}: end of file; reopening`);
          return;
        }
        if (signal.aborted) return;
        // Handed over as read, in a copy: a short report is not one of the protocol's, and the link
        // ignores it (PROTOCOL.md [F-1], [F-7]) rather than this layer guessing at padding.
        onReport(buffer.slice(0, bytesRead));
      }
    } catch (error) {
      const code = errorCode(error);
      const why = code === 'EIO' || code === 'ESHUTDOWN' ? 'the host went away' : 'read failed';
      this.#log(`${this.#path}: ${why} (${code ?? (error as Error).message}); reopening in ${REOPEN_DELAY_MS / 1000} s`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The runner

/** Runs the key until SIGINT/SIGTERM. */
export async function runGadget(options: GadgetOptions, log: (line: string) => void): Promise<void> {
  const tools = new GpiodTools();
  let led: GpioLed | undefined;
  let confirm: ConfirmPort;
  if (options.buttonGpio === undefined) {
    log('no --button-gpio: every confirmation (channel setup, policy change) is denied');
    confirm = denyAllConfirm;
  } else {
    try {
      log(`confirm button on ${options.gpioChip} GPIO ${options.buttonGpio} (libgpiod v${await tools.major()}), ${options.confirmTimeoutMs / 1000} s to press`);
    } catch (error) {
      log(`warning: ${(error as Error).message}; confirmations are denied until gpioget works`);
    }
    if (options.ledGpio !== undefined) {
      led = new GpioLed({ chip: options.gpioChip, line: options.ledGpio, tools, log });
      void led.set(false);
    }
    confirm = new ButtonConfirm({ chip: options.gpioChip, line: options.buttonGpio, timeoutMs: options.confirmTimeoutMs, tools, ...(led ? { led } : {}), log });
  }

  const core = await KeyCore.open({ storage: new FileKeyStorage(join(options.stateDir, STATE_FILE_NAME)), confirm, log });
  if (core.locked) log(`the key is locked: its state in ${options.stateDir} is unreadable; it answers GET_INFO only`);
  process.stdout.write(`trickle key serial ${core.serial}\n`);

  const device = new HidGadgetDevice(options.device, log);
  const inflight = new Set<Promise<Uint8Array>>();
  const handle: CommandHandler = (command, payload, context) => {
    const run = core.handle(command, payload, context);
    inflight.add(run);
    const done = (): void => void inflight.delete(run);
    run.then(done, done);
    return run;
  };
  const link = new KeyLink({ send: (report) => device.send(report), handle, version: FIRMWARE_VERSION });

  const stop = new AbortController();
  const onSignal = (name: string): void => {
    if (stop.signal.aborted) return;
    log(`${name}: stopping`);
    stop.abort();
    link.reset(); // abandons a confirmation under way
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));

  await device.run((report) => link.receive(report), () => link.reset(), stop.signal);
  // A command that got past its confirmation finishes storing its state before we go.
  await Promise.allSettled([...inflight]);
  await led?.close();
}

async function main(argv: string[]): Promise<void> {
  const log = (line: string): void => void process.stderr.write(`[trickle-key] ${line}\n`);
  let options: GadgetOptions;
  try {
    options = parseGadgetArgs(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${GADGET_USAGE}\n`);
    process.exit(2);
  }
  if (options.printSerial) {
    process.stdout.write(`${await keySerial(options.stateDir, log)}\n`);
    return;
  }
  await runGadget(options, log);
  // The read blocked in the kernel holds a threadpool thread and the handle: leave without waiting for it.
  process.exit(0);
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

if (isMain()) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`[trickle-key] ${(error as Error).message}\n`);
    process.exit(1);
  });
}

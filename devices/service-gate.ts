/**
 * ServiceGate adapters: the payee's switch for a service, driven by startServiceGuard().
 *
 * - CallbackGate calls your functions (a GPIO relay, an in-process proxy).
 * - CommandGate runs a program on open and on pause (e.g. add/remove a firewall rule for one client),
 *   with execFile: arguments are passed as a list, never through a shell.
 *
 * Both are idempotent (opening an open gate does nothing), run one switch at a time in call order, and
 * on failure reject with MeteringError('GATE_FAILED') and keep their state.
 *
 * @example
 *   const gate = new CommandGate({
 *     openCommand: ['nft', 'add', 'element', 'inet', 'hotspot', 'paid', '{ 10.0.0.7 }'],
 *     pauseCommand: ['nft', 'delete', 'element', 'inet', 'hotspot', 'paid', '{ 10.0.0.7 }'],
 *   });
 *   await gate.open();
 */
import { execFile } from 'node:child_process';
import { MeteringError, type ServiceGate } from '../src/metering/index.js';

export type { ServiceGate } from '../src/metering/index.js';

export type GateState = 'open' | 'paused';

/** Serialises switches and keeps the state; subclasses do the switching. */
abstract class SerialGate implements ServiceGate {
  #state: GateState;
  #queue: Promise<void> = Promise.resolve();

  constructor(initialState: GateState | undefined) {
    if (initialState !== undefined && initialState !== 'open' && initialState !== 'paused') {
      throw new RangeError(`"initialState" must be 'open' or 'paused', got ${JSON.stringify(initialState)}`);
    }
    this.#state = initialState ?? 'paused';
  }

  get state(): GateState {
    return this.#state;
  }

  open(): Promise<void> {
    return this.#switch('open');
  }

  pause(): Promise<void> {
    return this.#switch('paused');
  }

  protected abstract switchTo(target: GateState): Promise<void>;

  #switch(target: GateState): Promise<void> {
    const run = this.#queue.then(async () => {
      if (this.#state === target) return;
      try {
        await this.switchTo(target);
      } catch (error) {
        if (error instanceof MeteringError && error.code === 'GATE_FAILED') throw error;
        throw new MeteringError('GATE_FAILED', `${target === 'open' ? 'opening' : 'pausing'} the gate failed`, { cause: error });
      }
      this.#state = target;
    });
    this.#queue = run.catch(() => {});
    return run;
  }
}

export interface CallbackGateOptions {
  onOpen: () => void | Promise<void>;
  onPause: () => void | Promise<void>;
  /** Default 'paused': nothing is served before the first payment. */
  initialState?: GateState;
}

export class CallbackGate extends SerialGate {
  readonly #onOpen: () => void | Promise<void>;
  readonly #onPause: () => void | Promise<void>;

  constructor(options: CallbackGateOptions) {
    super(options.initialState);
    if (typeof options.onOpen !== 'function' || typeof options.onPause !== 'function') {
      throw new TypeError('"onOpen" and "onPause" expected functions');
    }
    this.#onOpen = options.onOpen;
    this.#onPause = options.onPause;
  }

  protected override async switchTo(target: GateState): Promise<void> {
    await (target === 'open' ? this.#onOpen() : this.#onPause());
  }
}

/** A program and its arguments: [file, ...args]. */
export type Command = readonly [string, ...string[]];

export const DEFAULT_GATE_TIMEOUT_MS = 10_000;
/** Output beyond this kills the command; gate commands are expected to be quiet. */
const MAX_OUTPUT_BYTES = 64 * 1024;
/** How much of the command's stderr goes into the error message. */
const STDERR_EXCERPT = 200;

export interface CommandGateOptions {
  openCommand: Command;
  pauseCommand: Command;
  /** Kill a command that runs longer; default 10 000 ms. */
  timeoutMs?: number;
  /** Default 'paused'. */
  initialState?: GateState;
}

function checkCommand(command: Command, field: string): Command {
  if (!Array.isArray(command) || command.length === 0 || !command.every((part) => typeof part === 'string') || command[0] === '') {
    throw new TypeError(`"${field}" expected [file, ...args] of strings`);
  }
  return [...command] as unknown as Command;
}

function run(command: Command, timeoutMs: number, field: string): Promise<void> {
  const [file, ...args] = command;
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES, windowsHide: true, shell: false, encoding: 'utf8' },
      (error, _stdout, stderr) => {
        if (error === null) return resolve();
        const how =
          error.killed || error.signal
            ? `was killed (${error.signal ?? 'timeout'}) after at most ${timeoutMs} ms`
            : typeof error.code === 'number'
              ? `exited with code ${error.code}`
              : `could not run (${String(error.code ?? error.message)})`;
        const excerpt = stderr.trim().slice(0, STDERR_EXCERPT);
        reject(new MeteringError('GATE_FAILED', `${field} ${how}${excerpt === '' ? '' : `: ${excerpt}`}`, { cause: error }));
      },
    );
  });
}

export class CommandGate extends SerialGate {
  readonly #openCommand: Command;
  readonly #pauseCommand: Command;
  readonly #timeoutMs: number;

  constructor(options: CommandGateOptions) {
    super(options.initialState);
    this.#openCommand = checkCommand(options.openCommand, 'openCommand');
    this.#pauseCommand = checkCommand(options.pauseCommand, 'pauseCommand');
    const timeoutMs = options.timeoutMs ?? DEFAULT_GATE_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new RangeError(`"timeoutMs" must be a positive integer (${timeoutMs})`);
    this.#timeoutMs = timeoutMs;
  }

  protected override switchTo(target: GateState): Promise<void> {
    return target === 'open'
      ? run(this.#openCommand, this.#timeoutMs, 'openCommand')
      : run(this.#pauseCommand, this.#timeoutMs, 'pauseCommand');
  }
}

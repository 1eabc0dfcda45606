/**
 * The host's link client for the Trickle key over one HidTransport (firmware-bridge/PROTOCOL.md §2):
 * channel allocation with INIT, one request/response exchange at a time, KEEPALIVE, CANCEL and
 * resynchronisation, after CTAP 2.1 §11.2 CTAPHID.
 *
 * Everything the key sends is untrusted: reports on other channels, stale answers and malformed ones are
 * ignored or turned into a HidError, never thrown out of the report listener. Timers are injected.
 */
import {
  BROADCAST_CID,
  HidCommand,
  HidErrorCode as DeviceError,
  INIT_NONCE_SIZE,
  INIT_RESPONSE_SIZE,
  KeepaliveStatus,
  MAX_MESSAGE_SIZE,
  MessageAssembler,
  REPORT_SIZE,
  RESERVED_CID,
  encodeMessage,
  readCid,
  type Message,
} from './framing.js';
import { HidError } from './errors.js';
import type { HidTransport } from './transport.js';

export interface InitInfo {
  cid: number;
  protocolVersion: number;
  major: number;
  minor: number;
  build: number;
  capabilities: number;
}

/** The timer functions the client uses; globalThis's setTimeout/clearTimeout fit. */
export interface HidTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface HidClientOptions {
  /** Default 3000: no report from the key for this long → TIMEOUT. */
  timeoutMs?: number;
  /** Default 120000: the timeout while the key reports UP_NEEDED (waiting for the user). */
  confirmTimeoutMs?: number;
  /** Default crypto.getRandomValues. */
  random?: (n: number) => Uint8Array;
  timers?: HidTimers;
}

export interface ExchangeOptions {
  signal?: AbortSignal;
  /** Overrides the client's timeoutMs for this exchange (not the confirmation timeout). */
  timeoutMs?: number;
  /** Called with each KEEPALIVE status (1 processing, 2 waiting for the user). */
  onKeepalive?: (status: number) => void;
}

export const DEFAULT_TIMEOUT_MS = 3000;
export const DEFAULT_CONFIRM_TIMEOUT_MS = 120_000;

/** What a transaction makes of an ERROR answer on its channel. */
type ErrorPolicy = 'reject' | 'ignore' | 'invalid-channel-only';

interface Transaction<T> {
  cid: number;
  command: number;
  payload: Uint8Array;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  onKeepalive: ((status: number) => void) | undefined;
  errors: ErrorPolicy;
  /** Send CANCEL when abandoned (not for INIT, which is never cancelled). */
  cancel: boolean;
  /** The answer with the transaction's command: a result, an error, or undefined to keep waiting. */
  accept(message: Message): { value: T } | { error: HidError } | undefined;
}

interface Pending {
  cid: number;
  report(report: Uint8Array): void;
  fail(error: HidError): void;
}

function defaultRandom(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

function checkMs(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new RangeError(`"${field}" expected a positive number of milliseconds`);
  return value;
}

/** [F-24] CHANNEL_BUSY is worth a retry later (BUSY); every other ERROR code is the key's refusal. */
function deviceError(code: number): HidError {
  if (code === DeviceError.CHANNEL_BUSY) return new HidError('BUSY', 'the key is busy with another channel’s command', code);
  const name = Object.entries(DeviceError).find(([, value]) => value === code)?.[0] ?? 'unknown';
  return new HidError('DEVICE_ERROR', `the key answered ERROR 0x${code.toString(16).padStart(2, '0')} (${name})`, code);
}

export class HidClient {
  readonly #transport: HidTransport;
  readonly #timeoutMs: number;
  readonly #confirmTimeoutMs: number;
  readonly #random: (n: number) => Uint8Array;
  readonly #timers: HidTimers;
  readonly #assembler = new MessageAssembler();
  readonly #unsubscribe: Array<() => void> = [];

  #cid: number | undefined;
  #initRequested = false;
  /** [F-23] An exchange was abandoned: its answer may still come, so resynchronise first. */
  #needsResync = false;
  #pending: Pending | undefined;
  #locked = false;
  readonly #waiters: Array<{ resolve(): void; reject(error: HidError): void }> = [];
  #closeError: HidError | undefined;

  constructor(transport: HidTransport, options: HidClientOptions = {}) {
    if (typeof transport !== 'object' || transport === null || typeof transport.write !== 'function' || typeof transport.onReport !== 'function' || typeof transport.onClose !== 'function') {
      throw new TypeError('"transport" expected a HidTransport');
    }
    if (typeof options !== 'object' || options === null) throw new TypeError('"options" expected an object');
    this.#transport = transport;
    this.#timeoutMs = checkMs(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs');
    this.#confirmTimeoutMs = checkMs(options.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS, 'confirmTimeoutMs');
    if (options.random !== undefined && typeof options.random !== 'function') throw new TypeError('"random" expected a function');
    this.#random = options.random ?? defaultRandom;
    const timers = options.timers ?? { setTimeout: (callback: () => void, ms: number) => setTimeout(callback, ms), clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>) };
    if (typeof timers.setTimeout !== 'function' || typeof timers.clearTimeout !== 'function') throw new TypeError('"timers" expected { setTimeout, clearTimeout }');
    this.#timers = timers;
    if (transport.closed) {
      this.#closeError = new HidError('DISCONNECTED', 'the transport was already closed');
      return;
    }
    this.#unsubscribe.push(
      transport.onReport((report) => this.#onReport(report)),
      transport.onClose((error) => this.#shut(new HidError('DISCONNECTED', 'the key went away', undefined, error ? { cause: error } : undefined))),
    );
  }

  get closed(): boolean {
    return this.#closeError !== undefined;
  }

  /** [F-21] Allocates a channel: INIT with a fresh nonce on the broadcast channel. */
  init(): Promise<InitInfo> {
    this.#initRequested = true;
    return this.#serial(undefined, async () => {
      const info = await this.#initOn(BROADCAST_CID, undefined);
      this.#cid = info.cid;
      this.#needsResync = false;
      return info;
    });
  }

  /** [F-22] One request/response on the allocated channel; later calls wait their turn. */
  async exchange(command: number, payload: Uint8Array, options: ExchangeOptions = {}): Promise<Uint8Array> {
    if (!Number.isInteger(command) || !(command === HidCommand.PING || (command >= HidCommand.VENDOR_FIRST && command <= HidCommand.VENDOR_LAST))) {
      throw new RangeError('"command" expected PING (0x01) or a vendor command 0x40..0x7f');
    }
    if (!(payload instanceof Uint8Array)) throw new TypeError('"payload" expected Uint8Array');
    if (payload.length > MAX_MESSAGE_SIZE) throw new RangeError(`"payload" is ${payload.length} bytes, above ${MAX_MESSAGE_SIZE}`);
    if (typeof options !== 'object' || options === null) throw new TypeError('"options" expected an object');
    const { signal, onKeepalive } = options;
    const timeoutMs = checkMs(options.timeoutMs ?? this.#timeoutMs, 'timeoutMs');
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('"signal" expected an AbortSignal');
    if (onKeepalive !== undefined && typeof onKeepalive !== 'function') throw new TypeError('"onKeepalive" expected a function');
    if (this.#closeError) throw this.#closedError();
    if (!this.#initRequested) throw new TypeError('exchange() needs a channel: call init() first');
    return this.#serial(signal, async () => {
      if (this.#cid === undefined) throw new TypeError('exchange() needs a channel: init() did not succeed');
      if (this.#needsResync) await this.#resync(signal);
      return this.#transact<Uint8Array>({
        cid: this.#cid,
        command,
        payload,
        timeoutMs,
        signal,
        onKeepalive,
        errors: 'reject',
        cancel: true,
        accept: (message) => ({ value: message.payload }),
      });
    });
  }

  /** Closes the transport; pending and later calls reject with HidError('CLOSED'). */
  async close(): Promise<void> {
    this.#shut(new HidError('CLOSED', 'the client was closed'));
    await this.#transport.close();
  }

  /** [F-23] INIT on our own channel; a channel the key has since forgotten is replaced by a new one. */
  async #resync(signal: AbortSignal | undefined): Promise<void> {
    const cid = this.#cid!;
    try {
      await this.#initOn(cid, signal);
    } catch (error) {
      if (!(error instanceof HidError && error.deviceErrorCode === DeviceError.INVALID_CHANNEL)) throw error;
      this.#cid = (await this.#initOn(BROADCAST_CID, signal)).cid;
    }
    this.#needsResync = false;
  }

  #initOn(cid: number, signal: AbortSignal | undefined): Promise<InitInfo> {
    const nonce = this.#random(INIT_NONCE_SIZE);
    if (!(nonce instanceof Uint8Array) || nonce.length !== INIT_NONCE_SIZE) throw new TypeError('"random" must return the number of bytes asked for');
    return this.#transact<InitInfo>({
      cid,
      command: HidCommand.INIT,
      payload: nonce.slice(),
      timeoutMs: this.#timeoutMs,
      signal,
      onKeepalive: undefined,
      // [F-21] On the broadcast channel an ERROR may answer another host; on our own channel only
      // INVALID_CHANNEL concerns the INIT (others are leftovers of what the resync abandons).
      errors: cid === BROADCAST_CID ? 'ignore' : 'invalid-channel-only',
      cancel: false,
      accept: (message) => {
        const answer = message.payload;
        if (answer.length < INIT_NONCE_SIZE || answer.subarray(0, INIT_NONCE_SIZE).some((byte, i) => byte !== nonce[i])) return undefined; // someone else's
        if (answer.length !== INIT_RESPONSE_SIZE) return { error: new HidError('BAD_RESPONSE', `INIT answer is ${answer.length} bytes, expected ${INIT_RESPONSE_SIZE}`) };
        const info: InitInfo = {
          cid: readCid(answer.subarray(8, 12)),
          protocolVersion: answer[12]!,
          major: answer[13]!,
          minor: answer[14]!,
          build: answer[15]!,
          capabilities: answer[16]!,
        };
        if (info.cid === RESERVED_CID || info.cid === BROADCAST_CID) return { error: new HidError('BAD_RESPONSE', `INIT answer allocates the reserved channel 0x${info.cid.toString(16)}`) };
        if (cid !== BROADCAST_CID && info.cid !== cid) return { error: new HidError('BAD_RESPONSE', 'INIT resynchronisation answered with another channel') };
        return { value: info };
      },
    });
  }

  /** Sends one message and waits for its answer; the only place reports are read. */
  #transact<T>(t: Transaction<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.#closeError) return reject(this.#closedError());
      if (t.signal?.aborted) return reject(new HidError('CANCELLED', 'the exchange was cancelled before it was sent'));
      const reports = encodeMessage({ cid: t.cid, command: t.command, payload: t.payload });
      let timeoutMs = t.timeoutMs;
      let timer: unknown;
      const arm = (): void => {
        this.#timers.clearTimeout(timer);
        timer = this.#timers.setTimeout(() => abandon(new HidError('TIMEOUT', `no answer from the key within ${timeoutMs} ms`)), timeoutMs);
      };
      const settle = (outcome: { value: T } | { error: HidError }): void => {
        if (this.#pending !== pending) return;
        this.#pending = undefined;
        this.#timers.clearTimeout(timer);
        t.signal?.removeEventListener('abort', onAbort);
        this.#assembler.reset();
        if ('error' in outcome) reject(outcome.error);
        else resolve(outcome.value);
      };
      /** [F-23] Give up on the answer: tell the key (CANCEL) and resynchronise before the next exchange. */
      const abandon = (error: HidError): void => {
        if (this.#pending !== pending) return;
        this.#needsResync = true;
        settle({ error });
        if (t.cancel && !this.#closeError) {
          const [cancel] = encodeMessage({ cid: t.cid, command: HidCommand.CANCEL, payload: new Uint8Array(0) });
          this.#transport.write(cancel!).catch(() => {
            // A key that is gone shows up as the transport's close.
          });
        }
      };
      const onAbort = (): void => abandon(new HidError('CANCELLED', 'the exchange was cancelled', undefined, { cause: t.signal?.reason }));
      const onMessage = (message: Message): void => {
        if (message.command === HidCommand.KEEPALIVE) {
          // [F-16] [F-23] The key is alive; while it waits for the user, give the user time.
          const status = message.payload[0];
          if (status === KeepaliveStatus.UP_NEEDED) timeoutMs = this.#confirmTimeoutMs;
          else if (status === KeepaliveStatus.PROCESSING) timeoutMs = t.timeoutMs;
          arm();
          if (status !== undefined && t.onKeepalive) {
            try {
              t.onKeepalive(status);
            } catch {
              // The caller's progress callback cannot break the exchange.
            }
          }
          return;
        }
        if (message.command === HidCommand.ERROR) {
          const code = message.payload[0];
          if (t.errors === 'ignore' || (t.errors === 'invalid-channel-only' && code !== DeviceError.INVALID_CHANNEL)) return;
          if (message.payload.length !== 1 || code === undefined) {
            this.#needsResync = true;
            return settle({ error: new HidError('BAD_RESPONSE', `ERROR answer is ${message.payload.length} bytes, expected 1`) });
          }
          // [F-23] A key that forgot our channel (it restarted): the next exchange's resync allocates a new one.
          if (code === DeviceError.INVALID_CHANNEL) this.#needsResync = true;
          return settle({ error: deviceError(code) });
        }
        if (message.command !== t.command) return; // [F-22] stale or unrelated
        const outcome = t.accept(message);
        if (outcome) settle(outcome);
      };
      const pending: Pending = {
        cid: t.cid,
        report: (report) => {
          const result = this.#assembler.feed(report);
          if (result.kind === 'ignore') return;
          arm(); // [F-23] any report of ours shows the key is alive
          if (result.kind === 'error') {
            this.#needsResync = true;
            settle({ error: new HidError('BAD_RESPONSE', `the key's answer broke the framing (code 0x${result.code.toString(16)})`) });
          } else if (result.kind === 'message') {
            onMessage(result.message);
          }
        },
        fail: (error) => settle({ error }),
      };
      this.#assembler.reset();
      this.#pending = pending;
      arm();
      t.signal?.addEventListener('abort', onAbort, { once: true });
      void (async () => {
        for (const report of reports) {
          if (this.#pending !== pending) return; // abandoned mid-message: the CANCEL ends it on the key
          await this.#transport.write(report);
        }
      })().catch((error: unknown) => {
        if (this.#pending !== pending) return;
        this.#needsResync = true;
        settle({ error: error instanceof HidError ? error : new HidError('DISCONNECTED', 'write to the key failed', undefined, { cause: error }) });
      });
    });
  }

  #onReport(report: Uint8Array): void {
    const pending = this.#pending;
    // [F-22] Only the channel we wait on; other hosts' traffic and answers nobody waits for are dropped.
    if (!pending || !(report instanceof Uint8Array) || report.length !== REPORT_SIZE || readCid(report) !== pending.cid) return;
    pending.report(report);
  }

  /** Runs `task` when every earlier init()/exchange() is done. */
  async #serial<T>(signal: AbortSignal | undefined, task: () => Promise<T>): Promise<T> {
    await this.#acquire(signal);
    try {
      return await task();
    } finally {
      this.#release();
    }
  }

  #acquire(signal: AbortSignal | undefined): Promise<void> {
    if (this.#closeError) return Promise.reject(this.#closedError());
    if (signal?.aborted) return Promise.reject(new HidError('CANCELLED', 'the exchange was cancelled before it was sent'));
    if (!this.#locked) {
      this.#locked = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        reject(new HidError('CANCELLED', 'the exchange was cancelled before it was sent', undefined, { cause: signal?.reason }));
      };
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (error: HidError) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #release(): void {
    const next = this.#waiters.shift();
    if (next) next.resolve();
    else this.#locked = false;
  }

  #closedError(): HidError {
    const error = this.#closeError!;
    return new HidError(error.code, error.message, undefined, error.cause !== undefined ? { cause: error.cause } : undefined);
  }

  /** The link is over: the pending exchange and every queued one fail with `error`, and so will later calls. */
  #shut(error: HidError): void {
    if (this.#closeError) return;
    this.#closeError = error;
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.#pending?.fail(error);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#closedError());
  }
}

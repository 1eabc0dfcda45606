/**
 * The key's (device-side) link layer (firmware-bridge/PROTOCOL.md §2): channel allocation, PING, CANCEL,
 * KEEPALIVE, ERROR and the dispatch of vendor commands to a handler, after CTAP 2.1 §11.2 CTAPHID. Reports
 * are framed with the host's own codec (src/signer/hid/framing.ts).
 *
 * Pure apart from the injected timers: reports come in through receive() and go out through `send`.
 * Everything received is untrusted; receive() never throws, whatever the bytes.
 */
import {
  BROADCAST_CID,
  FRAMING_PROTOCOL_VERSION,
  HidCommand,
  HidErrorCode,
  INIT_NONCE_SIZE,
  INIT_RESPONSE_SIZE,
  KeepaliveStatus,
  MAX_MESSAGE_SIZE,
  MessageAssembler,
  RESERVED_CID,
  decodePacket,
  encodeMessage,
  type Message,
} from '../../src/signer/hid/framing.js';

export interface CommandContext {
  /** Aborts on CANCEL from the host, on INIT resynchronisation of the channel and on reset(). */
  signal: AbortSignal;
  /** KEEPALIVE status to send while the handler runs: 1 processing, 2 waiting for the user. */
  setStatus(status: 1 | 2): void;
}

export type CommandHandler = (command: number, payload: Uint8Array, context: CommandContext) => Promise<Uint8Array>;

/** The timer functions the link uses; globalThis's setTimeout/clearTimeout fit. */
export interface LinkTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface LinkOptions {
  /** One 64-byte report to the host. */
  send: (report: Uint8Array) => void;
  /** Vendor commands 0x40..0x7f; resolves with the response payload (a rejection is answered ERROR OTHER). */
  handle: CommandHandler;
  version: { major: number; minor: number; build: number };
  /** INIT response capability byte, default 0. */
  capabilities?: number;
  timers?: LinkTimers;
  /** Default crypto.getRandomValues. */
  random?: (n: number) => Uint8Array;
  /** Default 100. */
  keepaliveIntervalMs?: number;
  /** Default 500: continuation packets must arrive within this of the previous one. */
  messageTimeoutMs?: number;
}

/** [F-10] Channels kept allocated at once. */
export const MAX_CHANNELS = 8;
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 100;
export const DEFAULT_MESSAGE_TIMEOUT_MS = 500;

interface Run {
  cid: number;
  controller: AbortController;
  status: 1 | 2;
  timer: unknown;
  /** Resynchronised or reset away: the response is never sent. */
  dropped: boolean;
}

function defaultRandom(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

function checkByte(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError(`"${field}" expected 0..255`);
  return value;
}

function checkMs(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new RangeError(`"${field}" expected a positive number of milliseconds`);
  return value;
}

export class KeyLink {
  readonly #send: (report: Uint8Array) => void;
  readonly #handle: CommandHandler;
  /** major, minor, build, capabilities: the tail of every INIT response. */
  readonly #versionBytes: Uint8Array;
  readonly #timers: LinkTimers;
  readonly #random: (n: number) => Uint8Array;
  readonly #keepaliveIntervalMs: number;
  readonly #messageTimeoutMs: number;

  readonly #assembler = new MessageAssembler();
  /** Allocated channels, least recently used first (a Map keeps insertion order). */
  readonly #channels = new Map<number, true>();
  #messageTimer: unknown;
  #running: Run | undefined;

  constructor(o: LinkOptions) {
    if (typeof o !== 'object' || o === null) throw new TypeError('"options" expected an object');
    if (typeof o.send !== 'function') throw new TypeError('"send" expected a function');
    if (typeof o.handle !== 'function') throw new TypeError('"handle" expected a function');
    if (typeof o.version !== 'object' || o.version === null) throw new TypeError('"version" expected { major, minor, build }');
    this.#versionBytes = Uint8Array.of(
      checkByte(o.version.major, 'version.major'),
      checkByte(o.version.minor, 'version.minor'),
      checkByte(o.version.build, 'version.build'),
      checkByte(o.capabilities ?? 0, 'capabilities'),
    );
    const timers = o.timers ?? { setTimeout: (callback: () => void, ms: number) => setTimeout(callback, ms), clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>) };
    if (typeof timers.setTimeout !== 'function' || typeof timers.clearTimeout !== 'function') throw new TypeError('"timers" expected { setTimeout, clearTimeout }');
    if (o.random !== undefined && typeof o.random !== 'function') throw new TypeError('"random" expected a function');
    this.#send = o.send;
    this.#handle = o.handle;
    this.#timers = timers;
    this.#random = o.random ?? defaultRandom;
    this.#keepaliveIntervalMs = checkMs(o.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS, 'keepaliveIntervalMs');
    this.#messageTimeoutMs = checkMs(o.messageTimeoutMs ?? DEFAULT_MESSAGE_TIMEOUT_MS, 'messageTimeoutMs');
  }

  /** True while a vendor command's handler runs, including one aborted but not yet settled ([F-17]). */
  get busy(): boolean {
    return this.#running !== undefined;
  }

  /** One report from the host. Never throws: bad input is answered with ERROR or dropped. */
  receive(report: Uint8Array): void {
    try {
      this.#receive(report);
    } catch {
      // Unreachable by design (the assembler and the dispatch return results, `send` is guarded); a
      // receive path must not let a bug in here take down the caller's I/O loop.
    }
  }

  /** The host went away: forget every channel and drop the running command ([F-20]). */
  reset(): void {
    this.#clearMessageTimer();
    this.#assembler.reset();
    this.#channels.clear();
    if (this.#running) this.#drop(this.#running);
  }

  #receive(report: Uint8Array): void {
    const result = this.#assembler.feed(report);
    // [F-8] The continuation clock runs from the last packet of the message under way; another
    // channel's traffic does not extend it.
    if (!this.#assembler.busy) this.#clearMessageTimer();
    else if (result.kind === 'partial') this.#armMessageTimer();
    switch (result.kind) {
      case 'partial':
      case 'ignore':
        return;
      case 'error': {
        // [F-14] CANCEL is never answered, not even when it lands in the middle of a message (the
        // assembler has dropped that message if it was the same channel's).
        const packet = decodePacket(report);
        if (packet?.kind === 'init' && packet.command === HidCommand.CANCEL) return;
        this.#sendError(result.cid, result.code);
        return;
      }
      case 'message':
        this.#dispatch(result.message);
    }
  }

  #dispatch({ cid, command, payload }: Message): void {
    if (command === HidCommand.INIT) return this.#init(cid, payload);
    // [F-3] [F-12] Only INIT is taken on the broadcast channel or on a channel the key did not allocate.
    if (cid === BROADCAST_CID || !this.#channels.has(cid)) return this.#sendError(cid, HidErrorCode.INVALID_CHANNEL);
    this.#touch(cid);
    const run = this.#running;
    if (command === HidCommand.CANCEL) {
      // [F-14] Only the channel whose command runs can cancel it; the handler decides what it answers.
      if (run && !run.dropped && run.cid === cid) run.controller.abort();
      return;
    }
    // [F-17] One command at a time, whoever asks.
    if (run) return this.#sendError(cid, HidErrorCode.CHANNEL_BUSY);
    if (command === HidCommand.PING) return this.#sendMessage(cid, HidCommand.PING, payload); // [F-13]
    if (command >= HidCommand.VENDOR_FIRST && command <= HidCommand.VENDOR_LAST) return this.#run(cid, command, payload);
    this.#sendError(cid, HidErrorCode.INVALID_CMD); // [F-18]
  }

  #init(cid: number, nonce: Uint8Array): void {
    if (cid !== BROADCAST_CID && !this.#channels.has(cid)) return this.#sendError(cid, HidErrorCode.INVALID_CHANNEL); // [F-12]
    if (nonce.length !== INIT_NONCE_SIZE) return this.#sendError(cid, HidErrorCode.INVALID_LEN); // [F-9]
    let channel = cid;
    if (cid === BROADCAST_CID) {
      const allocated = this.#allocate();
      if (allocated === undefined) return this.#sendError(cid, HidErrorCode.OTHER);
      channel = allocated;
    } else {
      // [F-11] Resynchronise: whatever the channel had under way is abandoned and its answer never sent.
      const run = this.#running;
      if (run && !run.dropped && run.cid === cid) this.#drop(run);
      this.#touch(cid);
    }
    const response = new Uint8Array(INIT_RESPONSE_SIZE);
    response.set(nonce, 0);
    response[8] = channel >>> 24;
    response[9] = (channel >>> 16) & 0xff;
    response[10] = (channel >>> 8) & 0xff;
    response[11] = channel & 0xff;
    response[12] = FRAMING_PROTOCOL_VERSION;
    response.set(this.#versionBytes, 13);
    this.#sendMessage(cid, HidCommand.INIT, response);
  }

  /** [F-9] [F-10] A fresh random channel id; the least recently used idle channel makes room. */
  #allocate(): number | undefined {
    let cid: number | undefined;
    // A real random source collides with probability ~8/2³²; the bound only stops a broken one from
    // hanging the key.
    for (let attempt = 0; attempt < 16 && cid === undefined; attempt++) {
      let bytes: Uint8Array;
      try {
        bytes = this.#random(4);
      } catch {
        return undefined;
      }
      if (!(bytes instanceof Uint8Array) || bytes.length < 4) return undefined;
      const candidate = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
      if (candidate !== RESERVED_CID && candidate !== BROADCAST_CID && !this.#channels.has(candidate)) cid = candidate;
    }
    if (cid === undefined) return undefined;
    if (this.#channels.size >= MAX_CHANNELS) {
      const busyCid = this.#running && !this.#running.dropped ? this.#running.cid : undefined;
      for (const old of this.#channels.keys()) {
        if (old === busyCid) continue; // evicting it would strand a command that is still working
        this.#channels.delete(old);
        break;
      }
    }
    this.#channels.set(cid, true);
    return cid;
  }

  #touch(cid: number): void {
    this.#channels.delete(cid);
    this.#channels.set(cid, true);
  }

  #run(cid: number, command: number, payload: Uint8Array): void {
    const run: Run = { cid, controller: new AbortController(), status: KeepaliveStatus.PROCESSING, timer: undefined, dropped: false };
    this.#running = run;
    const context: CommandContext = {
      signal: run.controller.signal,
      setStatus: (status) => {
        if (status !== KeepaliveStatus.PROCESSING && status !== KeepaliveStatus.UP_NEEDED) throw new RangeError('"status" expected 1 (processing) or 2 (waiting for the user)');
        if (this.#running !== run || run.dropped || status === run.status) return;
        run.status = status;
        // [F-16] A change is sent at once, so the host can prompt for the button (and lengthen its
        // timeout) without waiting for the next interval.
        this.#keepalive(run);
      },
    };
    this.#armKeepalive(run);
    let pending: Promise<Uint8Array>;
    try {
      pending = Promise.resolve(this.#handle(command, payload, context));
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (response) => this.#finish(run, command, response),
      () => this.#finish(run, command, undefined),
    );
  }

  #finish(run: Run, command: number, response: unknown): void {
    if (this.#running !== run) return;
    this.#running = undefined;
    this.#timers.clearTimeout(run.timer);
    if (run.dropped) return; // [F-11] [F-20]
    // [F-15] A failed handler, or an answer that does not fit one message, is ERROR OTHER.
    if (!(response instanceof Uint8Array) || response.length > MAX_MESSAGE_SIZE) return this.#sendError(run.cid, HidErrorCode.OTHER);
    this.#sendMessage(run.cid, command, response);
  }

  #drop(run: Run): void {
    run.dropped = true;
    this.#timers.clearTimeout(run.timer);
    run.controller.abort();
  }

  #armKeepalive(run: Run): void {
    this.#timers.clearTimeout(run.timer);
    run.timer = this.#timers.setTimeout(() => this.#keepalive(run), this.#keepaliveIntervalMs);
  }

  /** [F-16] KEEPALIVE with the handler's status, then the next one an interval later. */
  #keepalive(run: Run): void {
    if (this.#running !== run || run.dropped) return;
    this.#sendMessage(run.cid, HidCommand.KEEPALIVE, Uint8Array.of(run.status));
    this.#armKeepalive(run);
  }

  #armMessageTimer(): void {
    this.#clearMessageTimer();
    this.#messageTimer = this.#timers.setTimeout(() => {
      this.#messageTimer = undefined;
      if (!this.#assembler.busy) return;
      const cid = this.#assembler.cid;
      this.#assembler.reset();
      this.#sendError(cid, HidErrorCode.MSG_TIMEOUT); // [F-8]
    }, this.#messageTimeoutMs);
  }

  #clearMessageTimer(): void {
    if (this.#messageTimer === undefined) return;
    this.#timers.clearTimeout(this.#messageTimer);
    this.#messageTimer = undefined;
  }

  /** [F-19] ERROR carries exactly one byte. */
  #sendError(cid: number, code: number): void {
    this.#sendMessage(cid, HidCommand.ERROR, Uint8Array.of(code));
  }

  #sendMessage(cid: number, command: number, payload: Uint8Array): void {
    for (const report of encodeMessage({ cid, command, payload })) {
      try {
        this.#send(report);
      } catch {
        // The rest of a message whose start did not go out is useless; the host times out and resyncs.
        return;
      }
    }
  }
}

/**
 * Host-side ports of the Trickle key's USB HID link (firmware-bridge/PROTOCOL.md §1) and the adapter for
 * the key's emulator, which carries the same 64-byte reports over a Unix socket or loopback TCP. The link
 * layer above (client.ts) follows CTAP 2.1 §11.2 CTAPHID; a transport only moves whole reports.
 */
import { createConnection, type Socket } from 'node:net';
import { REPORT_SIZE } from './framing.js';
import { HidError } from './errors.js';

/** One open key: whole 64-byte reports in both directions ([F-1]). */
export interface HidTransport {
  /** Sends exactly 64 bytes, without hidraw's leading report-id byte; rejects when the device is gone. */
  write(report: Uint8Array): Promise<void>;
  onReport(listener: (report: Uint8Array) => void): () => void;
  /** Fires once, when the device goes away (with the error) or close() is called (without). */
  onClose(listener: (error?: Error) => void): () => void;
  close(): Promise<void>;
  readonly closed: boolean;
}

export interface HidConnection {
  transport: HidTransport;
  /** USB serial string when the OS reports one. */
  serialNumber?: string;
  path: string;
}

/** Finds and opens a key; rejects with HidError('NOT_FOUND') when none is attached. */
export interface HidConnector {
  connect(): Promise<HidConnection>;
  describe(): string;
}

/**
 * The listener bookkeeping and close-once rule both adapters share. A subclass delivers reports with
 * `emitReport` and ends with `finish`; it implements the I/O.
 */
export abstract class AbstractHidTransport implements HidTransport {
  readonly #reportListeners = new Set<(report: Uint8Array) => void>();
  readonly #closeListeners = new Set<(error?: Error) => void>();
  #closed = false;
  #closeError: Error | undefined;

  get closed(): boolean {
    return this.#closed;
  }

  abstract write(report: Uint8Array): Promise<void>;
  abstract close(): Promise<void>;

  onReport(listener: (report: Uint8Array) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('"listener" expected a function');
    this.#reportListeners.add(listener);
    return () => void this.#reportListeners.delete(listener);
  }

  onClose(listener: (error?: Error) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('"listener" expected a function');
    if (this.#closed) {
      // A listener that comes late still hears about the close once, but never synchronously from here.
      let live = true;
      queueMicrotask(() => live && callListener(listener, this.#closeError));
      return () => void (live = false);
    }
    this.#closeListeners.add(listener);
    return () => void this.#closeListeners.delete(listener);
  }

  /** Checks a report handed to write(); the error a write of a closed transport rejects with. */
  protected checkWrite(report: Uint8Array): HidError | undefined {
    if (!(report instanceof Uint8Array)) throw new TypeError('"report" expected Uint8Array');
    if (report.length !== REPORT_SIZE) throw new RangeError(`"report" is ${report.length} bytes, expected ${REPORT_SIZE}`);
    if (!this.#closed) return undefined;
    return this.#closeError ? new HidError('DISCONNECTED', 'the key went away', undefined, { cause: this.#closeError }) : new HidError('CLOSED', 'the transport is closed');
  }

  protected emitReport(report: Uint8Array): void {
    if (this.#closed) return;
    for (const listener of [...this.#reportListeners]) callListener(listener, report);
  }

  /** Marks the transport closed and tells the close listeners, once. */
  protected finish(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = error;
    const listeners = [...this.#closeListeners];
    this.#closeListeners.clear();
    this.#reportListeners.clear();
    for (const listener of listeners) callListener(listener, error);
  }
}

/** A throwing listener must not starve the others or the I/O loop; its error still surfaces, as with EventEmitter. */
function callListener<T>(listener: (value: T) => void, value: T): void {
  try {
    listener(value);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

export type SocketHidConnectorOptions = { path: string } | { host: '127.0.0.1' | '::1'; port: number };

/**
 * Connects to the key's emulator. The stream carries raw 64-byte reports both ways, no length prefix; it
 * is cut into reports here whatever the chunking of 'data' events. Loopback only: the emulator holds test
 * keys, and a report stream has no authentication of its own.
 */
export class SocketHidConnector implements HidConnector {
  readonly #options: SocketHidConnectorOptions;

  constructor(options: SocketHidConnectorOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('"options" expected an object');
    if ('path' in options) {
      if (typeof options.path !== 'string' || options.path.length === 0) throw new TypeError('"path" expected a non-empty string');
      this.#options = { path: options.path };
    } else {
      const { host, port } = options as { host: unknown; port: unknown };
      if (host !== '127.0.0.1' && host !== '::1') throw new RangeError('"host" expected a loopback address: 127.0.0.1 or ::1');
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError('"port" expected 1..65535');
      this.#options = { host, port };
    }
  }

  describe(): string {
    const o = this.#options;
    return 'path' in o ? `Trickle key emulator at unix:${o.path}` : `Trickle key emulator at tcp:${o.host === '::1' ? '[::1]' : o.host}:${o.port}`;
  }

  connect(): Promise<HidConnection> {
    const o = this.#options;
    const path = 'path' in o ? o.path : `tcp:${o.host === '::1' ? '[::1]' : o.host}:${o.port}`;
    return new Promise((resolve, reject) => {
      const socket = 'path' in o ? createConnection({ path: o.path }) : createConnection({ host: o.host, port: o.port });
      const onError = (error: Error): void => {
        socket.destroy();
        reject(new HidError('NOT_FOUND', `no key emulator at ${path}: ${error.message}`, undefined, { cause: error }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve({ transport: new SocketHidTransport(socket), path });
      });
    });
  }
}

class SocketHidTransport extends AbstractHidTransport {
  readonly #socket: Socket;
  /** Bytes of a report cut across 'data' events. */
  #partial = new Uint8Array(REPORT_SIZE);
  #filled = 0;
  #closedBySelf = false;

  constructor(socket: Socket) {
    super();
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    let failure: Error | undefined;
    socket.on('error', (error) => {
      failure = error;
    });
    // The other end half-closing means the key is gone: there is no use for a write-only link.
    socket.on('end', () => socket.destroy());
    socket.on('close', () => {
      this.finish(this.#closedBySelf ? undefined : new HidError('DISCONNECTED', 'the key emulator closed the connection', undefined, failure ? { cause: failure } : undefined));
    });
  }

  #onData(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.closed) {
      const take = Math.min(REPORT_SIZE - this.#filled, chunk.length - offset);
      this.#partial.set(chunk.subarray(offset, offset + take), this.#filled);
      this.#filled += take;
      offset += take;
      if (this.#filled === REPORT_SIZE) {
        const report = this.#partial;
        this.#partial = new Uint8Array(REPORT_SIZE);
        this.#filled = 0;
        this.emitReport(report);
      }
    }
  }

  write(report: Uint8Array): Promise<void> {
    const closed = this.checkWrite(report);
    if (closed) return Promise.reject(closed);
    return new Promise((resolve, reject) => {
      this.#socket.write(Buffer.from(report), (error) => {
        if (error) reject(new HidError('DISCONNECTED', `write to the key emulator failed: ${error.message}`, undefined, { cause: error }));
        else resolve();
      });
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.#closedBySelf = true;
    return new Promise((resolve) => {
      this.#socket.once('close', () => resolve());
      this.#socket.destroy();
    });
  }
}

/**
 * The real USB adapter of the Trickle key (firmware-bridge/PROTOCOL.md §1) on node-hid 3.x: finds the
 * key's vendor interface (usage page 0xFF00), opens it with the non-blocking HIDAsync API and moves whole
 * 64-byte reports. The link layer above is CTAP 2.1 §11.2 CTAPHID (client.ts).
 *
 * node-hid is loaded inside connect(), so importing this module never loads the native addon (a machine
 * without a key, or with the emulator only, never needs it). A failure to load it is not NOT_FOUND: it
 * propagates as it is, because it is a broken installation rather than a missing key.
 */
import { REPORT_SIZE } from './framing.js';
import { HidError } from './errors.js';
import { AbstractHidTransport, type HidConnection, type HidConnector } from './transport.js';

export interface NodeHidConnectorOptions {
  vendorId: number;
  productId: number;
  /** Default 0xff00: the key's vendor interface. */
  usagePage?: number;
  /** Only the key with this USB serial string. */
  serialNumber?: string;
}

export const DEFAULT_USAGE_PAGE = 0xff00;

type NodeHid = typeof import('node-hid');
type HidDevice = Awaited<ReturnType<NodeHid['HIDAsync']['open']>>;

function checkUint16(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError(`"${field}" expected 0..0xffff`);
  return value;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

export class NodeHidConnector implements HidConnector {
  readonly #vendorId: number;
  readonly #productId: number;
  readonly #usagePage: number;
  readonly #serialNumber: string | undefined;

  constructor(o: NodeHidConnectorOptions) {
    if (typeof o !== 'object' || o === null) throw new TypeError('"options" expected an object');
    this.#vendorId = checkUint16(o.vendorId, 'vendorId');
    this.#productId = checkUint16(o.productId, 'productId');
    this.#usagePage = checkUint16(o.usagePage ?? DEFAULT_USAGE_PAGE, 'usagePage');
    if (o.serialNumber !== undefined && (typeof o.serialNumber !== 'string' || o.serialNumber.length === 0)) throw new TypeError('"serialNumber" expected a non-empty string');
    this.#serialNumber = o.serialNumber;
  }

  describe(): string {
    const serial = this.#serialNumber === undefined ? '' : ` serial ${this.#serialNumber}`;
    return `USB HID key ${hex4(this.#vendorId)}:${hex4(this.#productId)} usage page 0x${hex4(this.#usagePage)}${serial}`;
  }

  async connect(): Promise<HidConnection> {
    const loaded = await import('node-hid');
    // CommonJS through ESM: the exports object is the default export (named ones are a lexer's guess).
    const hid: NodeHid = (loaded as unknown as { default?: NodeHid }).default ?? loaded;
    // hidraw rather than libusb: it does not detach the kernel driver and sees the usage page.
    hid.setDriverType('hidraw');
    let devices: Awaited<ReturnType<NodeHid['devicesAsync']>>;
    try {
      devices = await hid.devicesAsync(this.#vendorId, this.#productId);
    } catch (error) {
      throw new HidError('NOT_FOUND', `cannot list HID devices: ${(error as Error)?.message ?? error}`, undefined, { cause: error });
    }
    const candidates = devices
      .filter((d) => d.vendorId === this.#vendorId && d.productId === this.#productId && d.usagePage === this.#usagePage && typeof d.path === 'string' && d.path.length > 0)
      .filter((d) => this.#serialNumber === undefined || d.serialNumber === this.#serialNumber)
      .sort((a, b) => (a.path! < b.path! ? -1 : a.path! > b.path! ? 1 : 0));
    const found = candidates[0];
    if (!found) throw new HidError('NOT_FOUND', `no ${this.describe()} attached`);
    const path = found.path!;
    let device: HidDevice;
    try {
      device = await hid.HIDAsync.open(path);
    } catch (error) {
      // Unplugged between listing and opening, or no permission on the hidraw node.
      throw new HidError('NOT_FOUND', `cannot open ${path}: ${(error as Error)?.message ?? error}`, undefined, { cause: error });
    }
    const connection: HidConnection = { transport: new NodeHidTransport(device), path };
    if (found.serialNumber) connection.serialNumber = found.serialNumber;
    return connection;
  }
}

class NodeHidTransport extends AbstractHidTransport {
  readonly #device: HidDevice;

  constructor(device: HidDevice) {
    super();
    this.#device = device;
    // node-hid reads on its own thread and emits 'data'; nothing here blocks.
    device.on('data', (data: Buffer) => {
      // [F-1] Some hidraw paths hand the report id along (65 bytes): the report is the last 64.
      if (!(data instanceof Uint8Array) || data.length < REPORT_SIZE) return;
      this.emitReport(new Uint8Array(data.subarray(data.length - REPORT_SIZE)));
    });
    device.on('error', (error: unknown) => this.#lost(error));
  }

  async write(report: Uint8Array): Promise<void> {
    const closed = this.checkWrite(report);
    if (closed) throw closed;
    // [F-1] hidraw wants the report id first; the key has none, so 0x00.
    const buffer = Buffer.alloc(REPORT_SIZE + 1);
    buffer.set(report, 1);
    try {
      await this.#device.write(buffer);
    } catch (error) {
      this.#lost(error);
      throw new HidError('DISCONNECTED', `write to the key failed: ${(error as Error)?.message ?? error}`, undefined, { cause: error });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.finish();
    await this.#device.close().catch(() => {
      // Already gone: nothing more to release.
    });
  }

  #lost(error: unknown): void {
    if (this.closed) return;
    this.finish(new HidError('DISCONNECTED', `the key went away: ${(error as Error)?.message ?? error}`, undefined, { cause: error }));
    this.#device.close().catch(() => {});
  }
}

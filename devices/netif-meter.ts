/**
 * A Meter of bytes through a Linux network interface, read from the kernel's counters in sysfs
 * (`/sys/class/net/<iface>/statistics/rx_bytes` and `tx_bytes`). Directions are the host's: on a
 * hotspot, what its clients download is `tx` on the access-point interface.
 *
 * The counters reset when the interface goes away and comes back (or the driver reloads); each one goes
 * through its own CounterAccumulator, so a reset adds the new count instead of going backwards, and the
 * meter counts from its first reading.
 *
 * @example
 *   const meter = new NetInterfaceMeter({ iface: 'wlan0', direction: 'tx' });
 *   await meter.read(); // 0n at first, then bytes sent since
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CounterAccumulator, MeteringError, type Meter } from '../src/metering/index.js';

export const DEFAULT_SYSFS_NET_ROOT = '/sys/class/net';

/** Longest counter file we accept: 20 digits (2^64 − 1) and a newline, with room to spare. */
const MAX_COUNTER_FILE_BYTES = 32;
const MAX_U64 = 2n ** 64n - 1n;
/** Linux interface names: at most 15 bytes (IFNAMSIZ − 1). */
const IFACE_NAME = /^[A-Za-z0-9_.:-]{1,15}$/;

export interface NetInterfaceMeterOptions {
  iface: string;
  /** Bytes received, sent, or both, from the host's point of view. */
  direction: 'rx' | 'tx' | 'both';
  /** Default '/sys/class/net'; tests point it at a copy of test/fixtures/sysfs-net. */
  sysfsRoot?: string;
}

/** Check an interface name: a plain name, never a path (no '/', no '..'). Throws RangeError. */
export function checkInterfaceName(iface: string): void {
  if (typeof iface !== 'string') throw new TypeError(`"iface" expected string, got ${typeof iface}`);
  if (!IFACE_NAME.test(iface) || iface === '.' || iface.includes('..')) {
    throw new RangeError(`"iface" must be an interface name (1 to 15 of A-Z a-z 0-9 _ . : -, no '..'), got ${JSON.stringify(iface)}`);
  }
}

/** Parse a sysfs counter: a decimal integer ≤ 2^64 − 1, optionally followed by one newline. */
export function parseCounter(text: string, what: string): bigint {
  const match = /^(\d{1,20})\n?$/.exec(text);
  const value = match === null ? undefined : BigInt(match[1]!);
  if (value === undefined || value > MAX_U64) {
    throw new MeteringError('METER_FAILED', `${what} is not a 64-bit decimal counter`);
  }
  return value;
}

async function readSmallFile(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(MAX_COUNTER_FILE_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_COUNTER_FILE_BYTES) throw new Error(`longer than ${MAX_COUNTER_FILE_BYTES} bytes`);
    return buffer.subarray(0, bytesRead).toString('latin1');
  } finally {
    await handle.close();
  }
}

export class NetInterfaceMeter implements Meter {
  readonly unit = 'B';
  readonly iface: string;
  readonly direction: 'rx' | 'tx' | 'both';
  readonly #root: string;
  readonly #counters: { file: string; accumulator: CounterAccumulator }[];

  constructor(options: NetInterfaceMeterOptions) {
    checkInterfaceName(options.iface);
    if (options.direction !== 'rx' && options.direction !== 'tx' && options.direction !== 'both') {
      throw new RangeError(`"direction" must be 'rx', 'tx' or 'both', got ${JSON.stringify(options.direction)}`);
    }
    this.iface = options.iface;
    this.direction = options.direction;
    this.#root = options.sysfsRoot ?? DEFAULT_SYSFS_NET_ROOT;
    const files = options.direction === 'both' ? ['rx_bytes', 'tx_bytes'] : [`${options.direction}_bytes`];
    this.#counters = files.map((file) => ({ file, accumulator: new CounterAccumulator() }));
  }

  /** Times a counter was seen going backwards (interface reset) and counted as a restart. */
  get resets(): number {
    return this.#counters.reduce((sum, c) => sum + c.accumulator.resets, 0);
  }

  async read(): Promise<bigint> {
    // Read every counter before updating any, so a failed read leaves the totals untouched.
    const raws: bigint[] = [];
    for (const { file } of this.#counters) {
      const what = `${this.iface}/statistics/${file}`;
      let text: string;
      try {
        text = await readSmallFile(join(this.#root, this.iface, 'statistics', file));
      } catch (error) {
        throw new MeteringError('METER_FAILED', `cannot read ${what}`, { cause: error });
      }
      raws.push(parseCounter(text, what));
    }
    let total = 0n;
    this.#counters.forEach((counter, i) => {
      total += counter.accumulator.update(raws[i]!);
    });
    return total;
  }
}

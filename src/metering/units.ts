/**
 * Units of metered quantities and exact conversion between units of one dimension, so a meter that
 * counts bytes can be priced per MB, or a meter in Wh per kWh. Integer arithmetic only (bigint); the
 * caller picks the rounding: the payer's meter rounds up (a started unit is paid), a price cap rounds
 * down.
 *
 * Known units: bytes `B`, `kB`, `MB`, `GB`, `TB` (decimal, 1 kB = 1000 B) and `KiB`, `MiB`, `GiB`
 * (binary); energy `Wh`, `kWh`; time `s`, `min`, `h`. Unit strings are case sensitive. Any other string
 * (e.g. "reading", "ride") is a dimensionless count, convertible only to itself.
 *
 * Also home of MeteringError, the one error type of src/metering and devices/.
 *
 * @example
 *   convertUnits(1_500_000n, 'B', 'MB', 'ceil'); // 2n
 *   convertUnits(3n, 'kWh', 'Wh', 'floor');      // 3000n
 */

export type MeteringErrorCode =
  /** Two units of different dimensions, or a count unit and another unit. Fix the configuration. */
  | 'UNIT_MISMATCH'
  /** A tariff with an empty or too long unit, or a price that is not a positive msat amount. Refuse the offer. */
  | 'BAD_TARIFF'
  /** A meter could not be read, or returned something that is not a counter. Retry at the next poll. */
  | 'METER_FAILED'
  /** A meter returned less than it returned before, breaking the Meter contract. The reading is ignored. */
  | 'METER_WENT_BACKWARDS'
  /** The pay function failed; the stream has ended. The channel layer decides whether to resume or close. */
  | 'PAYMENT_FAILED'
  /** A service gate could not be opened or paused; its state is unchanged. Retry, or stop serving. */
  | 'GATE_FAILED';

/** Bad data from a meter, gate, tariff or payment, with a stable `code`. The underlying error is `cause`. */
export class MeteringError extends Error {
  override readonly name = 'MeteringError';
  constructor(
    readonly code: MeteringErrorCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(`${code}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
  }
}

export type Dimension = 'bytes' | 'energy' | 'time' | 'count';

interface Scale {
  dimension: Exclude<Dimension, 'count'>;
  /** How many base units (B, Wh, s) one of this unit is. */
  base: bigint;
}

const SCALES: ReadonlyMap<string, Scale> = new Map<string, Scale>([
  ['B', { dimension: 'bytes', base: 1n }],
  ['kB', { dimension: 'bytes', base: 1000n }],
  ['MB', { dimension: 'bytes', base: 1000n ** 2n }],
  ['GB', { dimension: 'bytes', base: 1000n ** 3n }],
  ['TB', { dimension: 'bytes', base: 1000n ** 4n }],
  ['KiB', { dimension: 'bytes', base: 1024n }],
  ['MiB', { dimension: 'bytes', base: 1024n ** 2n }],
  ['GiB', { dimension: 'bytes', base: 1024n ** 3n }],
  ['Wh', { dimension: 'energy', base: 1n }],
  ['kWh', { dimension: 'energy', base: 1000n }],
  ['s', { dimension: 'time', base: 1n }],
  ['min', { dimension: 'time', base: 60n }],
  ['h', { dimension: 'time', base: 3600n }],
]);

/** Every unit with a known scale, in the order above. */
export const KNOWN_UNITS: readonly string[] = [...SCALES.keys()];

/**
 * The dimension of `unit`; 'count' for any unit without a known scale.
 * @example unitDimension('MiB') // 'bytes'
 */
export function unitDimension(unit: string): Dimension {
  return SCALES.get(unit)?.dimension ?? 'count';
}

/** True when a quantity in `from` can be expressed in `to`. */
export function unitsCompatible(from: string, to: string): boolean {
  if (from === to) return true;
  const a = SCALES.get(from);
  const b = SCALES.get(to);
  return a !== undefined && b !== undefined && a.dimension === b.dimension;
}

/**
 * Express `quantity` of `from` in `to`, rounding as asked. Throws MeteringError('UNIT_MISMATCH') when the
 * units are of different dimensions (or either is a count unit and they differ).
 * @example convertUnits(1025n, 'B', 'KiB', 'floor') // 1n
 */
export function convertUnits(quantity: bigint, from: string, to: string, rounding: 'floor' | 'ceil'): bigint {
  if (typeof quantity !== 'bigint') throw new TypeError(`"quantity" expected bigint, got ${typeof quantity}`);
  if (quantity < 0n) throw new RangeError(`"quantity" must not be negative (${quantity})`);
  if (rounding !== 'floor' && rounding !== 'ceil') throw new TypeError(`"rounding" expected 'floor' or 'ceil'`);
  if (typeof from !== 'string' || typeof to !== 'string') throw new TypeError('"from" and "to" expected unit strings');
  if (from === to) return quantity;
  const a = SCALES.get(from);
  const b = SCALES.get(to);
  if (a === undefined || b === undefined || a.dimension !== b.dimension) {
    throw new MeteringError(
      'UNIT_MISMATCH',
      `cannot convert ${JSON.stringify(from)} (${unitDimension(from)}) to ${JSON.stringify(to)} (${unitDimension(to)})`,
    );
  }
  const numerator = quantity * a.base;
  const whole = numerator / b.base;
  return rounding === 'ceil' && whole * b.base !== numerator ? whole + 1n : whole;
}

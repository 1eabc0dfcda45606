/**
 * A tariff: the price in msat of one unit of a metered service, as offered in a `service_announcement`
 * and agreed in `oneway_propose` (`unit`, `tariffMsatPerUnit`; docs/protocol.md §3.2, §5).
 *
 * @example
 *   const tariff = validateTariff({ unit: 'MB', msatPerUnit: 1000n });
 *   costMsat(tariff, 10n);             // 10_000n
 *   unitsPaidFor(tariff, 10_999n);     // 10n
 */
import { MAX_MONEY_MSAT } from '../amounts.js';
import { MAX_UNIT_BYTES } from '../wire/oneway-open.js';
import { MeteringError } from './units.js';

export interface Tariff {
  /** What is metered, e.g. "MB", "kWh", "reading": 1 to 16 UTF-8 bytes, as on the wire. */
  unit: string;
  /** Price of one unit; positive. */
  msatPerUnit: bigint;
}

const UTF8 = new TextEncoder();

/**
 * Check a tariff, typically one received from a peer; returns it unchanged. A field of the wrong JS type
 * is programmer misuse (TypeError); a value out of range is MeteringError('BAD_TARIFF').
 */
export function validateTariff(tariff: Tariff, field = 'tariff'): Tariff {
  if (typeof tariff !== 'object' || tariff === null) throw new TypeError(`"${field}" expected a Tariff object`);
  if (typeof tariff.unit !== 'string') throw new TypeError(`"${field}.unit" expected string`);
  if (typeof tariff.msatPerUnit !== 'bigint') throw new TypeError(`"${field}.msatPerUnit" expected bigint`);
  const unitBytes = UTF8.encode(tariff.unit).length;
  if (unitBytes === 0 || unitBytes > MAX_UNIT_BYTES) {
    throw new MeteringError('BAD_TARIFF', `${field}.unit must be 1 to ${MAX_UNIT_BYTES} UTF-8 bytes, got ${unitBytes}`);
  }
  if (tariff.msatPerUnit <= 0n || tariff.msatPerUnit > MAX_MONEY_MSAT) {
    throw new MeteringError('BAD_TARIFF', `${field}.msatPerUnit must be positive and at most 21e14 sat (${tariff.msatPerUnit})`);
  }
  return tariff;
}

function checkUnits(units: bigint, field: string): void {
  if (typeof units !== 'bigint') throw new TypeError(`"${field}" expected bigint, got ${typeof units}`);
  if (units < 0n) throw new RangeError(`"${field}" must not be negative (${units})`);
}

/** The price of `units` units. */
export function costMsat(tariff: Tariff, units: bigint): bigint {
  validateTariff(tariff);
  checkUnits(units, 'units');
  return units * tariff.msatPerUnit;
}

/** How many whole units `amountMsat` pays for (floored: a partly paid unit is not paid). */
export function unitsPaidFor(tariff: Tariff, amountMsat: bigint): bigint {
  validateTariff(tariff);
  checkUnits(amountMsat, 'amountMsat');
  return amountMsat / tariff.msatPerUnit;
}

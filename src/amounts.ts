/**
 * Amounts. Off-chain balances are millisatoshi (`…Msat`), on-chain values satoshi (`…Sat`), both bigint.
 * msat → sat conversion floors; the sub-satoshi remainder is fee (BOLT 3: "amounts floored to sat").
 */
import { AmountError } from './errors.js';

/** 21 million BTC in satoshi: no valid amount exceeds it. */
export const MAX_MONEY_SAT = 2_100_000_000_000_000n;
export const MSAT_PER_SAT = 1000n;
export const MAX_MONEY_MSAT = MAX_MONEY_SAT * MSAT_PER_SAT;

/** What callers may hand in: a bigint, a safe integer number, or a decimal integer string. */
export type AmountInput = bigint | number | string;

function toBigInt(value: unknown, field: string): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || !Number.isInteger(value)) {
      throw new AmountError('AMOUNT_NOT_INTEGER', field, `expected an integer, got ${value}`);
    }
    if (!Number.isSafeInteger(value)) {
      throw new AmountError('AMOUNT_NOT_INTEGER', field, 'number is beyond 2^53; pass a bigint');
    }
    return BigInt(value);
  }
  if (typeof value === 'string') {
    if (!/^-?\d+$/.test(value)) throw new AmountError('AMOUNT_NOT_INTEGER', field, 'expected a decimal integer string');
    return BigInt(value);
  }
  throw new AmountError('AMOUNT_NOT_INTEGER', field, `expected bigint, got ${typeof value}`);
}

function checked(value: unknown, field: string, max: bigint, unit: string): bigint {
  const v = toBigInt(value, field);
  if (v < 0n) throw new AmountError('AMOUNT_NEGATIVE', field, `must not be negative (${v} ${unit})`);
  if (v > max) throw new AmountError('AMOUNT_TOO_LARGE', field, `exceeds 21e14 sat (${v} ${unit})`);
  return v;
}

/** Validate an on-chain value in satoshi; returns it as bigint. */
export function sat(value: AmountInput, field = 'valueSat'): bigint {
  return checked(value, field, MAX_MONEY_SAT, 'sat');
}

/** Validate an off-chain amount in millisatoshi; returns it as bigint. */
export function msat(value: AmountInput, field = 'amountMsat'): bigint {
  return checked(value, field, MAX_MONEY_MSAT, 'msat');
}

/** Floor msat to sat; the remainder (0..999 msat) cannot go on chain and is fee. */
export function msatToSat(amountMsat: bigint, field = 'amountMsat'): { valueSat: bigint; remainderMsat: bigint } {
  const v = msat(amountMsat, field);
  return { valueSat: v / MSAT_PER_SAT, remainderMsat: v % MSAT_PER_SAT };
}

/** Floor msat to whole sat. */
export function msatToSatFloor(amountMsat: bigint, field = 'amountMsat'): bigint {
  return msat(amountMsat, field) / MSAT_PER_SAT;
}

export function satToMsat(valueSat: bigint, field = 'valueSat'): bigint {
  return sat(valueSat, field) * MSAT_PER_SAT;
}

/** Fee for `weight` at `feeratePerKw` sat per 1000 weight units, floored (BOLT 3 fee formulas). */
export function feeForWeight(feeratePerKw: bigint, weight: bigint | number): bigint {
  const w = BigInt(weight);
  if (feeratePerKw < 0n) throw new RangeError('"feeratePerKw" must not be negative');
  if (w < 0n) throw new RangeError('"weight" must not be negative');
  return (feeratePerKw * w) / 1000n;
}

/** Amounts: bigint only, msat off chain, sat on chain, explicit flooring, typed errors naming the field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_MONEY_SAT, feeForWeight, msat, msatToSat, msatToSatFloor, sat, satToMsat } from '../src/amounts.js';
import { AmountError } from '../src/errors.js';

function rejects(fn: () => unknown, code: string, field: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AmountError, 'AmountError');
    assert.ok(e instanceof RangeError, 'is a RangeError');
    assert.equal(e.code, code);
    assert.equal(e.field, field);
    assert.match(e.message, new RegExp(`^${field}:`));
    return true;
  });
}

test('sat accepts bigint, safe integers and decimal strings up to 21e14 sat', () => {
  assert.equal(sat(0n), 0n);
  assert.equal(sat(546), 546n);
  assert.equal(sat('2100000000000000'), MAX_MONEY_SAT);
  assert.equal(MAX_MONEY_SAT, 2_100_000_000_000_000n);
});

test('negative, non-integer and too-large amounts are rejected naming the field', () => {
  rejects(() => sat(-1n, 'fundingValueSat'), 'AMOUNT_NEGATIVE', 'fundingValueSat');
  rejects(() => sat(1.5, 'feeSat'), 'AMOUNT_NOT_INTEGER', 'feeSat');
  rejects(() => sat(Number.NaN, 'feeSat'), 'AMOUNT_NOT_INTEGER', 'feeSat');
  rejects(() => sat('12.5', 'valueSat'), 'AMOUNT_NOT_INTEGER', 'valueSat');
  rejects(() => sat(2 ** 60, 'valueSat'), 'AMOUNT_NOT_INTEGER', 'valueSat');
  rejects(() => sat(MAX_MONEY_SAT + 1n, 'capacitySat'), 'AMOUNT_TOO_LARGE', 'capacitySat');
  rejects(() => msat(MAX_MONEY_SAT * 1000n + 1n, 'amountMsat'), 'AMOUNT_TOO_LARGE', 'amountMsat');
  rejects(() => msat(-5n, 'toLocalMsat'), 'AMOUNT_NEGATIVE', 'toLocalMsat');
  rejects(() => sat(undefined as unknown as bigint, 'valueSat'), 'AMOUNT_NOT_INTEGER', 'valueSat');
});

test('msat to sat floors; the remainder is fee (BOLT 3)', () => {
  assert.deepEqual(msatToSat(1_500_999n), { valueSat: 1500n, remainderMsat: 999n });
  assert.deepEqual(msatToSat(999n), { valueSat: 0n, remainderMsat: 999n });
  assert.deepEqual(msatToSat(1000n), { valueSat: 1n, remainderMsat: 0n });
  assert.equal(msatToSatFloor(6_988_000_999n), 6_988_000n);
  assert.equal(satToMsat(3n), 3000n);
  rejects(() => msatToSat(-1n), 'AMOUNT_NEGATIVE', 'amountMsat');
});

test('fee from weight floors as BOLT 3 does', () => {
  // Spec example: feerate 5000, weight 1068 → 5340; HTLC-timeout 663 → 3315; HTLC-success 703 → 3515.
  assert.equal(feeForWeight(5000n, 1068), 5340n);
  assert.equal(feeForWeight(5000n, 663), 3315n);
  assert.equal(feeForWeight(5000n, 703), 3515n);
  assert.equal(feeForWeight(647n, 724 + 172 * 5), 1024n);
  assert.throws(() => feeForWeight(-1n, 1), RangeError);
});

/** Shared assertion for the BOLT 8 tests: `fn` must throw a NoiseError with `code`. */
import assert from 'node:assert/strict';
import { NoiseError, type NoiseErrorCode } from '../../src/session/noise.js';

export function expectNoiseError(fn: () => unknown, code: NoiseErrorCode): NoiseError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof NoiseError, `expected NoiseError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

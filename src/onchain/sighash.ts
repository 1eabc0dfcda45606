/** BIP 143 signature hash for segwit v0 inputs, over a serialised transaction. */
import { Transaction } from 'bitcoinjs-lib';
import { SIGHASH_ALL } from './script.js';

export function segwitV0Sighash(
  tx: Transaction | Uint8Array,
  inputIndex: number,
  scriptCode: Uint8Array,
  valueSat: bigint,
  sighashType = SIGHASH_ALL,
): Uint8Array {
  const t = tx instanceof Transaction ? tx : Transaction.fromBuffer(tx);
  if (!Number.isInteger(inputIndex) || inputIndex < 0 || inputIndex >= t.ins.length) {
    throw new RangeError('"inputIndex" out of range');
  }
  return t.hashForWitnessV0(inputIndex, scriptCode, valueSat, sighashType);
}

/**
 * Transaction helpers shared by the contracts: outpoints, BIP 69 / BOLT 3 output ordering, weight
 * estimation with worst-case signatures, and signing one input through the Signer port.
 */
import { Transaction } from 'bitcoinjs-lib';
import { bytesToHex, compareBytes, hexToBytes, reverseBytes } from '../bytes.js';
import type { KeyLocator, KeyTweak, SignContext, Signer } from '../signer/port.js';
import { encodeScriptSignature, SIGHASH_ALL } from './script.js';
import { TxBuildError } from '../errors.js';
import type { OutPoint } from '../chain/port.js';

/** A DER signature is at most 72 bytes plus the sighash byte: the size fee estimates assume (BOLT 3 §Fees). */
export const MAX_SCRIPT_SIG_LEN = 73;
/** A placeholder of worst-case length used to measure weight before signing. */
export const DUMMY_SIGNATURE = new Uint8Array(MAX_SCRIPT_SIG_LEN);

export function txidToHash(txid: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(txid)) throw new TypeError('"txid" expected 64 lowercase hex characters');
  return reverseBytes(hexToBytes(txid));
}

export function hashToTxid(hash: Uint8Array): string {
  return bytesToHex(reverseBytes(hash));
}

export function assertOutPoint(outpoint: OutPoint, field: string): void {
  if (!outpoint || typeof outpoint.txid !== 'string' || !/^[0-9a-f]{64}$/.test(outpoint.txid)) {
    throw new TxBuildError('BAD_PARAMETER', `${field}.txid`, 'expected 64 lowercase hex characters');
  }
  if (!Number.isInteger(outpoint.vout) || outpoint.vout < 0 || outpoint.vout > 0xffffffff) {
    throw new TxBuildError('BAD_PARAMETER', `${field}.vout`, 'expected a uint32');
  }
}

export interface SortableOutput {
  valueSat: bigint;
  script: Uint8Array;
  /** Only HTLC outputs carry it: the BOLT 3 tie-break. */
  cltvExpiry?: number;
}

/**
 * BOLT 3 §Transaction Output Ordering (BIP 69 plus a CLTV tie-break): by value, then scriptPubKey
 * (memcmp, shorter first), then cltv_expiry for HTLC outputs.
 */
export function compareOutputs(a: SortableOutput, b: SortableOutput): number {
  if (a.valueSat !== b.valueSat) return a.valueSat < b.valueSat ? -1 : 1;
  const byScript = compareBytes(a.script, b.script);
  if (byScript !== 0) return byScript;
  return (a.cltvExpiry ?? 0) - (b.cltvExpiry ?? 0);
}

/** BIP 69 input order: by txid (display hex, i.e. the reversed hash bytes compared as hex), then vout. */
export function compareOutpoints(a: OutPoint, b: OutPoint): number {
  if (a.txid !== b.txid) return a.txid < b.txid ? -1 : 1;
  return a.vout - b.vout;
}

/** Weight of `tx` once input i carries `witnesses[i]` (placeholders of worst-case size). */
export function weightWithWitnesses(tx: Transaction, witnesses: Uint8Array[][]): number {
  const copy = tx.clone();
  witnesses.forEach((w, i) => copy.setWitness(i, w));
  return copy.weight();
}

/** Fee at `feerateSatPerVb` for a transaction of `weight`: vsize rounded up, as Core computes vsize. */
export function feeForWeightAtSatPerVb(weight: number, feerateSatPerVb: bigint): bigint {
  return BigInt(Math.ceil(weight / 4)) * feerateSatPerVb;
}

export interface InputSigningRequest {
  key: KeyLocator;
  tweak?: KeyTweak;
  /** What the signature is for, for a validating signer (src/signer/port.ts). */
  context?: SignContext;
  inputIndex: number;
  scriptCode: Uint8Array;
  valueSat: bigint;
  sighashType?: number;
}

/** Sign one input through the Signer port; returns the in-script signature (DER + sighash byte). */
export async function signInput(signer: Signer, tx: Transaction, request: InputSigningRequest): Promise<Uint8Array> {
  const sighashType = request.sighashType ?? SIGHASH_ALL;
  const compact = await signer.signInput({
    key: request.key,
    ...(request.tweak ? { tweak: request.tweak } : {}),
    ...(request.context ? { context: request.context } : {}),
    tx: tx.toBuffer(),
    inputIndex: request.inputIndex,
    scriptCode: request.scriptCode,
    valueSat: request.valueSat,
    sighashType,
  });
  return encodeScriptSignature(compact, sighashType);
}

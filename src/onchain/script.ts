/**
 * Script building blocks shared by every contract: pushes, P2WSH / P2WPKH output scripts,
 * and in-script signature encoding (DER + sighash byte, BIP 66 / BIP 62 low-S).
 */
import { script as bscript, opcodes } from 'bitcoinjs-lib';
import { sha256, hash160 } from '../crypto/hash.js';
import { isValidPublicKey } from '../crypto/secp256k1.js';
import { TxBuildError } from '../errors.js';

export { opcodes };

export const SIGHASH_ALL = 0x01;

export type ScriptChunk = number | Uint8Array;

/** Serialise chunks; data pushes are made minimal (small ints become OP_1..OP_16), as MINIMALDATA requires. */
export function compileScript(chunks: ScriptChunk[]): Uint8Array {
  return bscript.compile(chunks);
}

/** Minimal CScriptNum encoding of a non-negative integer, e.g. 144 → 90 00. */
export function scriptNumber(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('"n" expected a non-negative integer');
  return bscript.number.encode(n);
}

/** `OP_0 <32-byte SHA256(witnessScript)>`. */
export function p2wshOutput(witnessScript: Uint8Array): Uint8Array {
  return compileScript([opcodes.OP_0, sha256(witnessScript)]);
}

/** `OP_0 <20-byte HASH160(pubkey)>`. */
export function p2wpkhOutput(pubkey: Uint8Array): Uint8Array {
  assertPubkey(pubkey, 'pubkey');
  return compileScript([opcodes.OP_0, hash160(pubkey)]);
}

/** The BIP 143 scriptCode for a P2WPKH input: the P2PKH script of the key hash. */
export function p2wpkhScriptCode(pubkey: Uint8Array): Uint8Array {
  return compileScript([
    opcodes.OP_DUP,
    opcodes.OP_HASH160,
    hash160(pubkey),
    opcodes.OP_EQUALVERIFY,
    opcodes.OP_CHECKSIG,
  ]);
}

/** BIP 141 witness program: a version opcode (OP_0, OP_1..OP_16) then one 2–40 byte push. Returns the version or -1. */
export function witnessVersion(outputScript: Uint8Array): number {
  if (outputScript.length < 4 || outputScript.length > 42 || outputScript[1] !== outputScript.length - 2) return -1;
  const op = outputScript[0]!;
  if (op === opcodes.OP_0) return 0;
  return op >= opcodes.OP_1 && op <= opcodes.OP_16 ? op - opcodes.OP_1 + 1 : -1;
}

/**
 * Bitcoin Core's relay dust threshold at the default 3 sat/vB dust relay fee:
 * (output size + size of the input that would spend it) * 3. P2WPKH 294, P2WSH 330 (BOLT 3 §7).
 */
export function dustThresholdSat(outputScript: Uint8Array): bigint {
  if (outputScript.length > 0 && outputScript[0] === opcodes.OP_RETURN) return 0n;
  const outputSize = 8 + varIntSize(outputScript.length) + outputScript.length;
  const isWitness = witnessVersion(outputScript) >= 0;
  // A witness input is 32+4+1+4 bytes plus its witness discounted by 4 (107/4 rounded down = 26).
  const spendSize = isWitness ? 32 + 4 + 1 + 26 + 4 : 32 + 4 + 1 + 107 + 4;
  return BigInt((outputSize + spendSize) * 3);
}

export function varIntSize(n: number): number {
  return n < 0xfd ? 1 : n <= 0xffff ? 3 : n <= 0xffffffff ? 5 : 9;
}

export function assertPubkey(pubkey: Uint8Array, field: string): void {
  if (!isValidPublicKey(pubkey)) {
    throw new TxBuildError('BAD_PUBKEY', field, 'expected a valid 33-byte compressed secp256k1 public key');
  }
}

/** 64-byte compact signature → DER with the sighash byte appended, as scripts consume it. */
export function encodeScriptSignature(compact: Uint8Array, sighashType = SIGHASH_ALL): Uint8Array {
  if (!(compact instanceof Uint8Array) || compact.length !== 64) {
    throw new TxBuildError('BAD_SIGNATURE', 'signature', 'expected a 64-byte compact signature');
  }
  return bscript.signature.encode(compact, sighashType);
}

/** DER + sighash byte → 64-byte compact signature and the sighash type. Throws on malformed DER. */
export function decodeScriptSignature(der: Uint8Array): { signature: Uint8Array; sighashType: number } {
  try {
    const { signature, hashType } = bscript.signature.decode(der);
    return { signature, sighashType: hashType };
  } catch (e) {
    throw new TxBuildError('BAD_SIGNATURE', 'signature', `not a strict DER signature: ${(e as Error).message}`);
  }
}

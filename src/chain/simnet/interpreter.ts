/**
 * Independent script validation: bitcore-lib's script Interpreter, a Bitcoin script engine we did not
 * write, run with Bitcoin Core's standard flags over every input. bitcore-lib is loaded lazily on first
 * use so it never sits on a device's runtime path (it is a devDependency / optional peer dependency).
 */
import { createRequire } from 'node:module';
import { Transaction } from 'bitcoinjs-lib';
import type { TxOut } from '../port.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- bitcore-lib ships no types */
let bitcore: any;
function loadBitcore(): any {
  if (!bitcore) {
    const require = createRequire(import.meta.url);
    bitcore = require('bitcore-lib');
  }
  return bitcore;
}

/** The standard flags the issue names (Core's STANDARD_SCRIPT_VERIFY_FLAGS subset relevant to segwit v0). */
export const STANDARD_FLAG_NAMES = [
  'SCRIPT_VERIFY_P2SH',
  'SCRIPT_VERIFY_WITNESS',
  'SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY',
  'SCRIPT_VERIFY_CHECKSEQUENCEVERIFY',
  'SCRIPT_VERIFY_STRICTENC',
  'SCRIPT_VERIFY_DERSIG',
  'SCRIPT_VERIFY_LOW_S',
  'SCRIPT_VERIFY_NULLDUMMY',
  'SCRIPT_VERIFY_MINIMALIF',
  'SCRIPT_VERIFY_NULLFAIL',
  'SCRIPT_VERIFY_WITNESS_PUBKEYTYPE',
] as const;

export function standardFlags(): number {
  const I = loadBitcore().Script.Interpreter;
  let flags = 0;
  for (const name of STANDARD_FLAG_NAMES) {
    const bit = I[name];
    if (typeof bit !== 'number') throw new Error(`bitcore-lib lacks ${name}`);
    flags |= bit;
  }
  return flags;
}

/** Bitcoin Core's ScriptErrorString() texts, keyed by bitcore-lib's error names. */
const CORE_SCRIPT_ERRORS: Record<string, string> = {
  SCRIPT_ERR_EVAL_FALSE: 'Script evaluated without error but finished with a false/empty top stack element',
  SCRIPT_ERR_EVAL_FALSE_IN_STACK: 'Script evaluated without error but finished with a false/empty top stack element',
  SCRIPT_ERR_EVAL_FALSE_NO_RESULT: 'Script evaluated without error but finished with a false/empty top stack element',
  SCRIPT_ERR_VERIFY: 'Script failed an OP_VERIFY operation',
  SCRIPT_ERR_EQUALVERIFY: 'Script failed an OP_EQUALVERIFY operation',
  SCRIPT_ERR_CHECKMULTISIGVERIFY: 'Script failed an OP_CHECKMULTISIGVERIFY operation',
  SCRIPT_ERR_CHECKSIGVERIFY: 'Script failed an OP_CHECKSIGVERIFY operation',
  SCRIPT_ERR_NUMEQUALVERIFY: 'Script failed an OP_NUMEQUALVERIFY operation',
  SCRIPT_ERR_SCRIPT_SIZE: 'Script is too big',
  SCRIPT_ERR_PUSH_SIZE: 'Push value size limit exceeded',
  SCRIPT_ERR_OP_COUNT: 'Operation limit exceeded',
  SCRIPT_ERR_STACK_SIZE: 'Stack size limit exceeded',
  SCRIPT_ERR_SIG_COUNT: 'Signature count negative or greater than pubkey count',
  SCRIPT_ERR_PUBKEY_COUNT: 'Pubkey count negative or limit exceeded',
  SCRIPT_ERR_BAD_OPCODE: 'Opcode missing or not understood',
  SCRIPT_ERR_UNDEFINED_OPCODE: 'Opcode missing or not understood',
  SCRIPT_ERR_DISABLED_OPCODE: 'Attempted to use a disabled opcode',
  SCRIPT_ERR_INVALID_STACK_OPERATION: 'Operation not valid with the current stack size',
  SCRIPT_ERR_INVALID_ALTSTACK_OPERATION: 'Operation not valid with the current altstack size',
  SCRIPT_ERR_OP_RETURN: 'OP_RETURN was encountered',
  SCRIPT_ERR_UNBALANCED_CONDITIONAL: 'Invalid OP_IF construction',
  SCRIPT_ERR_NEGATIVE_LOCKTIME: 'Negative locktime',
  SCRIPT_ERR_UNSATISFIED_LOCKTIME: 'Locktime requirement not satisfied',
  SCRIPT_ERR_SIG_HASHTYPE: 'Signature hash type missing or not understood',
  SCRIPT_ERR_SIG_DER_INVALID_FORMAT: 'Non-canonical DER signature',
  SCRIPT_ERR_SIG_DER_HIGH_S: 'Non-canonical signature: S value is unnecessarily high',
  SCRIPT_ERR_MINIMALDATA: 'Data push larger than necessary',
  SCRIPT_ERR_SIG_PUSHONLY: 'Only push operators allowed in signatures',
  SCRIPT_ERR_SIG_NULLDUMMY: 'Dummy CHECKMULTISIG argument must be zero',
  SCRIPT_ERR_MINIMALIF: 'OP_IF/NOTIF argument must be minimal',
  SCRIPT_ERR_SIG_NULLFAIL: 'Signature must be zero for failed CHECK(MULTI)SIG operation',
  SCRIPT_ERR_NULLFAIL: 'Signature must be zero for failed CHECK(MULTI)SIG operation',
  SCRIPT_ERR_DISCOURAGE_UPGRADABLE_NOPS: 'NOPx reserved for soft-fork upgrades',
  SCRIPT_ERR_DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM: 'Witness version reserved for soft-fork upgrades',
  SCRIPT_ERR_PUBKEYTYPE: 'Public key is neither compressed or uncompressed',
  SCRIPT_ERR_CLEANSTACK: 'Stack size must be exactly one after execution',
  SCRIPT_ERR_WITNESS_PROGRAM_WRONG_LENGTH: 'Witness program has incorrect length',
  SCRIPT_ERR_WITNESS_PROGRAM_WITNESS_EMPTY: 'Witness program was passed an empty witness',
  SCRIPT_ERR_WITNESS_PROGRAM_MISMATCH: 'Witness program hash mismatch',
  SCRIPT_ERR_WITNESS_MALLEATED: 'Witness requires empty scriptSig',
  SCRIPT_ERR_WITNESS_MALLEATED_P2SH: 'Witness requires only-redeemscript scriptSig',
  SCRIPT_ERR_WITNESS_UNEXPECTED: 'Witness provided for non-witness script',
  SCRIPT_ERR_WITNESS_PUBKEYTYPE: 'Using non-compressed keys in segwit',
  SCRIPT_ERR_OP_CODESEPARATOR: 'Using OP_CODESEPARATOR in non-witness script',
  SCRIPT_ERR_SIG_FINDANDDELETE: 'Signature is found in scriptCode',
};

export type InputVerdict =
  | { valid: true }
  /** `error` is bitcore's name (SCRIPT_ERR_…); `message` Bitcoin Core's text for the same failure. */
  | { valid: false; error: string; message: string };

export interface TxVerdict {
  valid: boolean;
  /** First failing input, if any. */
  inputIndex?: number;
  error?: string;
  message?: string;
  inputs: InputVerdict[];
}

/**
 * Verify one input of `tx` (serialised with witnesses) against the output it spends.
 * Only checks scripts; lock-time finality and BIP 68 are the chain's job (see simnet).
 */
export function verifyInput(tx: Uint8Array, inputIndex: number, prevout: TxOut, flags = standardFlags()): InputVerdict {
  const b = loadBitcore();
  const parsed = Transaction.fromBuffer(tx);
  const input = parsed.ins[inputIndex];
  if (!input) throw new RangeError('"inputIndex" out of range');
  const btx = new b.Transaction(Buffer.from(tx));
  const interpreter = new b.Script.Interpreter();
  const scriptSig = new b.Script(Buffer.from(input.script));
  const scriptPubkey = new b.Script(Buffer.from(prevout.script));
  const witness = input.witness.map((w) => Buffer.from(w));
  // bitcore takes satoshis as a JS number: exact for every amount up to 21e14 sat (< 2^53).
  const ok = interpreter.verify(scriptSig, scriptPubkey, btx, inputIndex, flags, witness, Number(prevout.valueSat));
  if (ok) return { valid: true };
  const error: string = interpreter.errstr || 'SCRIPT_ERR_UNKNOWN_ERROR';
  return { valid: false, error, message: CORE_SCRIPT_ERRORS[error] ?? 'unknown error' };
}

/** Verify every input; `prevouts[i]` is the output spent by input i. */
export function verifyTransaction(tx: Uint8Array, prevouts: TxOut[], flags = standardFlags()): TxVerdict {
  const count = Transaction.fromBuffer(tx).ins.length;
  if (prevouts.length !== count) throw new RangeError(`"prevouts" expected ${count} entries, got ${prevouts.length}`);
  const inputs = prevouts.map((p, i) => verifyInput(tx, i, p, flags));
  const firstBad = inputs.findIndex((v) => !v.valid);
  if (firstBad === -1) return { valid: true, inputs };
  const bad = inputs[firstBad] as { valid: false; error: string; message: string };
  return { valid: false, inputIndex: firstBad, error: bad.error, message: bad.message, inputs };
}

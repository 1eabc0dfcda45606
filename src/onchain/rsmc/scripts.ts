/**
 * BOLT 3 witness scripts of a commitment transaction (no anchors): to_local, offered HTLC, received HTLC.
 * Byte layouts are in ../shared/spec/bolt3-facts.md §3 and checked against the spec's vectors.
 */
import { assertPubkey, compileScript, opcodes, scriptNumber } from '../script.js';
import { hash160, ripemd160 } from '../../crypto/hash.js';
import { TxBuildError } from '../../errors.js';

/** BIP 68/112: a relative lock in blocks fits in 16 bits. */
export const MAX_TO_SELF_DELAY = 0xffff;

export function assertToSelfDelay(toSelfDelay: number, field = 'toSelfDelay'): void {
  if (!Number.isInteger(toSelfDelay) || toSelfDelay < 1 || toSelfDelay > MAX_TO_SELF_DELAY) {
    throw new TxBuildError('BAD_PARAMETER', field, 'expected a block count in 1..65535');
  }
}

function assertHash32(h: Uint8Array, field: string): void {
  if (!(h instanceof Uint8Array) || h.length !== 32) throw new TxBuildError('BAD_PARAMETER', field, 'expected 32 bytes');
}

/**
 * to_local (also the output of HTLC-timeout/success transactions):
 * OP_IF <revocationpubkey> OP_ELSE `to_self_delay` OP_CSV OP_DROP <local_delayedpubkey> OP_ENDIF OP_CHECKSIG
 */
export function toLocalScript(revocationPubkey: Uint8Array, toSelfDelay: number, localDelayedPubkey: Uint8Array): Uint8Array {
  assertPubkey(revocationPubkey, 'revocationPubkey');
  assertPubkey(localDelayedPubkey, 'localDelayedPubkey');
  assertToSelfDelay(toSelfDelay);
  return compileScript([
    opcodes.OP_IF,
    revocationPubkey,
    opcodes.OP_ELSE,
    scriptNumber(toSelfDelay),
    opcodes.OP_CHECKSEQUENCEVERIFY,
    opcodes.OP_DROP,
    localDelayedPubkey,
    opcodes.OP_ENDIF,
    opcodes.OP_CHECKSIG,
  ]);
}

export interface HtlcScriptKeys {
  revocationPubkey: Uint8Array;
  localHtlcPubkey: Uint8Array;
  remoteHtlcPubkey: Uint8Array;
}

function checkHtlcKeys(keys: HtlcScriptKeys): void {
  assertPubkey(keys.revocationPubkey, 'revocationPubkey');
  assertPubkey(keys.localHtlcPubkey, 'localHtlcPubkey');
  assertPubkey(keys.remoteHtlcPubkey, 'remoteHtlcPubkey');
}

/**
 * The part both HTLC scripts share: the revocation key takes the output outright; otherwise the remote's
 * key is pushed and the witness item's size (32 = a preimage) picks the branch that follows.
 */
function htlcScriptHead(keys: HtlcScriptKeys): Array<number | Uint8Array> {
  return [
    opcodes.OP_DUP,
    opcodes.OP_HASH160,
    hash160(keys.revocationPubkey),
    opcodes.OP_EQUAL,
    opcodes.OP_IF,
    opcodes.OP_CHECKSIG,
    opcodes.OP_ELSE,
    keys.remoteHtlcPubkey,
    opcodes.OP_SWAP,
    opcodes.OP_SIZE,
    scriptNumber(32),
    opcodes.OP_EQUAL,
  ];
}

/**
 * Offered HTLC (local offered; remote claims with the preimage, local reclaims through HTLC-timeout,
 * anyone with the revocation key takes it on a revoked commitment).
 */
export function offeredHtlcScript(keys: HtlcScriptKeys, paymentHash: Uint8Array): Uint8Array {
  checkHtlcKeys(keys);
  assertHash32(paymentHash, 'paymentHash');
  return compileScript([
    ...htlcScriptHead(keys),
    opcodes.OP_NOTIF,
    opcodes.OP_DROP,
    opcodes.OP_2,
    opcodes.OP_SWAP,
    keys.localHtlcPubkey,
    opcodes.OP_2,
    opcodes.OP_CHECKMULTISIG,
    opcodes.OP_ELSE,
    opcodes.OP_HASH160,
    ripemd160(paymentHash),
    opcodes.OP_EQUALVERIFY,
    opcodes.OP_CHECKSIG,
    opcodes.OP_ENDIF,
    opcodes.OP_ENDIF,
  ]);
}

/**
 * Received HTLC (remote offered; local claims through HTLC-success with the preimage, remote reclaims
 * after cltv_expiry, anyone with the revocation key takes it on a revoked commitment).
 */
export function receivedHtlcScript(keys: HtlcScriptKeys, paymentHash: Uint8Array, cltvExpiry: number): Uint8Array {
  checkHtlcKeys(keys);
  assertHash32(paymentHash, 'paymentHash');
  assertCltvExpiry(cltvExpiry);
  return compileScript([
    ...htlcScriptHead(keys),
    opcodes.OP_IF,
    opcodes.OP_HASH160,
    ripemd160(paymentHash),
    opcodes.OP_EQUALVERIFY,
    opcodes.OP_2,
    opcodes.OP_SWAP,
    keys.localHtlcPubkey,
    opcodes.OP_2,
    opcodes.OP_CHECKMULTISIG,
    opcodes.OP_ELSE,
    opcodes.OP_DROP,
    scriptNumber(cltvExpiry),
    opcodes.OP_CHECKLOCKTIMEVERIFY,
    opcodes.OP_DROP,
    opcodes.OP_CHECKSIG,
    opcodes.OP_ENDIF,
    opcodes.OP_ENDIF,
  ]);
}

/** cltv_expiry is a block height (BIP 65 compares like with like; Trickle uses heights only). */
export function assertCltvExpiry(cltvExpiry: number, field = 'cltvExpiry'): void {
  if (!Number.isInteger(cltvExpiry) || cltvExpiry < 0 || cltvExpiry >= 500_000_000) {
    throw new TxBuildError('BAD_PARAMETER', field, 'expected a block height in 0..499999999');
  }
}

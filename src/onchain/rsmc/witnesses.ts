/**
 * Witness stacks for every way a BOLT 3 output can be spent (§3, §4, §13). Each ends with the witness
 * script (P2WSH). `sig…` arguments are in-script signatures: DER + sighash byte.
 */
import { hexToBytes } from '../../bytes.js';
import { sha256 } from '../../crypto/hash.js';
import { TxBuildError } from '../../errors.js';

const EMPTY = new Uint8Array(0);
const TRUE = hexToBytes('01');

/** Owner sweeps to_local (or an HTLC tx output) after to_self_delay: `<local_delayedsig> <>`; input nSequence = to_self_delay. */
export function toLocalDelayedWitness(localDelayedSig: Uint8Array, toLocalWitnessScript: Uint8Array): Uint8Array[] {
  return [localDelayedSig, EMPTY, toLocalWitnessScript];
}

/** Penalty on a revoked to_local (or revoked HTLC tx output): `<revocation_sig> 1`, valid at once. */
export function toLocalRevocationWitness(revocationSig: Uint8Array, toLocalWitnessScript: Uint8Array): Uint8Array[] {
  return [revocationSig, TRUE, toLocalWitnessScript];
}

/** Penalty on a revoked offered or received HTLC output: `<revocation_sig> <revocationpubkey>`. */
export function htlcRevocationWitness(
  revocationSig: Uint8Array,
  revocationPubkey: Uint8Array,
  htlcWitnessScript: Uint8Array,
): Uint8Array[] {
  return [revocationSig, revocationPubkey, htlcWitnessScript];
}

/** HTLC-success input: `0 <remotehtlcsig> <localhtlcsig> <payment_preimage>`. */
export function htlcSuccessWitness(
  remoteHtlcSig: Uint8Array,
  localHtlcSig: Uint8Array,
  paymentPreimage: Uint8Array,
  htlcWitnessScript: Uint8Array,
): Uint8Array[] {
  assertPreimage(paymentPreimage);
  return [EMPTY, remoteHtlcSig, localHtlcSig, paymentPreimage, htlcWitnessScript];
}

/** HTLC-timeout input: `0 <remotehtlcsig> <localhtlcsig> <>`. */
export function htlcTimeoutWitness(
  remoteHtlcSig: Uint8Array,
  localHtlcSig: Uint8Array,
  htlcWitnessScript: Uint8Array,
): Uint8Array[] {
  return [EMPTY, remoteHtlcSig, localHtlcSig, EMPTY, htlcWitnessScript];
}

/** The remote claims an offered HTLC from the commitment with the preimage: `<remotehtlcsig> <payment_preimage>`. */
export function offeredHtlcPreimageWitness(
  remoteHtlcSig: Uint8Array,
  paymentPreimage: Uint8Array,
  htlcWitnessScript: Uint8Array,
): Uint8Array[] {
  assertPreimage(paymentPreimage);
  return [remoteHtlcSig, paymentPreimage, htlcWitnessScript];
}

/** The remote reclaims a received HTLC after cltv_expiry: `<remotehtlcsig> <>` (tx locktime >= cltv_expiry). */
export function receivedHtlcTimeoutWitness(remoteHtlcSig: Uint8Array, htlcWitnessScript: Uint8Array): Uint8Array[] {
  return [remoteHtlcSig, EMPTY, htlcWitnessScript];
}

function assertPreimage(preimage: Uint8Array): void {
  if (!(preimage instanceof Uint8Array) || preimage.length !== 32) {
    throw new TxBuildError('BAD_PARAMETER', 'paymentPreimage', 'expected 32 bytes');
  }
}

/** payment_hash = SHA256(payment_preimage). */
export function paymentHashOf(preimage: Uint8Array): Uint8Array {
  assertPreimage(preimage);
  return sha256(preimage);
}

/**
 * BOLT 3 key derivation (§ Key Derivation): per-commitment tweaked keys and the revocation key.
 * Points are 33-byte compressed; secrets 32-byte scalars.
 */
import { sha256 } from '../../crypto/hash.js';
import {
  addPoints,
  addScalars,
  isValidPublicKey,
  multiplyPoint,
  multiplyScalars,
  publicKeyOf,
  scalarFromHash,
} from '../../crypto/secp256k1.js';
import { concatBytes } from '../../bytes.js';

/** per_commitment_point = per_commitment_secret * G. */
export function perCommitmentPoint(perCommitmentSecret: Uint8Array): Uint8Array {
  return publicKeyOf(perCommitmentSecret);
}

/** SHA256(per_commitment_point || basepoint), the tweak shared by the public and private derivation. */
export function perCommitmentTweak(perCommitmentPoint: Uint8Array, basepoint: Uint8Array): Uint8Array {
  // A peer-supplied point is only hashed here, so check it is a point before it can yield a meaningless key.
  if (!isValidPublicKey(perCommitmentPoint)) throw new TypeError('"perCommitmentPoint" expected 33-byte compressed point');
  if (!isValidPublicKey(basepoint)) throw new TypeError('"basepoint" expected 33-byte compressed point');
  return sha256(concatBytes(perCommitmentPoint, basepoint));
}

/**
 * pubkey = basepoint + SHA256(per_commitment_point || basepoint) * G.
 * Used for localpubkey, local_htlcpubkey, remote_htlcpubkey, local_delayedpubkey.
 */
export function derivePublicKey(basepoint: Uint8Array, perCommitmentPoint: Uint8Array): Uint8Array {
  const tweak = scalarFromHash(perCommitmentTweak(perCommitmentPoint, basepoint));
  return addPoints(basepoint, publicKeyOf(tweak));
}

/** privkey = basepoint_secret + SHA256(per_commitment_point || basepoint) mod n. */
export function derivePrivateKey(basepointSecret: Uint8Array, perCommitmentPoint: Uint8Array): Uint8Array {
  const basepoint = publicKeyOf(basepointSecret);
  return addScalars(basepointSecret, scalarFromHash(perCommitmentTweak(perCommitmentPoint, basepoint)));
}

/**
 * revocationpubkey = revocation_basepoint * SHA256(revocation_basepoint || per_commitment_point)
 *                  + per_commitment_point * SHA256(per_commitment_point || revocation_basepoint).
 * Built from the peer's revocation basepoint and the commitment owner's per-commitment point.
 */
export function deriveRevocationPublicKey(revocationBasepoint: Uint8Array, perCommitmentPoint: Uint8Array): Uint8Array {
  const tBase = scalarFromHash(sha256(concatBytes(revocationBasepoint, perCommitmentPoint)));
  const tPoint = scalarFromHash(sha256(concatBytes(perCommitmentPoint, revocationBasepoint)));
  return addPoints(multiplyPoint(revocationBasepoint, tBase), multiplyPoint(perCommitmentPoint, tPoint));
}

/**
 * revocationprivkey = revocation_basepoint_secret * SHA256(revocation_basepoint || per_commitment_point)
 *                   + per_commitment_secret * SHA256(per_commitment_point || revocation_basepoint)  (mod n).
 * Computable only once the owner has revealed `perCommitmentSecret`.
 */
export function deriveRevocationPrivateKey(
  revocationBasepointSecret: Uint8Array,
  perCommitmentSecret: Uint8Array,
): Uint8Array {
  const revocationBasepoint = publicKeyOf(revocationBasepointSecret);
  const point = publicKeyOf(perCommitmentSecret);
  const tBase = scalarFromHash(sha256(concatBytes(revocationBasepoint, point)));
  const tPoint = scalarFromHash(sha256(concatBytes(point, revocationBasepoint)));
  return addScalars(
    multiplyScalars(revocationBasepointSecret, tBase),
    multiplyScalars(perCommitmentSecret, tPoint),
  );
}

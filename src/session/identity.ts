/**
 * A node's identity: the secp256k1 key whose public half is its node id. It does the two
 * things the session layer needs — BOLT 8's ECDH and signing announcements — without ever
 * handing out the secret, so a hardware key can stand in for the software one later.
 */
import { bytesToHex } from '../bytes.js';
import { isValidSecretKey, randomSecretKey, signDigest } from '../crypto/secp256k1.js';
import type { NodeId } from '../transport/port.js';
import { softwareStaticKey, type NoiseStaticKey } from './noise.js';

export interface NodeIdentity extends NoiseStaticKey {
  readonly nodeId: NodeId;
  /** 64-byte compact, low-S ECDSA signature over a 32-byte digest. */
  signDigest(digest: Uint8Array): Uint8Array;
}

/** An identity held in process memory (the secret stays inside the closure). */
export function softwareIdentity(secretKey: Uint8Array): NodeIdentity {
  if (!(secretKey instanceof Uint8Array) || !isValidSecretKey(secretKey)) {
    throw new RangeError('"secretKey" expected a valid 32-byte secp256k1 secret');
  }
  const secret = secretKey.slice();
  const noiseKey = softwareStaticKey(secret);
  const nodeId = bytesToHex(noiseKey.publicKey);
  return {
    publicKey: noiseKey.publicKey,
    nodeId,
    ecdh: (point) => noiseKey.ecdh(point),
    signDigest: (digest) => {
      if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new RangeError('"digest" expected 32 bytes');
      return signDigest(digest, secret);
    },
  };
}

/** A fresh random identity (from crypto.getRandomValues via noble). */
export function randomIdentity(): NodeIdentity {
  return softwareIdentity(randomSecretKey());
}

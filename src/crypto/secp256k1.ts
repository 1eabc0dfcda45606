/**
 * secp256k1 arithmetic and ECDSA for the core (RFC 6979 nonces, low-S). Arguments are checked here; the
 * curve work is done by the backend in use (src/crypto/backend.ts: libsecp256k1 in WebAssembly by default,
 * @noble/secp256k1 as the fallback, native libsecp256k1 when installed), which all give identical results.
 * Points are 33-byte compressed SEC1; scalars 32-byte big-endian, reduced mod the curve order.
 */
import * as secp from '@noble/secp256k1';
import { bigIntToBytes32, bytesToBigInt } from '../bytes.js';
import { ecdsaBackend } from './backend.js';

export { ecdsaBackend, ecdsaBackends, selectEcdsaBackend, useEcdsaBackend, EcdsaBackendError, type EcdsaBackend, type EcdsaBackendName } from './backend.js';

export const CURVE_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

function scalarOf(secret: Uint8Array, field: string): bigint {
  if (!(secret instanceof Uint8Array) || secret.length !== 32) {
    throw new TypeError(`"${field}" expected 32-byte Uint8Array`);
  }
  const k = bytesToBigInt(secret);
  if (k === 0n || k >= CURVE_ORDER) throw new RangeError(`"${field}" expected 0 < scalar < n`);
  return k;
}

/**
 * Points already found on the curve, by their bytes. A channel checks the same few keys on every update
 * (each costs a square root); only valid points are kept, and the set is emptied when it grows large.
 */
const knownPoints = new Set<string>();
const KNOWN_POINTS_MAX = 4096;

function isPoint(pubkey: Uint8Array): boolean {
  const key = String.fromCharCode(...pubkey);
  if (knownPoints.has(key)) return true;
  if (!ecdsaBackend().isPoint(pubkey)) return false;
  if (knownPoints.size >= KNOWN_POINTS_MAX) knownPoints.clear();
  knownPoints.add(key);
  return true;
}

function pointOf(pubkey: Uint8Array, field: string): Uint8Array {
  if (!(pubkey instanceof Uint8Array) || pubkey.length !== 33) {
    throw new TypeError(`"${field}" expected 33-byte compressed public key`);
  }
  if (!isPoint(pubkey)) throw new RangeError(`"${field}" is not a point on secp256k1`);
  return pubkey;
}

/** True when `pubkey` is a valid 33-byte compressed point. */
export function isValidPublicKey(pubkey: Uint8Array): boolean {
  if (!(pubkey instanceof Uint8Array) || pubkey.length !== 33) return false;
  return isPoint(pubkey);
}

/** True when `secret` is a valid private key (0 < k < n). */
export function isValidSecretKey(secret: Uint8Array): boolean {
  if (!(secret instanceof Uint8Array) || secret.length !== 32) return false;
  const k = bytesToBigInt(secret);
  return k > 0n && k < CURVE_ORDER;
}

export function publicKeyOf(secret: Uint8Array): Uint8Array {
  scalarOf(secret, 'secret');
  return ecdsaBackend().publicKey(secret);
}

/** P + Q. */
export function addPoints(a: Uint8Array, b: Uint8Array): Uint8Array {
  return ecdsaBackend().pointAdd(pointOf(a, 'a'), pointOf(b, 'b'));
}

/** k * P. */
export function multiplyPoint(point: Uint8Array, scalar: Uint8Array): Uint8Array {
  scalarOf(scalar, 'scalar');
  return ecdsaBackend().pointMultiply(pointOf(point, 'point'), scalar);
}

/** (a + b) mod n. */
export function addScalars(a: Uint8Array, b: Uint8Array): Uint8Array {
  const sum = (bytesToBigInt(a) + bytesToBigInt(b)) % CURVE_ORDER;
  if (sum === 0n) throw new RangeError('scalar sum is zero');
  return bigIntToBytes32(sum);
}

/** (a * b) mod n. */
export function multiplyScalars(a: Uint8Array, b: Uint8Array): Uint8Array {
  return bigIntToBytes32((scalarOf(a, 'a') * scalarOf(b, 'b')) % CURVE_ORDER);
}

/** Reduce a 32-byte value (a hash used as a tweak) modulo n; rejects the (astronomically unlikely) zero. */
export function scalarFromHash(hash: Uint8Array): Uint8Array {
  const k = bytesToBigInt(hash) % CURVE_ORDER;
  if (k === 0n) throw new RangeError('tweak is zero mod n');
  return bigIntToBytes32(k);
}

/** ECDSA over a 32-byte digest (no prehash): 64-byte compact r||s, low-S, RFC 6979 nonce. */
export function signDigest(digest: Uint8Array, secret: Uint8Array): Uint8Array {
  if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new TypeError('"digest" expected 32 bytes');
  scalarOf(secret, 'secret');
  return ecdsaBackend().sign(digest, secret);
}

/** Verify a 64-byte compact low-S signature over a digest. False on a bad signature; throws only on malformed arguments. */
export function verifyDigest(signature: Uint8Array, digest: Uint8Array, pubkey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new TypeError('"signature" expected 64 bytes');
  if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new TypeError('"digest" expected 32 bytes');
  return ecdsaBackend().verify(signature, digest, pointOf(pubkey, 'pubkey'));
}

/** 32 bytes from crypto.getRandomValues (through noble's helper). */
export function randomBytes32(): Uint8Array {
  return secp.etc.randomBytes(32);
}

/** A fresh random private key. */
export function randomSecretKey(): Uint8Array {
  return secp.utils.randomSecretKey();
}

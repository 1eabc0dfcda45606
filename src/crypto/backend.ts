/**
 * Which secp256k1 implementation does the curve work. Verification is the ceiling of every payment (the
 * payee checks one signature per payment), and @noble/secp256k1 verifies about 300 signatures/s on a 2-core
 * x86 machine, libsecp256k1 compiled to WebAssembly (tiny-secp256k1) about 3,000–4,000/s and libsecp256k1
 * native about 15,000/s (docs/performance.md has the figures and the decision).
 *
 * - `noble`: @noble/secp256k1, pure JavaScript, audited; the reference every other backend is checked against.
 * - `wasm`: tiny-secp256k1 (libsecp256k1 in WebAssembly, the bitcoinjs ecosystem's standard); portable to
 *   every platform Node runs on, so it is the default when it loads and passes its self-test.
 * - `native`: the `secp256k1` package's libsecp256k1 addon, installed by `useNativeSecp256k1()` from the
 *   Node-only subpath `trickle/secp256k1-native` (the core never loads a native addon, house style 11).
 *
 * Every backend other than noble must pass `selfTestEcdsaBackend` (known-answer vectors, plus the
 * signatures it must refuse: high-S, out-of-range r or s, another digest) before it is used, as bitcoinjs's
 * initEccLib does. All of them give byte-identical results: RFC 6979 nonces without extra entropy, low-S
 * signatures, and verification that refuses high-S (BIP 62/146 LOW_S, which relay policy enforces).
 *
 * @example
 * import { ecdsaBackend } from 'trickle';
 * console.log(ecdsaBackend().name); // 'wasm'
 */
import * as secp from '@noble/secp256k1';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { selfTestEcdsaBackend } from './self-test.js';

// The synchronous API needs sync hashes; noble leaves the choice to the caller.
secp.hashes.sha256 = nobleSha256;
secp.hashes.hmacSha256 = (key, message) => hmac(nobleSha256, key, message);

export type EcdsaBackendName = 'noble' | 'wasm' | 'native';

/**
 * The curve operations the core needs. Arguments have been checked for length and range by the caller
 * (src/crypto/secp256k1.ts); points are 33-byte compressed, scalars 32-byte big-endian in (0, n).
 */
export interface EcdsaBackend {
  readonly name: EcdsaBackendName;
  /** What it is, for logs and the bench (e.g. "libsecp256k1 (tiny-secp256k1, WebAssembly)"). */
  readonly description: string;
  /** ECDSA over a 32-byte digest: 64-byte compact r||s, low-S, RFC 6979 nonce. */
  sign(digest: Uint8Array, secret: Uint8Array): Uint8Array;
  /** False for any signature that does not verify, including high-S and out-of-range r or s. */
  verify(signature: Uint8Array, digest: Uint8Array, pubkey: Uint8Array): boolean;
  /** True when the bytes are a compressed point on the curve. */
  isPoint(pubkey: Uint8Array): boolean;
  /** k·G. */
  publicKey(secret: Uint8Array): Uint8Array;
  /** P + Q; throws RangeError when the sum is the point at infinity. */
  pointAdd(a: Uint8Array, b: Uint8Array): Uint8Array;
  /** k·P. */
  pointMultiply(point: Uint8Array, scalar: Uint8Array): Uint8Array;
}

/** A backend failed its self-test or could not be loaded; it is not used. */
export class EcdsaBackendError extends Error {
  override name = 'EcdsaBackendError';
  constructor(
    readonly code: 'BACKEND_SELF_TEST' | 'BACKEND_UNAVAILABLE',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const SIG_OPTS = { prehash: false, lowS: true, format: 'compact' } as const;

export const nobleBackend: EcdsaBackend = {
  name: 'noble',
  description: '@noble/secp256k1 (JavaScript)',
  sign: (digest, secret) => secp.sign(digest, secret, SIG_OPTS),
  verify(signature, digest, pubkey) {
    try {
      return secp.verify(signature, digest, pubkey, SIG_OPTS);
    } catch {
      return false;
    }
  },
  isPoint(pubkey) {
    try {
      secp.Point.fromBytes(pubkey);
      return true;
    } catch {
      return false;
    }
  },
  publicKey: (secret) => secp.getPublicKey(secret, true),
  pointAdd(a, b) {
    const sum = secp.Point.fromBytes(a).add(secp.Point.fromBytes(b));
    if (sum.is0()) throw new RangeError('point sum is at infinity');
    return sum.toBytes(true);
  },
  pointMultiply: (point, scalar) => secp.Point.fromBytes(point).multiply(bytesToScalar(scalar)).toBytes(true),
};

function bytesToScalar(bytes: Uint8Array): bigint {
  let k = 0n;
  for (const b of bytes) k = (k << 8n) | BigInt(b);
  return k;
}

/** The subset of tiny-secp256k1 2.x used here. */
interface TinySecp256k1 {
  sign(h: Uint8Array, d: Uint8Array): Uint8Array;
  verify(h: Uint8Array, Q: Uint8Array, signature: Uint8Array, strict?: boolean): boolean;
  isPoint(p: Uint8Array): boolean;
  pointFromScalar(d: Uint8Array, compressed?: boolean): Uint8Array | null;
  pointAdd(a: Uint8Array, b: Uint8Array, compressed?: boolean): Uint8Array | null;
  pointMultiply(p: Uint8Array, tweak: Uint8Array, compressed?: boolean): Uint8Array | null;
}

function nonNull(point: Uint8Array | null, what: string): Uint8Array {
  if (point === null) throw new RangeError(`${what} is at infinity`);
  return point;
}

/** tiny-secp256k1 as a backend. Its verify must run strict: non-strict would normalise a high-S signature and accept it. */
export function wasmBackendOf(tiny: TinySecp256k1): EcdsaBackend {
  return {
    name: 'wasm',
    description: 'libsecp256k1 (tiny-secp256k1, WebAssembly)',
    sign: (digest, secret) => tiny.sign(digest, secret),
    verify(signature, digest, pubkey) {
      try {
        return tiny.verify(digest, pubkey, signature, true);
      } catch {
        return false; // r or s out of range throws there; a bad signature, not a bad call
      }
    },
    isPoint: (pubkey) => pubkey.length === 33 && tiny.isPoint(pubkey),
    publicKey: (secret) => nonNull(tiny.pointFromScalar(secret, true), 'public key'),
    pointAdd: (a, b) => nonNull(tiny.pointAdd(a, b, true), 'point sum'),
    pointMultiply: (point, scalar) => nonNull(tiny.pointMultiply(point, scalar, true), 'product'),
  };
}

const loaded = new Map<EcdsaBackendName, EcdsaBackend>([['noble', nobleBackend]]);
let active: EcdsaBackend = nobleBackend;

/**
 * Self-test `backend`, then make it the one in use (and available to `selectEcdsaBackend` by name).
 * Throws EcdsaBackendError (BACKEND_SELF_TEST) and changes nothing when it fails a vector.
 */
export function useEcdsaBackend(backend: EcdsaBackend): void {
  if (backend !== nobleBackend) {
    const failure = selfTestEcdsaBackend(backend);
    if (failure) throw new EcdsaBackendError('BACKEND_SELF_TEST', `${backend.description} failed its self-test: ${failure}`);
  }
  loaded.set(backend.name, backend);
  active = backend;
}

/** Switch to a backend already loaded and self-tested in this process. */
export function selectEcdsaBackend(name: EcdsaBackendName): EcdsaBackend {
  const backend = loaded.get(name);
  if (!backend) throw new EcdsaBackendError('BACKEND_UNAVAILABLE', `secp256k1 backend "${name}" is not loaded`);
  active = backend;
  return backend;
}

/** The backend in use. */
export function ecdsaBackend(): EcdsaBackend {
  return active;
}

/** Every backend loaded and self-tested in this process, noble first. */
export function ecdsaBackends(): readonly EcdsaBackend[] {
  return [...loaded.values()];
}

// The default: libsecp256k1 in WebAssembly when it loads and passes its self-test, else noble. Loaded
// dynamically so that a runtime without WebAssembly (node --jitless) still starts, on noble.
try {
  const tiny = (await import('tiny-secp256k1')) as unknown as TinySecp256k1;
  useEcdsaBackend(wasmBackendOf(tiny));
} catch {
  active = nobleBackend;
}

/**
 * Native libsecp256k1 for Node (subpath `trickle/secp256k1-native`), and the choice of backend for a Node
 * process. The `secp256k1` package is an optional dependency: its prebuilt addon loads without install
 * scripts on linux-x64 (and darwin-arm64, win32-x64); elsewhere (a Raspberry Pi) it needs compiling, and when
 * it does not load we keep the WebAssembly build of the same library. Only the addon is loaded, never the
 * package's JavaScript fallback (elliptic), and only after it passes the same self-test as every backend.
 *
 * @example
 * import { chooseSecp256k1 } from 'trickle/secp256k1-native';
 * const backend = chooseSecp256k1(); // the fastest that loads and passes its self-test
 * log.info(`secp256k1: ${backend.description}`);
 */
import { createRequire } from 'node:module';
import {
  EcdsaBackendError,
  ecdsaBackend,
  ecdsaBackends,
  selectEcdsaBackend,
  useEcdsaBackend,
  type EcdsaBackend,
  type EcdsaBackendName,
} from './backend.js';

/** The subset of the `secp256k1` package's API (v4/v5) used here. */
interface NativeSecp256k1 {
  ecdsaSign(msg32: Uint8Array, seckey: Uint8Array): { signature: Uint8Array; recid: number };
  ecdsaVerify(signature: Uint8Array, msg32: Uint8Array, pubkey: Uint8Array): boolean;
  publicKeyVerify(pubkey: Uint8Array): boolean;
  publicKeyCreate(seckey: Uint8Array, compressed?: boolean): Uint8Array;
  publicKeyCombine(pubkeys: Uint8Array[], compressed?: boolean): Uint8Array;
  publicKeyTweakMul(pubkey: Uint8Array, tweak: Uint8Array, compressed?: boolean): Uint8Array;
}

const N_BYTES = Uint8Array.from(Buffer.from('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141', 'hex'));

/**
 * The digest mod n. The libsecp256k1 bundled with the package feeds the unreduced digest to its RFC 6979
 * nonce generator, where RFC 6979 (bits2octets) and noble use the reduced one; for a digest ≥ n (odds
 * 2^-128) the two would give different, equally valid, signatures. Reducing first makes them identical.
 */
function reducedDigest(digest: Uint8Array): Uint8Array {
  for (let i = 0; i < 32; i++) {
    if (digest[i]! < N_BYTES[i]!) return digest;
    if (digest[i]! > N_BYTES[i]!) break;
  }
  let carry = 0;
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--) {
    const d = digest[i]! - N_BYTES[i]! - carry; // digest < 2n, so one subtraction reduces it
    out[i] = d & 0xff;
    carry = d < 0 ? 1 : 0;
  }
  return out;
}

/**
 * libsecp256k1's verify refuses high-S as it is; a signature it cannot parse (r or s ≥ n) makes the
 * package throw, which is a bad signature here. A sum at infinity throws too (RangeError for the core).
 */
export function nativeBackendOf(lib: NativeSecp256k1): EcdsaBackend {
  return {
    name: 'native',
    description: 'libsecp256k1 (secp256k1 package, native addon)',
    sign: (digest, secret) => lib.ecdsaSign(reducedDigest(digest), secret).signature,
    verify(signature, digest, pubkey) {
      try {
        return lib.ecdsaVerify(signature, digest, pubkey);
      } catch {
        return false;
      }
    },
    isPoint: (pubkey) => pubkey.length === 33 && (pubkey[0] === 2 || pubkey[0] === 3) && lib.publicKeyVerify(pubkey),
    publicKey: (secret) => lib.publicKeyCreate(secret, true),
    pointAdd(a, b) {
      try {
        return lib.publicKeyCombine([a, b], true);
      } catch (error) {
        throw new RangeError(`point sum failed: ${(error as Error).message}`);
      }
    },
    pointMultiply: (point, scalar) => lib.publicKeyTweakMul(point, scalar, true),
  };
}

/**
 * Load and self-test the native addon without making it the one in use. Undefined when the package is not
 * installed or its addon does not load on this platform; throws EcdsaBackendError when it loads but fails
 * its self-test.
 */
export function loadNativeSecp256k1(): EcdsaBackend | undefined {
  const existing = ecdsaBackends().find((b) => b.name === 'native');
  if (existing) return existing;
  let lib: NativeSecp256k1;
  try {
    // 'secp256k1/bindings.js' is the addon alone; the package's index falls back to elliptic silently.
    lib = createRequire(import.meta.url)('secp256k1/bindings.js') as NativeSecp256k1;
  } catch {
    return undefined;
  }
  const previous = ecdsaBackend();
  const backend = nativeBackendOf(lib);
  useEcdsaBackend(backend); // self-tests, throws on failure
  selectEcdsaBackend(previous.name);
  return backend;
}

const PREFERENCE: readonly EcdsaBackendName[] = ['native', 'wasm', 'noble'];

/**
 * Make the fastest available backend the one in use, or the one named by `preference`
 * ('fastest' | 'native' | 'wasm' | 'noble'; default: the TRICKLE_SECP256K1 environment variable, else
 * 'fastest'). A backend that fails its self-test is never used; a named one that is unavailable is an error.
 */
export function chooseSecp256k1(preference: string = process.env['TRICKLE_SECP256K1'] ?? 'fastest'): EcdsaBackend {
  if (preference !== 'fastest' && !(PREFERENCE as readonly string[]).includes(preference)) {
    throw new RangeError(`"preference" expected fastest, native, wasm or noble, got ${JSON.stringify(preference)}`);
  }
  let nativeFailure: unknown;
  try {
    loadNativeSecp256k1();
  } catch (error) {
    nativeFailure = error;
  }
  const names = new Set(ecdsaBackends().map((b) => b.name));
  const name = preference === 'fastest' ? PREFERENCE.find((n) => names.has(n))! : (preference as EcdsaBackendName);
  if (!names.has(name)) {
    throw new EcdsaBackendError(
      'BACKEND_UNAVAILABLE',
      `secp256k1 backend "${name}" is not available here${nativeFailure ? `: ${(nativeFailure as Error).message}` : ''}`,
    );
  }
  return selectEcdsaBackend(name);
}

export { ecdsaBackend, ecdsaBackends };

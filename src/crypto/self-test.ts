/**
 * Known-answer self-test of a secp256k1 backend, run before a backend other than noble is used (as
 * bitcoinjs's initEccLib checks an injected library). The first two signatures are the widely published
 * RFC 6979 vectors for private key 1 ("Satoshi Nakamoto", "All those moments…"); the rest were produced by
 * @noble/secp256k1 and are checked against it in test/crypto-backends.test.ts. The test also covers what
 * must be refused: a high-S twin of a valid signature, r or s out of range, zero r or s, another digest,
 * another key, and bytes that are not a point.
 */
import type { EcdsaBackend } from './backend.js';

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

interface SignVector {
  secret: string;
  digest: string;
  pubkey: string;
  signature: string;
}

const SIGN_VECTORS: readonly SignVector[] = [
  {
    // key 1, sha256("Satoshi Nakamoto")
    secret: '0000000000000000000000000000000000000000000000000000000000000001',
    digest: 'a0dc65ffca799873cbea0ac274015b9526505daaaed385155425f7337704883e',
    pubkey: '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
    signature: '934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d82442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5',
  },
  {
    // key 1, sha256("All those moments will be lost in time, like tears in rain. Time to die...")
    secret: '0000000000000000000000000000000000000000000000000000000000000001',
    digest: '7d1833f54854ac51659521afcd0ec6dca2ce2351429614bfa28a756b1b3c637f',
    pubkey: '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
    signature: '8600dbd41e348fe5c9465ab92d23e3db8b98b873beecd930736488696438cb6b547fe64427496db33bf66019dacbf0039c04199abb0122918601db38a72cfc21',
  },
  {
    // key n-1, sha256("Satoshi Nakamoto")
    secret: 'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140',
    digest: 'a0dc65ffca799873cbea0ac274015b9526505daaaed385155425f7337704883e',
    pubkey: '0379be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
    signature: 'fd567d121db66e382991534ada77a6bd3106f0a1098c231e47993447cd6af2d06b39cd0eb1bc8603e159ef5c20a5c8ad685a45b06ce9bebed3f153d10d93bed5',
  },
  {
    // a digest above n (reduced before use)
    secret: '5d4bec6a2374548f272cda8a8234ecc6c2fbbc2b62b434c8e8d757e9c7445ab5',
    digest: 'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
    pubkey: '03a4a59729b7caa165a9e401e5a58c613bdf419c26347dfb3c81159547833a6362',
    signature: 'b2f4ffd6526e858974b54c00bd6dd28663cbe65dd454fb9a5d0bc89420a72ac12ad52ccf792fba343a493a754bf0e678a214a574a78eb84b97c0891e05b83ac0',
  },
  {
    secret: '5d4bec6a2374548f272cda8a8234ecc6c2fbbc2b62b434c8e8d757e9c7445ab5',
    digest: '8964400a4c0e3df58b19497091db6ec8e45ea28207160b45b4775f949f891c73',
    pubkey: '03a4a59729b7caa165a9e401e5a58c613bdf419c26347dfb3c81159547833a6362',
    signature: '18053bda10ac17f373b7b4b36ed68074a6e722853a30adbaca506c20820c71f8630ae1a985af3a899793a23be213992aeae8b074d4e7efd382c568b1119ba5bb',
  },
];

const G = '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798';
const MINUS_G = '0379be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798';
const TWO_G = '02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5';
/** The last vector's pubkey multiplied by its digest read as a scalar. */
const PRODUCT = { scalar: '8964400a4c0e3df58b19497091db6ec8e45ea28207160b45b4775f949f891c73', point: '03631264ecf7e842ce1cf8d6f2804632fc4abf085c7b49b9508f97a4d0ae4c4798' };
const NOT_POINTS = [
  '020000000000000000000000000000000000000000000000000000000000000005', // x = 5 has no y on the curve
  '04' + G.slice(2), // wrong prefix for 33 bytes
  '02fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f', // x = p
];

function hex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function scalarBytes(k: bigint): Uint8Array {
  return hex(k.toString(16).padStart(64, '0'));
}

function withS(signature: Uint8Array, s: bigint): Uint8Array {
  const out = Uint8Array.from(signature);
  out.set(scalarBytes(s), 32);
  return out;
}

/** Run every check; undefined when the backend passes, else what it got wrong (no secrets: these are public vectors). */
export function selfTestEcdsaBackend(backend: EcdsaBackend): string | undefined {
  try {
    for (const [i, v] of SIGN_VECTORS.entries()) {
      const secret = hex(v.secret);
      const digest = hex(v.digest);
      const pubkey = hex(v.pubkey);
      const signature = hex(v.signature);
      if (!same(backend.publicKey(secret), pubkey)) return `vector ${i}: wrong public key`;
      if (!same(backend.sign(digest, secret), signature)) return `vector ${i}: wrong signature`;
      if (!backend.verify(signature, digest, pubkey)) return `vector ${i}: valid signature refused`;
      const s = BigInt('0x' + v.signature.slice(64));
      if (backend.verify(withS(signature, N - s), digest, pubkey)) return `vector ${i}: high-S signature accepted`;
      if (backend.verify(withS(signature, 0n), digest, pubkey)) return `vector ${i}: zero s accepted`;
      if (backend.verify(withS(signature, N), digest, pubkey)) return `vector ${i}: s = n accepted`;
      const zeroR = Uint8Array.from(signature);
      zeroR.fill(0, 0, 32);
      if (backend.verify(zeroR, digest, pubkey)) return `vector ${i}: zero r accepted`;
      const rIsN = Uint8Array.from(signature);
      rIsN.set(scalarBytes(N), 0);
      if (backend.verify(rIsN, digest, pubkey)) return `vector ${i}: r = n accepted`;
      const otherDigest = Uint8Array.from(digest);
      otherDigest[31]! ^= 1;
      if (backend.verify(signature, otherDigest, pubkey)) return `vector ${i}: signature accepted for another digest`;
      const otherKey = SIGN_VECTORS[(i + 2) % SIGN_VECTORS.length]!.pubkey;
      if (otherKey !== v.pubkey && backend.verify(signature, digest, hex(otherKey))) return `vector ${i}: signature accepted for another key`;
    }
    if (!backend.isPoint(hex(G))) return 'G refused as a point';
    for (const bad of NOT_POINTS) if (backend.isPoint(hex(bad))) return `${bad.slice(0, 8)}… accepted as a point`;
    if (!same(backend.pointAdd(hex(G), hex(G)), hex(TWO_G))) return 'G + G wrong';
    let infinity = false;
    try {
      backend.pointAdd(hex(G), hex(MINUS_G));
    } catch (error) {
      infinity = error instanceof RangeError;
    }
    if (!infinity) return 'G + (−G) did not throw RangeError';
    if (!same(backend.pointMultiply(hex(SIGN_VECTORS[4]!.pubkey), hex(PRODUCT.scalar)), hex(PRODUCT.point))) return 'k·P wrong';
    return undefined;
  } catch (error) {
    return `threw ${(error as Error).message}`;
  }
}

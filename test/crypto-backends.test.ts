/**
 * The secp256k1 backends (src/crypto/backend.ts, native.ts): each one available here passes the self-test,
 * gives byte-identical signatures to @noble/secp256k1 and agrees with it on what verifies, and a backend that
 * would weaken verification is refused before use.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as tiny from 'tiny-secp256k1';
import {
  EcdsaBackendError,
  ecdsaBackend,
  ecdsaBackends,
  nobleBackend,
  selectEcdsaBackend,
  useEcdsaBackend,
  wasmBackendOf,
  type EcdsaBackend,
} from '../src/crypto/backend.js';
import { chooseSecp256k1, loadNativeSecp256k1 } from '../src/crypto/native.js';
import { selfTestEcdsaBackend } from '../src/crypto/self-test.js';
import { signDigest, verifyDigest } from '../src/crypto/secp256k1.js';

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const native = loadNativeSecp256k1();
const candidates: EcdsaBackend[] = ecdsaBackends().filter((b) => b.name !== 'noble');
if (native && !candidates.includes(native)) candidates.push(native);

function scalar(k: bigint): Uint8Array {
  return Uint8Array.from(Buffer.from(k.toString(16).padStart(64, '0'), 'hex'));
}

test('the default backend is libsecp256k1 in WebAssembly, self-tested', () => {
  assert.equal(ecdsaBackends()[0], nobleBackend);
  assert.ok(ecdsaBackends().some((b) => b.name === 'wasm'), 'tiny-secp256k1 loaded');
  assert.equal(selfTestEcdsaBackend(nobleBackend), undefined, 'the vectors hold for the reference');
  for (const backend of candidates) assert.equal(selfTestEcdsaBackend(backend), undefined, backend.name);
});

test('native libsecp256k1 loads from its prebuilt addon where one exists (linux-x64)', (t) => {
  if (!native) {
    t.skip(`no native addon for ${process.platform}-${process.arch} here; the WebAssembly build is used`);
    return;
  }
  assert.equal(native.name, 'native');
});

const secretArb = fc.bigInt({ min: 1n, max: N - 1n }).map(scalar);
const digestArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

for (const backend of candidates) {
  test(`${backend.name}: signatures and verdicts identical to noble's on random keys and digests`, () => {
    fc.assert(
      fc.property(secretArb, digestArb, fc.nat({ max: 63 }), (secret, digest, flip) => {
        const signature = backend.sign(digest, secret);
        assert.deepEqual(signature, nobleBackend.sign(digest, secret));
        const pubkey = nobleBackend.publicKey(secret);
        assert.deepEqual(backend.publicKey(secret), pubkey);
        assert.equal(backend.verify(signature, digest, pubkey), true);
        const tampered = Uint8Array.from(signature);
        tampered[flip]! ^= 0x01;
        assert.equal(backend.verify(tampered, digest, pubkey), nobleBackend.verify(tampered, digest, pubkey));
        const s = BigInt('0x' + Buffer.from(signature.subarray(32)).toString('hex'));
        const highS = Uint8Array.from(signature);
        highS.set(scalar(N - s), 32);
        assert.equal(backend.verify(highS, digest, pubkey), false, 'high-S refused');
        assert.equal(nobleBackend.verify(highS, digest, pubkey), false);
      }),
      { numRuns: 150 },
    );
  });

  test(`${backend.name}: point checks and arithmetic identical to noble's`, () => {
    fc.assert(
      fc.property(secretArb, secretArb, fc.uint8Array({ minLength: 33, maxLength: 33 }), (a, b, junk) => {
        const pa = nobleBackend.publicKey(a);
        const pb = nobleBackend.publicKey(b);
        if (a.every((x, i) => x === b[i])) return;
        assert.deepEqual(backend.pointMultiply(pa, b), nobleBackend.pointMultiply(pa, b));
        const sumIsInfinity = (BigInt('0x' + Buffer.from(a).toString('hex')) + BigInt('0x' + Buffer.from(b).toString('hex'))) % N === 0n;
        if (!sumIsInfinity) assert.deepEqual(backend.pointAdd(pa, pb), nobleBackend.pointAdd(pa, pb));
        junk[0] = 2 + (junk[0]! & 1);
        assert.equal(backend.isPoint(junk), nobleBackend.isPoint(junk));
      }),
      { numRuns: 100 },
    );
  });
}

test('a backend that accepts high-S (tiny-secp256k1 verifying non-strict) fails the self-test and is not used', () => {
  const before = ecdsaBackend();
  const lax: EcdsaBackend = { ...wasmBackendOf(tiny), verify: (sig, digest, pubkey) => tiny.verify(digest, pubkey, sig, false) };
  assert.match(selfTestEcdsaBackend(lax) ?? '', /high-S signature accepted/);
  assert.throws(() => useEcdsaBackend(lax), (e: unknown) => e instanceof EcdsaBackendError && e.code === 'BACKEND_SELF_TEST');
  assert.equal(ecdsaBackend(), before);
  const wrongNonce: EcdsaBackend = { ...wasmBackendOf(tiny), sign: (digest, secret) => tiny.sign(digest, secret).map((x, i) => (i === 63 ? x ^ 1 : x)) };
  assert.match(selfTestEcdsaBackend(wrongNonce) ?? '', /wrong signature/);
});

test('chooseSecp256k1 picks the fastest, obeys a named preference, and refuses unknown names', () => {
  const before = ecdsaBackend();
  try {
    assert.equal(chooseSecp256k1('fastest').name, native ? 'native' : 'wasm');
    assert.equal(chooseSecp256k1('noble'), nobleBackend);
    // The same signature whichever backend signs, through the core's own functions.
    const digest = new Uint8Array(32).fill(7);
    const secret = scalar(12345n);
    const byNoble = signDigest(digest, secret);
    chooseSecp256k1('wasm');
    assert.deepEqual(signDigest(digest, secret), byNoble);
    assert.equal(verifyDigest(byNoble, digest, nobleBackend.publicKey(secret)), true);
    assert.throws(() => chooseSecp256k1('openssl'), RangeError);
  } finally {
    selectEcdsaBackend(before.name);
  }
});

test('isValidPublicKey: a point found valid once is remembered, an invalid one never is', async () => {
  const { isValidPublicKey } = await import('../src/crypto/secp256k1.js');
  const g = nobleBackend.publicKey(scalar(1n));
  const notOnCurve = Uint8Array.from(Buffer.from('02' + '00'.repeat(31) + '05', 'hex'));
  for (let i = 0; i < 3; i++) {
    assert.equal(isValidPublicKey(g), true);
    assert.equal(isValidPublicKey(notOnCurve), false);
  }
  for (let k = 2n; k < 5000n; k++) assert.equal(isValidPublicKey(nobleBackend.publicKey(scalar(k))), true); // past the cache's bound
  assert.equal(isValidPublicKey(notOnCurve), false);
  assert.throws(() => verifyDigest(new Uint8Array(64), new Uint8Array(32), notOnCurve), RangeError);
});

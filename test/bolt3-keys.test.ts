/**
 * BOLT 3 Appendix E key-derivation vectors for src/onchain/rsmc/keys.ts, driven from the JSON vector
 * file, plus a property test tying the public and private derivations together.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bytesToHex, concatBytes, hexToBytes } from '../src/bytes.js';
import { sha256 } from '../src/crypto/hash.js';
import { multiplyPoint, multiplyScalars, publicKeyOf, randomSecretKey } from '../src/crypto/secp256k1.js';
import {
  derivePrivateKey,
  derivePublicKey,
  deriveRevocationPrivateKey,
  deriveRevocationPublicKey,
  perCommitmentPoint,
  perCommitmentTweak,
} from '../src/onchain/rsmc/keys.js';

interface KeyVector {
  name: string;
  inputs: Record<string, string>;
  intermediate?: Record<string, string>;
  expected: Record<string, string>;
}

const vectors = JSON.parse(
  readFileSync(new URL('./vectors/bolt3/keys-and-secrets.json', import.meta.url), 'utf8'),
) as { key_derivation: { common_inputs: Record<string, string>; tests: KeyVector[] } };

const kd = vectors.key_derivation;
const h = hexToBytes;
const hex = bytesToHex;

function input(v: KeyVector, name: string): Uint8Array {
  const value = v.inputs[name];
  assert.equal(typeof value, 'string', `${v.name}: missing input ${name}`);
  return h(value!);
}

/** Each intermediate value the vectors name, computed from the test's inputs with the primitives. */
function computeIntermediate(v: KeyVector, key: string): string {
  const point = () => input(v, 'per_commitment_point');
  const revBase = () => input(v, 'revocation_basepoint');
  const firstHash = () => sha256(concatBytes(revBase(), point()));
  const secondHash = () => sha256(concatBytes(point(), revBase()));
  switch (key) {
    case 'tweak_sha256_per_commitment_point_basepoint':
      return hex(perCommitmentTweak(point(), input(v, 'basepoint')));
    case 'sha256_revocation_basepoint_per_commitment_point':
      return hex(firstHash());
    case 'sha256_per_commitment_point_revocation_basepoint':
      return hex(secondHash());
    case 'revocation_basepoint_times_first_hash':
      return hex(multiplyPoint(revBase(), firstHash()));
    case 'per_commitment_point_times_second_hash':
      return hex(multiplyPoint(point(), secondHash()));
    case 'revocation_basepoint_secret_times_first_hash':
      return hex(multiplyScalars(input(v, 'revocation_basepoint_secret'), firstHash()));
    case 'per_commitment_secret_times_second_hash':
      return hex(multiplyScalars(input(v, 'per_commitment_secret'), secondHash()));
    default:
      throw new Error(`${v.name}: no check for intermediate value "${key}"`);
  }
}

/** The function under test for each expected key, fed from the test's inputs. */
function computeExpected(v: KeyVector, key: string): string {
  switch (key) {
    case 'pubkey':
      return hex(derivePublicKey(input(v, 'basepoint'), input(v, 'per_commitment_point')));
    case 'privkey':
      return hex(derivePrivateKey(input(v, 'basepoint_secret'), input(v, 'per_commitment_point')));
    case 'revocationpubkey':
      return hex(deriveRevocationPublicKey(input(v, 'revocation_basepoint'), input(v, 'per_commitment_point')));
    case 'revocationprivkey':
      return hex(deriveRevocationPrivateKey(input(v, 'revocation_basepoint_secret'), input(v, 'per_commitment_secret')));
    default:
      throw new Error(`${v.name}: no check for expected value "${key}"`);
  }
}

test('key derivation: common inputs (base_point = base_secret*G, per_commitment_point = secret*G)', () => {
  const c = kd.common_inputs;
  assert.equal(hex(publicKeyOf(h(c.base_secret!))), c.base_point);
  assert.equal(hex(perCommitmentPoint(h(c.per_commitment_secret!))), c.per_commitment_point);
});

test('key derivation: the vector file has the four Appendix E tests', () => {
  const kinds = kd.tests.flatMap((v) => Object.keys(v.expected)).sort();
  assert.deepEqual(kinds, ['privkey', 'pubkey', 'revocationprivkey', 'revocationpubkey']);
});

for (const v of kd.tests) {
  test(`key derivation: ${v.name}`, () => {
    // Inputs given both as a secret and as its point must agree.
    const pairs: Array<[string, string]> = [
      ['basepoint_secret', 'basepoint'],
      ['revocation_basepoint_secret', 'revocation_basepoint'],
      ['per_commitment_secret', 'per_commitment_point'],
    ];
    for (const [secret, point] of pairs) {
      if (v.inputs[secret] !== undefined && v.inputs[point] !== undefined) {
        assert.equal(hex(publicKeyOf(input(v, secret))), v.inputs[point], `${secret} * G`);
      }
    }
    for (const [key, want] of Object.entries(v.intermediate ?? {})) {
      assert.equal(computeIntermediate(v, key), want, `intermediate ${key}`);
    }
    const expected = Object.entries(v.expected);
    assert.ok(expected.length > 0, 'vector has an expected value');
    for (const [key, want] of expected) {
      assert.equal(computeExpected(v, key), want, `expected ${key}`);
    }
  });
}

test('key derivation: private keys match public derivations for random keys', () => {
  for (let i = 0; i < 16; i++) {
    const baseSecret = randomSecretKey();
    const commitmentSecret = randomSecretKey();
    const basepoint = publicKeyOf(baseSecret);
    const point = perCommitmentPoint(commitmentSecret);
    assert.equal(
      hex(publicKeyOf(derivePrivateKey(baseSecret, point))),
      hex(derivePublicKey(basepoint, point)),
      'derivePublicKey(basepoint, point) == derivePrivateKey(secret, point) * G',
    );
    assert.equal(
      hex(publicKeyOf(deriveRevocationPrivateKey(baseSecret, commitmentSecret))),
      hex(deriveRevocationPublicKey(basepoint, point)),
      'deriveRevocationPublicKey == deriveRevocationPrivateKey * G',
    );
  }
});

test('key derivation: malformed keys are rejected', () => {
  const c = kd.common_inputs;
  const point = h(c.per_commitment_point!);
  const base = h(c.base_point!);
  assert.throws(() => derivePublicKey(base.subarray(1), point), TypeError);
  assert.throws(() => derivePrivateKey(new Uint8Array(32), point), RangeError);
  assert.throws(() => deriveRevocationPublicKey(base, new Uint8Array(33)), RangeError);
  assert.throws(() => deriveRevocationPrivateKey(h(c.base_secret!), new Uint8Array(31)), TypeError);
});

// A per_commitment_point from a peer is only hashed into the tweak, so it must be checked to be a point.
test(
  'key derivation: derivePublicKey/derivePrivateKey reject a malformed per_commitment_point',
  () => {
    const c = kd.common_inputs;
    const point = h(c.per_commitment_point!);
    assert.throws(() => derivePublicKey(h(c.base_point!), point.subarray(1)), TypeError);
    assert.throws(() => derivePrivateKey(h(c.base_secret!), point.subarray(1)), TypeError);
    assert.throws(() => derivePublicKey(h(c.base_point!), new Uint8Array(33)));
  },
);

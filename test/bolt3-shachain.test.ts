/**
 * BOLT 3 Appendix D per-commitment secret vectors (generation and storage) for
 * src/onchain/rsmc/shachain.ts, driven from the JSON vector file, plus store behaviour the vectors
 * do not cover: ordering, retrieval of every received index, and persistence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bytesToHex, hexToBytes } from '../src/bytes.js';
import { SecretStoreError } from '../src/errors.js';
import {
  FIRST_INDEX,
  PerCommitmentSecretStore,
  SECRET_STORE_SLOTS,
  commitmentIndex,
  generatePerCommitmentSecret,
  type PerCommitmentSecretStoreJSON,
} from '../src/onchain/rsmc/shachain.js';

interface GenerationVector {
  name: string;
  seed: string;
  index: number;
  index_as_written: string;
  output: string;
}
interface StorageVector {
  name: string;
  inserts: Array<{ index: number; secret: string; expected: 'OK' | 'ERROR'; expect_success: boolean }>;
}

const vectors = JSON.parse(
  readFileSync(new URL('./vectors/bolt3/keys-and-secrets.json', import.meta.url), 'utf8'),
) as {
  per_commitment_secret_generation: { first_index: number; tests: GenerationVector[] };
  per_commitment_secret_storage: { correct_seed: string; corrupt_seed: string; tests: StorageVector[] };
};
const generation = vectors.per_commitment_secret_generation;
const storage = vectors.per_commitment_secret_storage;
const hex = bytesToHex;

function isCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof SecretStoreError, `expected SecretStoreError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

/** Every index in `received` must come back with its secret; the next index must not. */
function assertRetrievable(store: PerCommitmentSecretStore, received: Map<bigint, string>): void {
  for (const [index, secret] of received) {
    const got = store.get(index);
    assert.ok(got !== undefined, `secret ${index} retrievable`);
    assert.equal(hex(got), secret, `secret ${index}`);
  }
  const next = store.nextIndex;
  if (next !== undefined) assert.equal(store.get(next), undefined, `secret ${next} not yet received`);
}

// --- generation --------------------------------------------------------------------------------

test('shachain: constants and commitmentIndex', () => {
  assert.equal(FIRST_INDEX, 281474976710655n);
  assert.equal(BigInt(generation.first_index), FIRST_INDEX);
  assert.equal(SECRET_STORE_SLOTS, 49);
  assert.equal(commitmentIndex(0n), FIRST_INDEX);
  assert.equal(commitmentIndex(1n), FIRST_INDEX - 1n);
  assert.equal(commitmentIndex(FIRST_INDEX), 0n);
  assert.throws(() => commitmentIndex(-1n), RangeError);
  assert.throws(() => commitmentIndex(FIRST_INDEX + 1n), RangeError);
  assert.throws(() => commitmentIndex(0 as unknown as bigint), TypeError);
});

for (const v of generation.tests) {
  test(`shachain: ${v.name}`, () => {
    const index = BigInt(v.index);
    // The JSON integer and the spec's written form (decimal or 0x hex) must be the same index.
    assert.equal(BigInt(v.index_as_written), index);
    assert.equal(hex(generatePerCommitmentSecret(hexToBytes(v.seed), index)), v.output);
  });
}

test('shachain: generation does not modify the seed', () => {
  const seed = hexToBytes(generation.tests[1]!.seed);
  const copy = Uint8Array.from(seed);
  generatePerCommitmentSecret(seed, FIRST_INDEX);
  assert.deepEqual(seed, copy);
});

test('shachain: generation rejects malformed arguments', () => {
  const seed = new Uint8Array(32);
  assert.throws(() => generatePerCommitmentSecret(seed, -1n), RangeError);
  assert.throws(() => generatePerCommitmentSecret(seed, FIRST_INDEX + 1n), RangeError);
  assert.throws(() => generatePerCommitmentSecret(seed, 1 as unknown as bigint), TypeError);
  assert.throws(() => generatePerCommitmentSecret(new Uint8Array(31), 1n), TypeError);
  assert.throws(() => generatePerCommitmentSecret('00'.repeat(32) as unknown as Uint8Array, 1n), TypeError);
  // Index 0 flips nothing: it is the seed itself (never revealed: it would revoke commitment 2^48-1).
  assert.deepEqual(generatePerCommitmentSecret(seed, 0n), seed);
});

// --- storage vectors ---------------------------------------------------------------------------

test('shachain: every storage test rejects exactly its final insert', () => {
  for (const v of storage.tests) {
    const outcomes = v.inserts.map((i) => i.expect_success);
    const incorrect = v.name.includes('incorrect');
    assert.deepEqual(outcomes, v.inserts.map((_, k) => !(incorrect && k === v.inserts.length - 1)), v.name);
    for (const i of v.inserts) assert.equal(i.expected, i.expect_success ? 'OK' : 'ERROR', v.name);
  }
});

for (const v of storage.tests) {
  test(`shachain: ${v.name}`, () => {
    const store = new PerCommitmentSecretStore();
    const received = new Map<bigint, string>();
    for (const ins of v.inserts) {
      const index = BigInt(ins.index);
      if (ins.expect_success) {
        store.insert(index, hexToBytes(ins.secret));
        received.set(index, ins.secret);
        assert.equal(store.lastIndex, index);
      } else {
        const before = JSON.stringify(store.toJSON());
        assert.throws(() => store.insert(index, hexToBytes(ins.secret)), isCode('SECRET_MISMATCH'));
        // Nothing stored: same state, same last index, the rejected index still unknown.
        assert.equal(JSON.stringify(store.toJSON()), before);
        assert.equal(store.lastIndex, index + 1n);
        assert.equal(store.get(index), undefined);
      }
      assertRetrievable(store, received);
    }
  });
}

test('shachain: correct storage sequence matches the generator on the correct seed', () => {
  const seed = hexToBytes(storage.correct_seed);
  for (const ins of storage.tests[0]!.inserts) {
    assert.equal(hex(generatePerCommitmentSecret(seed, BigInt(ins.index))), ins.secret);
  }
});

// --- store behaviour ---------------------------------------------------------------------------

const SEED = hexToBytes('5a'.repeat(32));
const secretAt = (index: bigint) => generatePerCommitmentSecret(SEED, index);

/** A store that has received `count` secrets from SEED, and the map of what it received. */
function filled(count: number): { store: PerCommitmentSecretStore; received: Map<bigint, string> } {
  const store = new PerCommitmentSecretStore();
  const received = new Map<bigint, string>();
  for (let n = 0n; n < BigInt(count); n++) {
    const index = commitmentIndex(n);
    store.insert(index, secretAt(index));
    received.set(index, hex(secretAt(index)));
  }
  return { store, received };
}

test('shachain: 300 inserts, every received secret retrievable after each, never more than 49 slots', () => {
  const store = new PerCommitmentSecretStore();
  const received = new Map<bigint, string>();
  for (let n = 0n; n < 300n; n++) {
    const index = commitmentIndex(n);
    store.insert(index, secretAt(index));
    received.set(index, hex(secretAt(index)));
    assertRetrievable(store, received);
    const json = store.toJSON();
    assert.ok(json.secrets.length <= SECRET_STORE_SLOTS);
    // Compact: after c inserts (indices 2^48-1 .. 2^48-c) exactly bitlength(c) slots are in use.
    const c = n + 1n;
    assert.equal(json.secrets.length, c.toString(2).length, `slots after ${c} inserts`);
  }
});

test('shachain: the store is empty at first and expects 2^48-1', () => {
  const store = new PerCommitmentSecretStore();
  assert.equal(store.lastIndex, undefined);
  assert.equal(store.nextIndex, FIRST_INDEX);
  assert.equal(store.get(FIRST_INDEX), undefined);
  assert.deepEqual(store.toJSON(), { version: 1, lastIndex: null, secrets: [] });
});

test('shachain: out-of-order inserts are rejected with SECRET_BAD_INDEX and store nothing', () => {
  const empty = new PerCommitmentSecretStore();
  assert.throws(() => empty.insert(FIRST_INDEX - 1n, secretAt(FIRST_INDEX - 1n)), isCode('SECRET_BAD_INDEX'));
  assert.equal(empty.lastIndex, undefined);

  const { store, received } = filled(5);
  const before = JSON.stringify(store.toJSON());
  const last = store.lastIndex!;
  for (const index of [last, last + 1n, last - 2n, FIRST_INDEX, 0n]) {
    assert.throws(() => store.insert(index, secretAt(index)), isCode('SECRET_BAD_INDEX'), `index ${index}`);
  }
  assert.equal(JSON.stringify(store.toJSON()), before);
  assertRetrievable(store, received);
  // The right index still goes in afterwards.
  store.insert(last - 1n, secretAt(last - 1n));
  assert.equal(store.lastIndex, last - 1n);
});

test('shachain: a secret from another seed is rejected once it has something to derive', () => {
  const { store } = filled(3); // indices ...fff, ...ffe, ...ffd
  // ...ffc has two trailing zeros: it must derive ...ffd and ...ffe.
  const index = store.nextIndex!;
  const bogus = generatePerCommitmentSecret(new Uint8Array(32), index);
  assert.throws(() => store.insert(index, bogus), isCode('SECRET_MISMATCH'));
  store.insert(index, secretAt(index));
});

test('shachain: insert and get reject malformed arguments', () => {
  const store = new PerCommitmentSecretStore();
  assert.throws(() => store.insert(Number(FIRST_INDEX) as unknown as bigint, secretAt(FIRST_INDEX)), TypeError);
  assert.throws(() => store.insert(FIRST_INDEX, new Uint8Array(31)), TypeError);
  assert.throws(() => store.insert(FIRST_INDEX + 1n, secretAt(FIRST_INDEX)), RangeError);
  assert.throws(() => store.get(-1n), RangeError);
  assert.throws(() => store.get(1 as unknown as bigint), TypeError);
  assert.equal(store.lastIndex, undefined);
});

test('shachain: the store keeps its own copy of secrets and hands out copies', () => {
  const store = new PerCommitmentSecretStore();
  const secret = secretAt(FIRST_INDEX);
  store.insert(FIRST_INDEX, secret);
  secret.fill(0);
  assert.equal(hex(store.get(FIRST_INDEX)!), hex(secretAt(FIRST_INDEX)));
  store.get(FIRST_INDEX)!.fill(0);
  assert.equal(hex(store.get(FIRST_INDEX)!), hex(secretAt(FIRST_INDEX)));
});

test('shachain: the last index, 0, fills slot 48 and derives everything; nothing follows it', () => {
  // Build the state of a store whose last insert was index 1 directly: slot b holds the smallest
  // index >= 1 with b trailing zeros, i.e. 2^b. fromJSON checks exactly that shape.
  const json: PerCommitmentSecretStoreJSON = {
    version: 1,
    lastIndex: '1',
    secrets: Array.from({ length: 48 }, (_, b) => {
      const index = 1n << BigInt(b);
      return { index: index.toString(), secret: hex(secretAt(index)) };
    }),
  };
  const store = PerCommitmentSecretStore.fromJSON(json);
  assert.equal(store.nextIndex, 0n);
  store.insert(0n, secretAt(0n));
  assert.equal(store.nextIndex, undefined);
  // All 49 slots are now in use (the lower ones are never cleared, only overwritten): the maximum.
  const full = store.toJSON();
  assert.equal(full.secrets.length, SECRET_STORE_SLOTS);
  assert.deepEqual(full.secrets[48], { index: '0', secret: hex(SEED) });
  assert.deepEqual(PerCommitmentSecretStore.fromJSON(full).toJSON(), full);
  for (const index of [0n, 1n, 2n, 12345n, FIRST_INDEX - 1n, FIRST_INDEX]) {
    assert.equal(hex(store.get(index)!), hex(secretAt(index)));
  }
  assert.throws(() => store.insert(0n, secretAt(0n)), isCode('SECRET_BAD_INDEX'));
});

// --- persistence -------------------------------------------------------------------------------

test('shachain: toJSON/fromJSON round-trip at many sizes', () => {
  for (const count of [0, 1, 2, 3, 4, 7, 8, 9, 16, 33, 100]) {
    const { store, received } = filled(count);
    const json = JSON.parse(JSON.stringify(store)) as PerCommitmentSecretStoreJSON;
    const loaded = PerCommitmentSecretStore.fromJSON(json);
    assert.deepEqual(loaded.toJSON(), store.toJSON());
    assert.equal(loaded.lastIndex, store.lastIndex);
    assertRetrievable(loaded, received);
    // The loaded store keeps checking: advance to an index with a trailing zero (an odd index has
    // nothing below it to derive), where a secret from another seed must be refused.
    while ((loaded.nextIndex! & 1n) === 1n) loaded.insert(loaded.nextIndex!, secretAt(loaded.nextIndex!));
    const next = loaded.nextIndex!;
    const bogus = generatePerCommitmentSecret(new Uint8Array(32).fill(7), next);
    assert.throws(() => loaded.insert(next, bogus), isCode('SECRET_MISMATCH'), `after ${count}`);
    loaded.insert(next, secretAt(next));
  }
});

test('shachain: fromJSON rejects malformed input', () => {
  const { store } = filled(5);
  const good = store.toJSON();
  const clone = () => JSON.parse(JSON.stringify(good)) as Record<string, unknown> & PerCommitmentSecretStoreJSON;
  const load = (value: unknown) => () => PerCommitmentSecretStore.fromJSON(value);
  assert.doesNotThrow(load(clone()));

  // Shape and encoding: TypeError.
  const typeErrors: Array<[string, unknown]> = [
    ['null', null],
    ['array', []],
    ['string', JSON.stringify(good)],
    ['missing secrets', { version: 1, lastIndex: good.lastIndex }],
    ['extra field', { ...clone(), extra: 1 }],
    ['version 2', { ...clone(), version: 2 }],
    ['numeric lastIndex', { ...clone(), lastIndex: Number(good.lastIndex) }],
    ['leading zero', { ...clone(), lastIndex: '0' + good.lastIndex }],
    ['negative', { ...clone(), lastIndex: '-1' }],
    ['exponent', { ...clone(), lastIndex: '1e3' }],
    ['hex index', { ...clone(), lastIndex: '0xffffffffffff' }],
    ['secrets object', { ...clone(), secrets: {} }],
    ['50 entries', { ...clone(), secrets: Array.from({ length: 50 }, () => good.secrets[0]) }],
  ];
  const entry = (patch: Record<string, unknown>) => {
    const j = clone();
    j.secrets[1] = { ...j.secrets[1]!, ...patch } as { index: string; secret: string };
    return j;
  };
  typeErrors.push(
    ['entry null', { ...clone(), secrets: [null] }],
    ['entry extra field', entry({ slot: 1 })],
    ['entry numeric index', entry({ index: 5 })],
    ['entry short secret', entry({ secret: good.secrets[1]!.secret.slice(2) })],
    ['entry uppercase secret', entry({ secret: good.secrets[1]!.secret.toUpperCase() })],
    ['entry 0x secret', entry({ secret: '0x' + good.secrets[1]!.secret.slice(2) })],
    ['entry byte-array secret', entry({ secret: Array.from(hexToBytes(good.secrets[1]!.secret)) })],
  );
  for (const [what, value] of typeErrors) assert.throws(load(value), TypeError, what);

  // Index above 48 bits: RangeError.
  assert.throws(load({ ...clone(), lastIndex: (FIRST_INDEX + 1n).toString() }), RangeError);
  assert.throws(load(entry({ index: (1n << 64n).toString() })), TypeError); // too many digits
  assert.throws(load(entry({ index: (FIRST_INDEX + 1n).toString() })), RangeError);

  // Slots that inserting 2^48-1 down to lastIndex cannot produce: SECRET_BAD_INDEX.
  const badIndex: Array<[string, unknown]> = [
    ['empty store with secrets', { ...clone(), lastIndex: null }],
    ['secrets missing', { ...clone(), secrets: [] }],
    ['one slot dropped', { ...clone(), secrets: good.secrets.slice(1) }],
    ['duplicate slot', { ...clone(), secrets: [...good.secrets, good.secrets[0]] }],
    ['lastIndex moved', { ...clone(), lastIndex: (BigInt(good.lastIndex!) - 1n).toString() }],
    ['wrong index in slot', entry({ index: (BigInt(good.secrets[1]!.index) - 4n).toString() })],
  ];
  for (const [what, value] of badIndex) assert.throws(load(value), isCode('SECRET_BAD_INDEX'), what);

  // Secrets that do not derive one another: SECRET_MISMATCH. In this state slot 2 (index ...fc)
  // derives slot 1 (index ...fe); corrupting either breaks that.
  assert.deepEqual(
    good.secrets.map((s) => (FIRST_INDEX - BigInt(s.index)).toString()),
    ['4', '1', '3'],
    'slots 0,1,2 hold commitment numbers 4, 1, 3',
  );
  for (const k of [1, 2]) {
    const j = clone();
    const flipped = hexToBytes(j.secrets[k]!.secret);
    flipped[31]! ^= 1;
    j.secrets[k] = { index: j.secrets[k]!.index, secret: hex(flipped) };
    assert.throws(load(j), isCode('SECRET_MISMATCH'), `slot ${k} corrupted`);
  }

  // Nothing above modified the original.
  assert.deepEqual(PerCommitmentSecretStore.fromJSON(good).toJSON(), good);
});

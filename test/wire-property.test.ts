/**
 * Property tests of the wire codec ([W-5], [W-13]), 10 000 runs each. Message arbitraries are derived
 * from the schemas themselves, so every message type (and every field type) is covered, including
 * types added later.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Encoder } from 'cbor-x/index-no-eval';
import { bytesToHex, concatBytes } from '../src/bytes.js';
import { publicKeyOf } from '../src/crypto/secp256k1.js';
import {
  MESSAGE_TYPE_CODES,
  WireError,
  decodeMessage,
  encodeMessage,
  messageDefinition,
  type WireMessage,
  type WireMessageType,
} from '../src/wire/index.js';
import { utf8Length } from '../src/wire/codec.js';
import type { FieldTable, TypeSpec } from '../src/wire/schema.js';

const RUNS = { numRuns: 10_000 };
const TYPES = Object.keys(MESSAGE_TYPE_CODES) as WireMessageType[];
const PUBKEYS = Array.from({ length: 16 }, (_, i) => publicKeyOf(new Uint8Array(32).fill(i + 1)));

/** Keep whole code points while the UTF-8 length stays within `maxBytes`. */
function truncateUtf8(s: string, maxBytes: number): string {
  let out = '';
  for (const ch of s) {
    if (utf8Length(out + ch) > maxBytes) break;
    out += ch;
  }
  return out;
}

function valueArb(spec: TypeSpec): fc.Arbitrary<unknown> {
  switch (spec.kind) {
    case 'uint': {
      const edges = [0n, 1n, 23n, 24n, 255n, 256n, 65535n, 65536n, 0xffff_ffffn, 0x1_0000_0000n, spec.max].filter((v) => v <= spec.max);
      const big = fc.oneof(fc.constantFrom(...edges), fc.bigInt({ min: 0n, max: spec.max }), fc.bigInt({ min: 0n, max: 1000n }));
      return spec.big ? big : big.map(Number);
    }
    case 'bytes': {
      if (spec.pubkey) return fc.constantFrom(...PUBKEYS);
      if (spec.min === spec.max) return fc.uint8Array({ minLength: spec.min, maxLength: spec.max });
      return fc.oneof(
        { arbitrary: fc.uint8Array({ maxLength: Math.min(spec.max, 48) }), weight: 9 },
        { arbitrary: fc.uint8Array({ minLength: spec.max, maxLength: spec.max }), weight: 1 },
      );
    }
    case 'text':
      return fc.string({ unit: 'binary', maxLength: spec.maxBytes }).map((s) => truncateUtf8(s, spec.maxBytes));
    case 'bool':
      return fc.boolean();
    case 'enum':
      return fc.constantFrom(...spec.values);
    case 'array':
      return fc.array(valueArb(spec.item), { maxLength: Math.min(spec.max, 4) });
    case 'struct':
      return recordArb(spec.table);
  }
}

function recordArb(table: FieldTable): fc.Arbitrary<Record<string, unknown>> {
  const model = Object.fromEntries(table.entries.map((e) => [e.name, valueArb(e.spec)]));
  // fc.record builds null-prototype objects; decoded structs are plain objects.
  return fc.record(model, { requiredKeys: table.entries.filter((e) => !e.optional).map((e) => e.name) }).map((r) => ({ ...r }));
}

const messageArbs = TYPES.map((type) => recordArb(messageDefinition(type).table).map((fields) => ({ type, ...fields }) as WireMessage));
const messageArb: fc.Arbitrary<WireMessage> = fc.oneof(...messageArbs);

/** Decode; anything thrown must be a WireError. A message that decodes must re-encode deterministically. */
function decodeOnlyWireErrors(bytes: Uint8Array): void {
  let message: WireMessage;
  try {
    message = decodeMessage(bytes);
  } catch (e) {
    if (e instanceof WireError) return;
    throw e;
  }
  const again = encodeMessage(message);
  assert.deepEqual(decodeMessage(again), message);
  assert.equal(bytesToHex(encodeMessage(decodeMessage(again))), bytesToHex(again));
}

// Random but well-formed envelopes: right version, a real type code, a mix of the type's own keys and
// others, values of any CBOR kind. They get past the guard and exercise the per-field checks.
const cbor = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });
const small = (v: bigint): number | bigint => (v < 0x1_0000_0000n ? Number(v) : v);
const leafArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(small),
  fc.integer({ min: -1000, max: 1000 }),
  fc.uint8Array({ maxLength: 70 }),
  fc.constantFrom(...PUBKEYS),
  fc.string({ maxLength: 40 }),
  fc.boolean(),
);
const cborValueArb: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leafArb, fc.array(tie('value'), { maxLength: 4 }), tie('map')),
  map: fc.uniqueArray(fc.tuple(fc.nat({ max: 12 }), tie('value')), { maxLength: 4, selector: ([k]) => k }).map(
    (entries) => new Map(entries.sort(([a], [b]) => a - b)),
  ),
})).value;
const envelopeArb = fc
  .tuple(
    fc.constantFrom(...TYPES),
    fc.uniqueArray(fc.tuple(fc.nat({ max: 40 }), cborValueArb), { maxLength: 12, selector: ([k]) => k }),
    fc.boolean(),
  )
  .map(([type, entries, ownKeys]) => {
    const keys = messageDefinition(type).table.entries.map((e) => e.key);
    // ownKeys: the type's keys first, then odd (ignorable) ones; otherwise any key ≥ 2.
    const fields = entries.map(([k, v], i): [number, unknown] => [!ownKeys ? k + 2 : i < keys.length ? keys[i]! : 2 * k + 3, v]);
    const unique = new Map(fields.sort(([a], [b]) => a - b));
    const map = new Map<number, unknown>([[0, 1], [1, MESSAGE_TYPE_CODES[type]], ...unique]);
    return new Uint8Array(cbor.encode(map));
  });

const randomBytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  // a map head first, so the guard walks further before it fails
  fc.tuple(fc.integer({ min: 0xa0, max: 0xbb }), fc.uint8Array({ maxLength: 200 })).map(([head, rest]) => concatBytes(Uint8Array.of(head), rest)),
  fc.tuple(fc.constantFrom(...Object.values(MESSAGE_TYPE_CODES)), fc.uint8Array({ maxLength: 120 })).map(([code, rest]) =>
    concatBytes(Uint8Array.of(0xa0 + 2 + (rest.length % 6), 0x00, 0x01, 0x01, 0x18, code), rest),
  ),
  envelopeArb,
);

test('[W-13] (a) random bytes: decodeMessage returns a message or throws WireError, nothing else', () => {
  fc.assert(fc.property(randomBytesArb, (bytes) => decodeOnlyWireErrors(bytes)), RUNS);
});

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'splice'; at: number; from: number; length: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), from: fc.nat(), length: fc.nat({ max: 64 }) }),
);

function mutate(bytes: Uint8Array, donor: Uint8Array, m: Mutation): Uint8Array {
  const at = bytes.length === 0 ? 0 : m.at % bytes.length;
  switch (m.kind) {
    case 'flip': {
      const out = Uint8Array.from(bytes);
      if (out.length > 0) out[at]! ^= 1 << m.bit;
      return out;
    }
    case 'insert':
      return concatBytes(bytes.subarray(0, at), Uint8Array.of(m.byte), bytes.subarray(at));
    case 'delete':
      return concatBytes(bytes.subarray(0, at), bytes.subarray(at + 1));
    case 'truncate':
      return bytes.subarray(0, at);
    case 'splice': {
      const from = donor.length === 0 ? 0 : m.from % donor.length;
      return concatBytes(bytes.subarray(0, at), donor.subarray(from, from + m.length), bytes.subarray(at + m.length));
    }
  }
}

test('[W-13] (b) mutated valid messages: only WireError escapes; what decodes re-encodes deterministically', () => {
  fc.assert(
    fc.property(messageArb, messageArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (message, other, mutations) => {
      const donor = encodeMessage(other);
      let bytes = encodeMessage(message);
      for (const m of mutations) bytes = mutate(bytes, donor, m);
      decodeOnlyWireErrors(bytes);
    }),
    RUNS,
  );
});

test('[W-5] (c) random valid messages of every type round-trip exactly', () => {
  fc.assert(
    fc.property(messageArb, (message) => {
      const bytes = encodeMessage(message);
      const decoded = decodeMessage(bytes);
      assert.deepEqual(decoded, message);
      assert.equal(bytesToHex(encodeMessage(decoded)), bytesToHex(bytes));
    }),
    RUNS,
  );
});

/**
 * The codec shared by every message family (docs/protocol.md §2): it interprets the schemas of ./schema.ts.
 * A message is one flat CBOR map, the envelope: key 0 the protocol version, key 1 the type code, keys ≥ 2
 * the fields ([W-1]).
 *
 * Decoding is strict, in order: the size limit ([W-2]), the CBOR guard (./guard.ts, [W-3]–[W-6]),
 * then cbor-x, then each field against its schema ([W-7]–[W-10]). Any bad input ends in a WireError.
 * Encoding is deterministic ([W-5]): fields in ascending key order, integers in their shortest form
 * (cbor-x writes a bigint as 8 bytes and a number ≥ 2^32 as a float, so values are normalised first).
 *
 * cbor-x comes from its no-eval entry: no native addon, no `new Function`, plain maps, no tags.
 */
import { Decoder, Encoder, setSizeLimits } from 'cbor-x/index-no-eval';
import { isValidPublicKey } from '../crypto/secp256k1.js';
import type { WireMessageType } from './codes.js';
import { checkCborSubset, MAX_ITEMS } from './guard.js';
import { FIRST_FIELD_KEY, type FieldTable, type FieldType, type MessageDef, type TypeSpec } from './schema.js';
import { WireError } from './wire-error.js';

/** [W-7] The only protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1;
/** [W-2] Default limit on an encoded message, checked before decoding. */
export const DEFAULT_MAX_MESSAGE_BYTES = 65_536;

const KEY_VERSION = 0;
const KEY_TYPE = 1;

// Defence in depth ([W-6]): the guard already bounds every container by MAX_ITEMS, but these limits are
// module-global in cbor-x, so even a direct cbor-x decode elsewhere in the process (same entry point)
// cannot be talked into allocating a 100-million-slot array. They apply to every Decoder of this entry.
setSizeLimits({ maxArraySize: MAX_ITEMS, maxMapSize: MAX_ITEMS, maxObjectSize: MAX_ITEMS });

const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });
// tagUint8Array: false → a Uint8Array is a plain major-type-2 byte string, not tag 64.
const encoder = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });

/** Encode one message in the envelope. Throws TypeError/RangeError naming the field on misuse. */
export function encodeEnvelope(def: MessageDef, message: object, maxBytes = DEFAULT_MAX_MESSAGE_BYTES): Uint8Array {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError('"maxBytes" expected a positive integer');
  const map = new Map<number, unknown>([
    [KEY_VERSION, PROTOCOL_VERSION],
    [KEY_TYPE, def.code],
  ]);
  encodeFieldsInto(map, def.table, message, '', true);
  // Copy out of cbor-x's shared buffer into a plain Uint8Array of our own.
  const out = new Uint8Array(encoder.encode(map));
  if (out.length > maxBytes) {
    throw new RangeError(`"${def.type}" encodes to ${out.length} bytes, above the ${maxBytes}-byte limit`);
  }
  // Self-check that what we send is what we demand ([W-5], [W-6]): linear, and catches a cbor-x change
  // or a message with more items than a receiver accepts.
  try {
    checkCborSubset(out);
  } catch (e) {
    throw new RangeError(`"${def.type}" does not encode within the wire rules: ${(e as Error).message}`);
  }
  return out;
}

export interface Envelope {
  readonly typeCode: number;
  readonly map: ReadonlyMap<number, unknown>;
}

/** [W-2]→[W-8] Size check, guard, cbor-x, version and type code. Throws only WireError on bad bytes. */
export function decodeEnvelope(input: Uint8Array, maxBytes = DEFAULT_MAX_MESSAGE_BYTES): Envelope {
  if (!(input instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError('"maxBytes" expected a positive integer');
  // [W-2] before anything else looks at the bytes.
  if (input.length > maxBytes) throw new WireError('TOO_LARGE', `${input.length} bytes, limit ${maxBytes}`);
  checkCborSubset(input);
  let value: unknown;
  try {
    value = decoder.decode(input);
  } catch {
    // Not expected after the guard; whatever cbor-x throws stays inside.
    throw new WireError('MALFORMED', 'the CBOR decoder rejected the message');
  }
  if (!(value instanceof Map)) throw new WireError('NOT_A_MAP', 'the message is not a CBOR map');
  const map = value as Map<number, unknown>;
  const version = map.get(KEY_VERSION);
  if (version === undefined) throw new WireError('MISSING_FIELD', 'no protocol version (key 0)', { field: 'version' });
  if (version !== PROTOCOL_VERSION) {
    if (!isUint(version)) throw new WireError('BAD_TYPE', 'expected an unsigned integer', { field: 'version' });
    throw new WireError('UNSUPPORTED_VERSION', `version ${String(version)} is not supported`, { field: 'version' });
  }
  const typeCode = map.get(KEY_TYPE);
  if (typeCode === undefined) throw new WireError('MISSING_FIELD', 'no message type (key 1)', { field: 'type' });
  if (!isUint(typeCode)) throw new WireError('BAD_TYPE', 'expected an unsigned integer', { field: 'type' });
  // Keys are < 2^32 by the guard, but a value may be a bigint: such a code is simply unknown.
  return { typeCode: typeof typeCode === 'number' ? typeCode : -1, map };
}

/** [W-9], [W-10] The message's own fields out of a decoded envelope. */
export function decodeBody<T extends { type: WireMessageType }>(def: MessageDef<T>, envelope: Envelope): T {
  const fields = decodeFields(def.table, envelope.map, '', FIRST_FIELD_KEY);
  return { type: def.type, ...fields } as T;
}

/**
 * A standalone CBOR map of `type`'s fields (keys from 0), with the same deterministic encoding and
 * self-check as a message: used by the hardware key's command bodies and stored state.
 */
export function encodeStruct<T>(type: FieldType<T>, value: T, maxBytes = DEFAULT_MAX_MESSAGE_BYTES): Uint8Array {
  if (type.spec.kind !== 'struct') throw new TypeError('"type" expected a struct type');
  const map = new Map<number, unknown>();
  encodeFieldsInto(map, type.spec.table, value as object, '', false);
  const out = new Uint8Array(encoder.encode(map));
  if (out.length > maxBytes) throw new RangeError(`"${type.spec.name}" encodes to ${out.length} bytes, above the ${maxBytes}-byte limit`);
  checkCborSubset(out);
  return out;
}

/**
 * The inverse of encodeStruct, strict: size first, the CBOR guard, then every field; unlike a message
 * ([W-9]) any unknown key is refused, odd or even, at every level. Throws only WireError on bad bytes.
 */
export function decodeStruct<T>(type: FieldType<T>, input: Uint8Array, maxBytes = DEFAULT_MAX_MESSAGE_BYTES): T {
  if (type.spec.kind !== 'struct') throw new TypeError('"type" expected a struct type');
  if (!(input instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  if (input.length > maxBytes) throw new WireError('TOO_LARGE', `${input.length} bytes, limit ${maxBytes}`);
  checkCborSubset(input);
  let value: unknown;
  try {
    value = decoder.decode(input);
  } catch {
    throw new WireError('MALFORMED', 'the CBOR decoder rejected the input');
  }
  return decodeValue(type.spec, value, '', true) as T;
}

function isUint(v: unknown): boolean {
  return (typeof v === 'number' && v >= 0) || (typeof v === 'bigint' && v >= 0n);
}

// ---------------------------------------------------------------------------------------------------------
// Field decoding: raw cbor-x values → typed values, WireError on anything else.

function fieldPath(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}.${name}`;
}

function decodeFields(table: FieldTable, map: ReadonlyMap<unknown, unknown>, prefix: string, firstKey: number, strict = false): Record<string, unknown> {
  for (const key of map.keys()) {
    const k = key as number; // the guard admits only unsigned integer keys below 2^32
    if (k < firstKey || table.byKey.has(k)) continue;
    if (strict) throw new WireError('UNKNOWN_FIELD', 'unknown key', { field: fieldPath(prefix, `#${k}`) });
    // [W-9] it's OK to be odd: an unknown odd key is skipped, an unknown even key is fatal.
    if (k % 2 === 0) throw new WireError('UNKNOWN_EVEN_FIELD', 'unknown even key', { field: fieldPath(prefix, `#${k}`) });
  }
  const out: Record<string, unknown> = {};
  for (const entry of table.entries) {
    const path = fieldPath(prefix, entry.name);
    const raw = map.get(entry.key);
    if (raw === undefined) {
      if (entry.optional) continue;
      throw new WireError('MISSING_FIELD', `key ${entry.key} is required`, { field: path });
    }
    out[entry.name] = decodeValue(entry.spec, raw, path, strict);
  }
  return out;
}

function decodeValue(spec: TypeSpec, raw: unknown, path: string, strict = false): unknown {
  switch (spec.kind) {
    case 'uint': {
      let v: bigint;
      if (typeof raw === 'number') v = BigInt(raw);
      else if (typeof raw === 'bigint') v = raw;
      else throw new WireError('BAD_TYPE', 'expected an unsigned integer', { field: path });
      if (v < 0n || v > spec.max) throw new WireError('OUT_OF_RANGE', `expected 0..${spec.max} (${spec.name})`, { field: path });
      return spec.big ? v : Number(v);
    }
    case 'bytes': {
      if (!(raw instanceof Uint8Array)) throw new WireError('BAD_TYPE', 'expected a byte string', { field: path });
      if (raw.length < spec.min || raw.length > spec.max) {
        const want = spec.min === spec.max ? `${spec.min}` : `${spec.min}..${spec.max}`;
        throw new WireError('BAD_LENGTH', `expected ${want} bytes, got ${raw.length}`, { field: path });
      }
      // [W-10] on the curve; the message says which field, never what was in it.
      if (spec.pubkey && !isValidPublicKey(raw)) throw new WireError('BAD_PUBKEY', 'not a compressed secp256k1 point', { field: path });
      return new Uint8Array(raw); // a copy: cbor-x hands out views into the input
    }
    case 'text': {
      if (typeof raw !== 'string') throw new WireError('BAD_TYPE', 'expected a text string', { field: path });
      const len = utf8Length(raw);
      if (len > spec.maxBytes) throw new WireError('BAD_LENGTH', `expected at most ${spec.maxBytes} UTF-8 bytes, got ${len}`, { field: path });
      return raw;
    }
    case 'bool':
      if (typeof raw !== 'boolean') throw new WireError('BAD_TYPE', 'expected true or false', { field: path });
      return raw;
    case 'enum': {
      if (!isUint(raw)) throw new WireError('BAD_TYPE', 'expected an unsigned integer', { field: path });
      const value = typeof raw === 'number' ? spec.values[raw] : undefined;
      if (value === undefined) throw new WireError('OUT_OF_RANGE', `expected 0..${spec.values.length - 1}`, { field: path });
      return value;
    }
    case 'array': {
      if (!Array.isArray(raw)) throw new WireError('BAD_TYPE', 'expected an array', { field: path });
      if (raw.length > spec.max) throw new WireError('BAD_LENGTH', `expected at most ${spec.max} items, got ${raw.length}`, { field: path });
      return raw.map((item, i) => decodeValue(spec.item, item, `${path}[${i}]`, strict));
    }
    case 'struct':
      if (!(raw instanceof Map)) throw new WireError('BAD_TYPE', 'expected a map', { field: path });
      return decodeFields(spec.table, raw, path, 0, strict);
  }
}

/** UTF-8 length of a well-formed string, without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4; // a surrogate pair (well-formed input): one 4-byte sequence
      i++;
    } else n += 3;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// Field encoding: typed values → values cbor-x writes in shortest form. Misuse throws TypeError/RangeError.

const LONE_SURROGATE = /\p{Cs}/u;

function encodeFieldsInto(map: Map<number, unknown>, table: FieldTable, value: object, prefix: string, isMessage: boolean): void {
  if (typeof value !== 'object' || value === null) throw new TypeError(`"${prefix || 'message'}" expected an object`);
  const record = value as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (isMessage && name === 'type') continue;
    if (!table.entries.some((e) => e.name === name)) throw new TypeError(`"${fieldPath(prefix, name)}" is not a field of this message`);
  }
  for (const entry of table.entries) {
    const path = fieldPath(prefix, entry.name);
    const v = record[entry.name];
    if (v === undefined) {
      if (entry.optional) continue;
      throw new TypeError(`"${path}" is required`);
    }
    map.set(entry.key, encodeValue(entry.spec, v, path));
  }
}

function encodeValue(spec: TypeSpec, value: unknown, path: string): unknown {
  switch (spec.kind) {
    case 'uint': {
      if (spec.big && typeof value !== 'bigint') throw new TypeError(`"${path}" expected bigint`);
      if (!spec.big && !Number.isSafeInteger(value)) throw new TypeError(`"${path}" expected an integer number`);
      const v = BigInt(value as bigint | number);
      if (v < 0n || v > spec.max) throw new RangeError(`"${path}" expected 0..${spec.max}`);
      // cbor-x: number < 2^32 → shortest uint; bigint → 8-byte uint (shortest only from 2^32 on).
      return v < 0x1_0000_0000n ? Number(v) : v;
    }
    case 'bytes': {
      if (!(value instanceof Uint8Array)) throw new TypeError(`"${path}" expected Uint8Array`);
      if (value.length < spec.min || value.length > spec.max) {
        throw new RangeError(`"${path}" expected ${spec.min === spec.max ? spec.min : `${spec.min}..${spec.max}`} bytes`);
      }
      // A cheap prefix check only: the curve check costs ~0.2 ms and the receiver makes it anyway.
      if (spec.pubkey && value[0] !== 2 && value[0] !== 3) throw new RangeError(`"${path}" expected a compressed public key`);
      return value;
    }
    case 'text': {
      if (typeof value !== 'string') throw new TypeError(`"${path}" expected string`);
      if (LONE_SURROGATE.test(value)) throw new RangeError(`"${path}" has a lone surrogate (not encodable as UTF-8)`);
      if (utf8Length(value) > spec.maxBytes) throw new RangeError(`"${path}" expected at most ${spec.maxBytes} UTF-8 bytes`);
      return value;
    }
    case 'bool':
      if (typeof value !== 'boolean') throw new TypeError(`"${path}" expected boolean`);
      return value;
    case 'enum': {
      const index = spec.values.indexOf(value as string);
      if (index < 0) throw new RangeError(`"${path}" expected one of ${spec.values.join(', ')}`);
      return index;
    }
    case 'array': {
      if (!Array.isArray(value)) throw new TypeError(`"${path}" expected an array`);
      if (value.length > spec.max) throw new RangeError(`"${path}" expected at most ${spec.max} items`);
      return value.map((item, i) => encodeValue(spec.item, item, `${path}[${i}]`));
    }
    case 'struct': {
      const map = new Map<number, unknown>();
      encodeFieldsInto(map, spec.table, value as object, path, false);
      return map;
    }
  }
}

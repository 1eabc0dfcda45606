/**
 * Message schemas as data (docs/protocol.md §2.6, [W-10]): field types, their TypeScript types, and the
 * definition of a message as its type name, type code (./codes.ts) and keyed fields. The codec
 * (./codec.ts) interprets them; the docs tables and the property tests are derived from the same data.
 *
 * @example
 *   defineMessage<PongMsg>('pong', { id: { key: 2, type: u32 } });
 */
import { MAX_MONEY_MSAT, MAX_MONEY_SAT } from '../amounts.js';
import { MESSAGE_TYPE_CODES, type WireMessageType } from './codes.js';

export const U64_MAX = (1n << 64n) - 1n;
/** Keys 0 and 1 belong to the envelope; a message's own fields start at 2. */
export const FIRST_FIELD_KEY = 2;

export type TypeSpec =
  | { readonly kind: 'uint'; readonly name: string; readonly max: bigint; readonly big: boolean }
  | { readonly kind: 'bytes'; readonly name: string; readonly min: number; readonly max: number; readonly pubkey: boolean }
  | { readonly kind: 'text'; readonly maxBytes: number }
  | { readonly kind: 'bool' }
  | { readonly kind: 'enum'; readonly values: readonly string[] }
  | { readonly kind: 'array'; readonly item: TypeSpec; readonly max: number }
  | { readonly kind: 'struct'; readonly name: string; readonly table: FieldTable };

/** A field type carrying the TypeScript type `V` it decodes to (`_value` is never set). */
export interface FieldType<V> {
  readonly spec: TypeSpec;
  readonly _value?: V;
}

export interface FieldDef<V> {
  readonly key: number;
  readonly type: FieldType<V>;
  readonly optional?: boolean;
}

/** One FieldDef per property of T; a property that may be undefined must be `optional: true`. */
export type Fields<T> = {
  readonly [K in keyof T]-?: undefined extends T[K]
    ? FieldDef<Exclude<T[K], undefined>> & { readonly optional: true }
    : FieldDef<T[K]> & { readonly optional?: false };
};

export interface FieldEntry {
  readonly name: string;
  readonly key: number;
  readonly spec: TypeSpec;
  readonly optional: boolean;
}

/** Fields compiled once: ascending by key for encoding, indexed by key for decoding. */
export interface FieldTable {
  readonly entries: readonly FieldEntry[];
  readonly byKey: ReadonlyMap<number, FieldEntry>;
}

const uintType = <V>(name: string, max: bigint, big: boolean): FieldType<V> => ({ spec: { kind: 'uint', name, max, big } });

/** Unsigned integer decoded as bigint ([W-11]): counters and ids up to 2^64−1. */
export const u64: FieldType<bigint> = uintType('u64', U64_MAX, true);
/** Satoshi amount, 0..MAX_MONEY_SAT, bigint. */
export const sat: FieldType<bigint> = uintType('sat', MAX_MONEY_SAT, true);
/** Millisatoshi amount, 0..MAX_MONEY_MSAT, bigint. */
export const msat: FieldType<bigint> = uintType('msat', MAX_MONEY_MSAT, true);
/** Fee rate in sat per 1000 weight units (BOLT 2 feerate_per_kw is u32), bigint like every fee input. */
export const feerate: FieldType<bigint> = uintType('feerate', 0xffff_ffffn, true);
export const u16: FieldType<number> = uintType('u16', 0xffffn, false);
export const u32: FieldType<number> = uintType('u32', 0xffff_ffffn, false);
/** Seconds since 1970 as a JS number: u64 on the wire, at most 2^53−1. */
export const unixTime: FieldType<number> = uintType('time', BigInt(Number.MAX_SAFE_INTEGER), false);

/** Exactly `length` bytes. */
export function bytes(length: number, name = `bytes[${length}]`): FieldType<Uint8Array> {
  return { spec: { kind: 'bytes', name, min: length, max: length, pubkey: false } };
}
/** At most `max` bytes. */
export function varBytes(max: number): FieldType<Uint8Array> {
  return { spec: { kind: 'bytes', name: `bytes ≤ ${max}`, min: 0, max, pubkey: false } };
}
/** 32 bytes: a channel id, hash, txid (internal byte order, [W-12]) or secret. */
export const bytes32: FieldType<Uint8Array> = bytes(32);
/** 33-byte compressed secp256k1 point, checked on the curve when decoded ([W-10]). */
export const pubkey: FieldType<Uint8Array> = { spec: { kind: 'bytes', name: 'pubkey', min: 33, max: 33, pubkey: true } };
/** 64-byte compact ECDSA signature r‖s; verified by whoever holds the message it signs. */
export const sig: FieldType<Uint8Array> = bytes(64, 'sig');
/** Output script (scriptPubKey), at most 64 bytes: covers every standard segwit and legacy form. */
export const script: FieldType<Uint8Array> = varBytes(64);

/** UTF-8 text of at most `maxBytes` encoded bytes. */
export function text(maxBytes: number): FieldType<string> {
  return { spec: { kind: 'text', maxBytes } };
}
export const bool: FieldType<boolean> = { spec: { kind: 'bool' } };
/** A string from `values`, sent as its index. */
export function enumOf<V extends string>(values: readonly V[]): FieldType<V> {
  return { spec: { kind: 'enum', values } };
}
export function arrayOf<V>(item: FieldType<V>, max: number): FieldType<V[]> {
  return { spec: { kind: 'array', item: item.spec, max } };
}
/** A nested map with its own keys; the unknown-key rule [W-9] applies inside it too. */
export function struct<T>(name: string, fields: Fields<T>): FieldType<T> {
  return { spec: { kind: 'struct', name, table: compileFields(fields, 0, name) } };
}

export function compileFields(fields: object, firstKey: number, where: string): FieldTable {
  const entries: FieldEntry[] = [];
  const byKey = new Map<number, FieldEntry>();
  for (const [name, def] of Object.entries(fields as Record<string, FieldDef<unknown>>)) {
    const { key } = def;
    if (!Number.isSafeInteger(key) || key < firstKey || key > 0xffff_ffff || byKey.has(key)) {
      throw new Error(`wire schema ${where}: bad or duplicate key ${key} for ${name}`);
    }
    const entry = { name, key, spec: def.type.spec, optional: def.optional === true };
    entries.push(entry);
    byKey.set(key, entry);
  }
  entries.sort((a, b) => a.key - b.key);
  return { entries, byKey };
}

/** Short type name used in docs/protocol.md tables (a test keeps the two in step). */
export function describeType(spec: TypeSpec): string {
  switch (spec.kind) {
    case 'uint':
    case 'bytes':
      return spec.name;
    case 'text':
      return `text ≤ ${spec.maxBytes}`;
    case 'bool':
      return 'bool';
    case 'enum':
      return `enum ${spec.values.map((v, i) => `${i}=${v}`).join(' ')}`;
    case 'array':
      return `array ≤ ${spec.max} of ${describeType(spec.item)}`;
    case 'struct':
      return spec.name;
  }
}

export interface MessageDef<T extends { type: WireMessageType } = { type: WireMessageType }> {
  readonly type: T['type'];
  readonly code: number;
  readonly table: FieldTable;
}

/** Declare a message: its type name (code from ./codes.ts) and its fields (keys ≥ 2). */
export function defineMessage<T extends { type: WireMessageType }>(type: T['type'], fields: Fields<Omit<T, 'type'>>): MessageDef<T> {
  return { type, code: MESSAGE_TYPE_CODES[type], table: compileFields(fields, FIRST_FIELD_KEY, type) };
}

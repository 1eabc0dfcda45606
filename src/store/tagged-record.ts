/**
 * Tagged JSON for stored records, shared by the channel record codecs (src/channel/oneway/state.ts,
 * src/channel/rsmc/state.ts). Every string is tagged — `n:` bigint, `x:` bytes (lower-case hex), `s:` text
 * — so text, numbers, bigints and bytes cannot be confused when read back; numbers, booleans and null pass
 * through; undefined object fields are dropped. The envelope is `{ v: <version>, r: <tagged record> }`.
 *
 * Records read back from disk are untrusted: {@link decodeTagged} checks the size, the JSON, the version,
 * the tags and the nesting depth, and {@link fieldReaders} give each codec small checked readers for its
 * fields. Every failure goes through the caller's error factory, so each codec throws its own typed error.
 *
 * @example
 *   const fail = (message: string) => new MyError('CORRUPT_RECORD', message);
 *   const { obj, big, bytes } = fieldReaders(fail);
 *   const raw = encodeTagged(1, { amountSat: 5n, id: new Uint8Array(32) });
 *   const r = decodeTagged(raw, { version: 1, maxBytes: 4096, maxDepth: 4, fail });
 *   const amountSat = big(r['amountSat'], 'amountSat');
 */
import { bytesToHex, hexToBytes } from '../bytes.js';
import type { OutPoint } from '../chain/port.js';
import { isNodeId, type NodeId } from '../transport/port.js';

/** Builds the codec's own error (e.g. a CORRUPT_RECORD) from a description of what is wrong. */
export type Fail = (message: string) => Error;

/** The tagged form of `value` (see the module doc). */
export function tagValue(value: unknown): unknown {
  if (typeof value === 'bigint') return `n:${value}`;
  if (value instanceof Uint8Array) return `x:${bytesToHex(value)}`;
  if (typeof value === 'string') return `s:${value}`;
  if (Array.isArray(value)) return value.map(tagValue);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = tagValue(v);
    return out;
  }
  return value;
}

/** Undo {@link tagValue}; anything deeper than `maxDepth` or badly tagged fails (and cannot blow the stack). */
export function untagValue(value: unknown, fail: Fail, maxDepth: number, depth = 0): unknown {
  if (depth > maxDepth) throw fail('nested too deeply');
  if (typeof value === 'string') {
    const body = value.slice(2);
    if (value.startsWith('n:') && /^-?\d{1,40}$/.test(body)) return BigInt(body);
    if (value.startsWith('x:') && /^([0-9a-f]{2})*$/.test(body)) return hexToBytes(body);
    if (value.startsWith('s:')) return body;
    throw fail('bad tagged value');
  }
  if (Array.isArray(value)) return value.map((v) => untagValue(v, fail, maxDepth, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = untagValue(v, fail, maxDepth, depth + 1);
    return out;
  }
  return value;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** `{ v: version, r: tagged record }` as UTF-8 JSON. */
export function encodeTagged(version: number, record: object): Uint8Array {
  return encoder.encode(JSON.stringify({ v: version, r: tagValue(record) }));
}

export interface TaggedDecodeOptions {
  version: number;
  /** Larger input fails before it is parsed. */
  maxBytes: number;
  /** Nesting depth of the record body (its top-level fields are at depth 1). */
  maxDepth: number;
  fail: Fail;
}

/** Parse an envelope written by {@link encodeTagged} and return the untagged record body (an object). */
export function decodeTagged(raw: Uint8Array, options: TaggedDecodeOptions): Record<string, unknown> {
  const { fail } = options;
  if (!(raw instanceof Uint8Array)) throw fail('expected bytes');
  if (raw.length > options.maxBytes) throw fail('too large');
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(raw));
  } catch {
    throw fail('not JSON');
  }
  const { obj } = fieldReaders(fail);
  const outer = obj(parsed, 'record');
  if (outer['v'] !== options.version) throw fail('unknown version');
  return obj(untagValue(outer['r'], fail, options.maxDepth), 'r');
}

/** Checked readers for untagged fields; each fails with `<field>: expected …`. */
export interface FieldReaders {
  obj(v: unknown, field: string): Record<string, unknown>;
  /** An array of at most `max` items (default 1000). */
  arr(v: unknown, field: string, max?: number): unknown[];
  /** `read(v)` unless v is undefined. */
  opt<T>(v: unknown, read: (v: unknown) => T): T | undefined;
  /** A non-negative bigint. */
  big(v: unknown, field: string): bigint;
  /** A non-negative safe integer, at most `max` when given. */
  int(v: unknown, field: string, max?: number): number;
  bool(v: unknown, field: string): boolean;
  /** Text of at most `maxLength` (default 1024) UTF-16 units. */
  str(v: unknown, field: string, maxLength?: number): string;
  /** Bytes, of exactly `length` when given. */
  bytes(v: unknown, field: string, length?: number): Uint8Array;
  oneOf<T extends string>(v: unknown, values: readonly T[], field: string): T;
  nodeId(v: unknown, field: string): NodeId;
  /** 64 lower-case hex digits. */
  txid(v: unknown, field: string): string;
  outpoint(v: unknown, field?: string): OutPoint;
}

/** The readers, failing through `fail`. They are plain functions: destructure them freely. */
export function fieldReaders(fail: Fail): FieldReaders {
  const obj = (v: unknown, field: string): Record<string, unknown> => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw fail(`${field}: expected an object`);
    return v as Record<string, unknown>;
  };
  const int = (v: unknown, field: string, max?: number): number => {
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw fail(`${field}: expected a non-negative integer`);
    if (max !== undefined && (v as number) > max) throw fail(`${field}: expected at most ${max}`);
    return v as number;
  };
  const txid = (v: unknown, field: string): string => {
    if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) throw fail(`${field}: expected a txid`);
    return v;
  };
  return {
    obj,
    arr(v, field, max = 1000) {
      if (!Array.isArray(v) || v.length > max) throw fail(`${field}: expected an array`);
      return v;
    },
    opt<T>(v: unknown, read: (v: unknown) => T): T | undefined {
      return v === undefined ? undefined : read(v);
    },
    big(v, field) {
      if (typeof v !== 'bigint' || v < 0n) throw fail(`${field}: expected a non-negative bigint`);
      return v;
    },
    int,
    bool(v, field) {
      if (typeof v !== 'boolean') throw fail(`${field}: expected a boolean`);
      return v;
    },
    str(v, field, maxLength = 1024) {
      if (typeof v !== 'string' || v.length > maxLength) throw fail(`${field}: expected text`);
      return v;
    },
    bytes(v, field, length) {
      if (!(v instanceof Uint8Array)) throw fail(`${field}: expected bytes`);
      if (length !== undefined && v.length !== length) throw fail(`${field}: expected ${length} bytes`);
      return v;
    },
    oneOf<T extends string>(v: unknown, values: readonly T[], field: string): T {
      if (typeof v !== 'string' || !values.includes(v as T)) throw fail(`${field}: unexpected value`);
      return v as T;
    },
    nodeId(v, field) {
      if (typeof v !== 'string' || !isNodeId(v)) throw fail(`${field}: expected a node id`);
      return v;
    },
    txid,
    outpoint(v, field = 'outpoint') {
      const o = obj(v, field);
      return { txid: txid(o['txid'], `${field}.txid`), vout: int(o['vout'], `${field}.vout`) };
    },
  };
}

/**
 * The Store port: a small durable key-value map for channel state. Channel code writes the
 * state behind an update in one commit and lets nothing leave the process until that commit
 * has resolved (house style, practice 2): a resolved commit is on disk, a rejected one
 * must be treated as not on disk.
 *
 * Keys are well-formed strings of 1 to 500 UTF-8 bytes, ordered by their UTF-8 bytes (the
 * same as code point order). Values are byte strings of at most 1 MiB. Every adapter copies
 * values on the way in and on the way out.
 *
 * Adapters: MemoryStore (src/store/memory.ts, the test double) and LmdbStore
 * (src/store/lmdb.ts, subpath `trickle/lmdb`, loads a native addon). Both pass the contract
 * suite in test/store.test.ts.
 *
 * @example
 * await store.commit([
 *   { key: 'ch/0001/state', value: encodedState },
 *   { key: 'ch/0001/pending', value: undefined }, // delete
 * ]);
 * const channels = await store.list('ch/');
 */

/** One write of a commit: a value to store, or undefined to delete the key. */
export interface StoreWrite {
  key: string;
  value: Uint8Array | undefined;
}

export interface StoreEntry {
  key: string;
  value: Uint8Array;
}

export interface Store {
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Every entry whose key starts with `prefix` ('' for all), in ascending key order: UTF-8
   * byte order, which is code point order (it differs from JS code unit order only between
   * characters above U+FFFF and U+E000..U+FFFF).
   */
  list(prefix: string): Promise<StoreEntry[]>;
  /**
   * Apply all writes atomically (all or none) and durably: resolve only once they are on disk.
   * Writes apply in order, so a key written twice keeps its last value.
   */
  commit(writes: readonly StoreWrite[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * - STORE_CLOSED: the store was closed; programmer error, open it again.
 * - STORE_IO: the disk or database failed. What the failed commit did is unknown: do not act
 *   as if it were stored; stop the channel work, close, reopen and re-read.
 * - STORE_BAD_KEY / STORE_BAD_VALUE: programmer error; nothing of the batch was written.
 */
export type StoreErrorCode = 'STORE_CLOSED' | 'STORE_IO' | 'STORE_BAD_KEY' | 'STORE_BAD_VALUE';

export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Largest key in UTF-8 bytes; well under lmdb's default 1978-byte key limit. */
export const MAX_KEY_BYTES = 500;
/** Largest value in bytes. */
export const MAX_VALUE_BYTES = 1024 * 1024;

const utf8 = new TextEncoder();
// With the u flag a surrogate pair is one code point, so this matches only lone surrogates,
// which UTF-8 cannot carry (TextEncoder would turn two different keys into the same bytes).
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * The UTF-8 bytes of a key or (with `allowEmpty`) a list prefix; rejects with STORE_BAD_KEY.
 * @internal shared by the adapters
 */
export function encodeKey(key: unknown, field: string, allowEmpty = false): Uint8Array {
  if (typeof key !== 'string') throw new StoreError('STORE_BAD_KEY', `${field}: expected a string`);
  if (key.length === 0 && !allowEmpty) throw new StoreError('STORE_BAD_KEY', `${field}: must not be empty`);
  if (LONE_SURROGATE.test(key)) throw new StoreError('STORE_BAD_KEY', `${field}: contains a lone surrogate`);
  const bytes = utf8.encode(key);
  if (bytes.length > MAX_KEY_BYTES) {
    throw new StoreError('STORE_BAD_KEY', `${field}: ${bytes.length} UTF-8 bytes, at most ${MAX_KEY_BYTES}`);
  }
  return bytes;
}

/** A write after validation: the key's bytes and a private copy of the value. */
export interface CheckedWrite {
  key: string;
  keyBytes: Uint8Array;
  value: Uint8Array | undefined;
}

/**
 * Validate a whole batch before anything is written, copying every value so that the caller
 * may reuse its arrays as soon as commit() returns.
 * @internal shared by the adapters
 */
export function checkWrites(writes: readonly StoreWrite[]): CheckedWrite[] {
  if (!Array.isArray(writes)) throw new StoreError('STORE_BAD_VALUE', 'writes: expected an array');
  return writes.map((write: StoreWrite, i) => {
    if (typeof write !== 'object' || write === null) {
      throw new StoreError('STORE_BAD_VALUE', `writes[${i}]: expected { key, value }`);
    }
    const keyBytes = encodeKey(write.key, `writes[${i}].key`);
    const { value } = write;
    if (value === undefined) return { key: write.key, keyBytes, value: undefined };
    if (!(value instanceof Uint8Array)) {
      throw new StoreError('STORE_BAD_VALUE', `writes[${i}].value: expected Uint8Array or undefined`);
    }
    if (value.length > MAX_VALUE_BYTES) {
      throw new StoreError('STORE_BAD_VALUE', `writes[${i}].value: ${value.length} bytes, at most ${MAX_VALUE_BYTES}`);
    }
    return { key: write.key, keyBytes, value: new Uint8Array(value) }; // copies, even from a Buffer
  });
}


/**
 * The LMDB Store adapter (lmdb-js), exposed as `trickle/lmdb` because it loads a native addon
 * (house style, practice 11). One LMDB environment per directory; keys are stored as their
 * UTF-8 bytes, values as raw bytes.
 *
 * Durability: a commit resolves only after LMDB's commit has fsynced it.
 * - `overlappingSync: false`. lmdb-js turns overlappingSync on by default outside Windows; its
 *   README says write promises then resolve "when they are committed" (visible) and durability
 *   must be awaited separately through `db.flushed`. With it off, liblmdb's mdb_txn_commit
 *   fdatasyncs the data pages, then writes the meta page through an O_DSYNC descriptor, before
 *   it returns; lmdb-js marks the transaction committed only after that (src/writer.cpp,
 *   WriteWorker::Write), and only then resolves the transaction's promise.
 * - `noSync`, `noMetaSync`, `useWritemap` pinned off: each would let a commit return before
 *   its pages are on disk (or, with a writemap, let a stray write corrupt the map).
 * - We still await `db.flushed` after each commit: if this process already has the same
 *   environment open with overlappingSync on, lmdb-js silently keeps it on (open.js), and
 *   `flushed` is then what waits for the fsync.
 * Atomicity: each commit runs as one lmdb-js child transaction, aborted as a whole if any
 * write in it throws.
 *
 * @example
 * import { LmdbStore } from 'trickle/lmdb';
 * const store = await LmdbStore.open({ path: '/var/lib/trickle/state' });
 */
import { mkdir, open as openFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { open } from 'lmdb';
import type { RootDatabase, RootDatabaseOptionsWithPath } from 'lmdb';
import type { Store, StoreEntry, StoreWrite } from './port.js';
import { StoreError, checkWrites, encodeKey } from './port.js';

const keyText = new TextDecoder('utf-8', { fatal: true });

function ioError(action: string, cause: unknown): StoreError {
  if (cause instanceof StoreError) return cause;
  // lmdb's messages name the failing call and code (e.g. "MDB_MAP_FULL: ..."), never a value.
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new StoreError('STORE_IO', `${action} failed: ${detail}`, { cause });
}

/** fsync a directory so that the entries just created in it survive a power cut. */
async function syncDirectory(path: string): Promise<void> {
  if (process.platform === 'win32') return; // directories cannot be opened for fsync there
  const handle = await openFile(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

export interface LmdbStoreOptions {
  /** Directory of the environment; created (mode 0o700) if missing. */
  path: string;
  /** Initial size of the memory map; lmdb-js grows it when a commit needs more. */
  mapSizeBytes?: number;
}

export class LmdbStore implements Store {
  #db: RootDatabase<Buffer, Buffer> | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;

  private constructor(db: RootDatabase<Buffer, Buffer>) {
    this.#db = db;
  }

  static async open(options: LmdbStoreOptions): Promise<LmdbStore> {
    const { path, mapSizeBytes } = options;
    if (typeof path !== 'string' || path.length === 0) throw new TypeError('"path" expected a non-empty string');
    if (mapSizeBytes !== undefined && (!Number.isSafeInteger(mapSizeBytes) || mapSizeBytes <= 0)) {
      throw new RangeError('"mapSizeBytes" expected a positive integer');
    }
    const lmdbOptions: RootDatabaseOptionsWithPath & { permissionsMode: number } = {
      path,
      noSubdir: false, // else lmdb-js treats a path with a dot in its last part as a file name
      encoding: 'binary',
      // Our own UTF-8 bytes, not lmdb's default ordered-binary keys, which tag strings that start
      // with a character below 28 and use 0 as a separator: byte order and byte length are then
      // exactly what MemoryStore and MAX_KEY_BYTES assume.
      keyEncoding: 'binary',
      overlappingSync: false,
      noSync: false,
      noMetaSync: false,
      useWritemap: false,
      permissionsMode: 0o600, // data.mdb holds channel secrets
      ...(mapSizeBytes !== undefined ? { mapSize: mapSizeBytes } : {}),
    };
    let db: RootDatabase<Buffer, Buffer> | undefined;
    try {
      await mkdir(path, { recursive: true, mode: 0o700 });
      db = open<Buffer, Buffer>(lmdbOptions);
      // LMDB fsyncs data.mdb but never the directory holding it, nor we the parent we may have created.
      await syncDirectory(path);
      await syncDirectory(dirname(path));
      return new LmdbStore(db);
    } catch (error) {
      await db?.close().catch(() => undefined); // already failing with the first error
      throw ioError('open', error);
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const db = this.#open();
    const keyBytes = encodeKey(key, 'key');
    let value: Buffer | undefined;
    try {
      value = db.get(Buffer.from(keyBytes));
    } catch (error) {
      throw ioError('get', error);
    }
    return value === undefined ? undefined : new Uint8Array(value);
  }

  async list(prefix: string): Promise<StoreEntry[]> {
    const db = this.#open();
    const prefixBytes = encodeKey(prefix, 'prefix', true);
    const entries: StoreEntry[] = [];
    try {
      const range = db.getRange(prefixBytes.length > 0 ? { start: Buffer.from(prefixBytes) } : {});
      for (const { key, value } of range) {
        if (!startsWith(key, prefixBytes)) break;
        entries.push({ key: keyText.decode(key), value: new Uint8Array(value) });
      }
    } catch (error) {
      throw ioError('list', error);
    }
    return entries;
  }

  async commit(writes: readonly StoreWrite[]): Promise<void> {
    const db = this.#open();
    const checked = checkWrites(writes);
    const done = (async () => {
      await db.childTransaction(() => {
        for (const { keyBytes, value } of checked) {
          const key = Buffer.from(keyBytes);
          if (value === undefined) db.removeSync(key);
          else db.putSync(key, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        }
      });
      await db.flushed;
    })();
    this.#inFlight.add(done);
    try {
      await done;
    } catch (error) {
      throw ioError('commit', error);
    } finally {
      this.#inFlight.delete(done);
    }
  }

  /**
   * Counters for benchmarks and monitoring.
   * - `writeTransactions`: LMDB's id of the last committed write transaction (`me_last_txnid`, through
   *   lmdb-js `getStats().lastTxnId`); it only grows. Every committed write transaction is one durable
   *   sync group — fdatasync of the data pages, then the meta page through the O_DSYNC descriptor — so
   *   the difference across a run counts the syncs it cost. lmdb-js runs the child transactions of
   *   commits that are waiting together in one LMDB write transaction (its group commit), so concurrent
   *   commits, from one channel or many, may share one: divide by commits or payments, never assume 1.
   * - `sizeBytes`: (last page number + 1) × page size, the high-water mark of data.mdb, which is its
   *   length on disk (LMDB never shrinks the file; pages freed by later writes are reused).
   * - `pageSizeBytes`, `entries`: LMDB's page size and the number of keys stored.
   *
   * @example
   * const before = store.stats().writeTransactions;
   * await Promise.all(payments);
   * const syncsPerPayment = (store.stats().writeTransactions - before) / payments.length;
   */
  stats(): { writeTransactions: number; sizeBytes: number; pageSizeBytes: number; entries: number } {
    const db = this.#open();
    let stats: { lastTxnId: number; lastPageNumber: number; pageSize: number; entryCount: number };
    try {
      // Typed `{}` by lmdb-js; the fields are LMDB's mdb_env_info and mdb_stat (lmdb src/env.cpp).
      stats = db.getStats() as typeof stats;
    } catch (error) {
      throw ioError('stats', error);
    }
    return {
      writeTransactions: stats.lastTxnId,
      sizeBytes: (stats.lastPageNumber + 1) * stats.pageSize,
      pageSizeBytes: stats.pageSize,
      entries: stats.entryCount,
    };
  }

  /** Waits for commits already started, then releases the environment. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const db = this.#db;
    if (db === undefined) return;
    this.#db = undefined;
    // lmdb-js's close() disables putSync at once, which would fail a transaction still queued.
    await Promise.allSettled(this.#inFlight);
    try {
      await db.close();
    } catch (error) {
      throw ioError('close', error);
    }
  }

  #open(): RootDatabase<Buffer, Buffer> {
    if (this.#db === undefined) throw new StoreError('STORE_CLOSED', 'store is closed');
    return this.#db;
  }
}

/**
 * The in-memory Store double for tests and for the pure core. The object outlives close(), so
 * a test can simulate a process restart with close() then reopen(): committed data survives,
 * exactly as it would on disk. failNextCommit() injects a disk failure.
 *
 * @example
 * const store = new MemoryStore();
 * store.failNextCommit();
 * await assert.rejects(store.commit([{ key: 'ch/1', value: bytes }])); // nothing stored
 * await store.close();
 * store.reopen(); // "after the restart"
 */
import type { Store, StoreEntry, StoreWrite } from './port.js';
import { compareBytes } from '../bytes.js';
import { StoreError, checkWrites, encodeKey } from './port.js';

export class MemoryStore implements Store {
  readonly #entries = new Map<string, { keyBytes: Uint8Array; value: Uint8Array }>();
  #closed = false;
  #commits = 0;
  #failure: { error: Error } | undefined;

  /** How many commits have been applied (failed or rejected ones do not count). */
  get commits(): number {
    return this.#commits;
  }

  /** Clear the closed flag, as if the process had restarted and opened the same store. */
  reopen(): void {
    this.#closed = false;
  }

  /**
   * Make the next valid commit reject with `error` (default: StoreError STORE_IO) and change
   * nothing. Batches rejected as malformed or closed do not use it up.
   */
  failNextCommit(error: Error = new StoreError('STORE_IO', 'injected commit failure')): void {
    this.#failure = { error };
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#checkOpen();
    encodeKey(key, 'key');
    const entry = this.#entries.get(key);
    return entry && new Uint8Array(entry.value);
  }

  async list(prefix: string): Promise<StoreEntry[]> {
    this.#checkOpen();
    encodeKey(prefix, 'prefix', true);
    return [...this.#entries]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([, a], [, b]) => compareBytes(a.keyBytes, b.keyBytes))
      .map(([key, { value }]) => ({ key, value: new Uint8Array(value) }));
  }

  async commit(writes: readonly StoreWrite[]): Promise<void> {
    this.#checkOpen();
    const checked = checkWrites(writes);
    const failure = this.#failure;
    if (failure) {
      this.#failure = undefined;
      throw failure.error;
    }
    for (const { key, keyBytes, value } of checked) {
      if (value === undefined) this.#entries.delete(key);
      else this.#entries.set(key, { keyBytes, value });
    }
    this.#commits++;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreError('STORE_CLOSED', 'store is closed');
  }
}

/**
 * The key's KeyStorage port (core/state.ts) on a file, for the emulator and the Raspberry Pi runner. The
 * state is one blob that must be replaced all or nothing: it holds the seed and the policy's high-water
 * marks, and a torn write would either lock the key or, worse, let it forget what it signed. So a commit
 * writes `<path>.tmp`, fsyncs it, renames it over `<path>` and fsyncs the directory: a crash at any point
 * leaves the old state or the new one, never a mix, and the new one is durable when commit() resolves.
 *
 * The files hold the seed: they are created 0600 in a directory created 0700.
 */
import { mkdir, open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { KeyStorage } from './core/state.js';

/**
 * Far above any real state (core/state.ts caps an encoded state at 1 MiB): a bigger file is not a key
 * state, and is refused before it is read into memory.
 */
const MAX_FILE_BYTES = 4 << 20;

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

export class FileKeyStorage implements KeyStorage {
  readonly path: string;
  readonly #tmpPath: string;
  readonly #dir: string;
  /** Commits run one at a time: two of them would share `<path>.tmp`. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError('"path" expected a non-empty string');
    if (path.includes('\0')) throw new TypeError('"path" must not contain NUL');
    this.path = path;
    this.#tmpPath = `${path}.tmp`;
    this.#dir = dirname(path);
  }

  /**
   * The last committed state, or undefined when none was ever committed. A leftover `<path>.tmp` (a crash
   * before its rename) is not looked at: it was never committed. Any error but a missing file rejects, so
   * the caller never mistakes an unreadable state for a fresh key.
   */
  async load(): Promise<Uint8Array | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, 'r');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      if (size > MAX_FILE_BYTES) throw new RangeError(`key state file ${this.path} is ${size} bytes, above ${MAX_FILE_BYTES}`);
      const buffer = await readFile(handle);
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } finally {
      await handle.close();
    }
  }

  /** Replaces the state atomically; durable when it resolves. */
  commit(state: Uint8Array): Promise<void> {
    if (!(state instanceof Uint8Array)) return Promise.reject(new TypeError('"state" expected Uint8Array'));
    // A copy: the caller may reuse its buffer while this commit waits its turn.
    const bytes = state.slice();
    const run = this.#queue.then(() => this.#commit(bytes));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #commit(bytes: Uint8Array): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    // A stale tmp from a crash may have other permissions (or be a link planted by someone else): remove
    // it and create a fresh one exclusively, so the mode is ours and nothing is followed.
    await unlinkIfPresent(this.#tmpPath);
    const handle = await open(this.#tmpPath, 'wx', 0o600);
    let renamed = false;
    try {
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(this.#tmpPath, this.path);
      renamed = true;
    } finally {
      if (!renamed) await unlinkIfPresent(this.#tmpPath).catch(() => undefined);
    }
    // The rename is durable only once the directory entry is.
    await syncDirectory(this.#dir);
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory for fsync; its rename is as durable as it gets there.
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

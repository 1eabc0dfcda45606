/**
 * FileKeyStorage (firmware-bridge/file-storage.ts), the key's state file for the emulator and the Pi
 * runner: round trip, a missing file, a crash's leftover `.tmp`, permissions, errors that must not pass
 * for "no state", and a child process SIGKILLed at random moments while it commits, after which the file
 * must hold one whole committed state. Nothing asserts a duration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileKeyStorage } from '../firmware-bridge/file-storage.js';
import { crashStateIndex } from './helpers/key-storage-child.js';

const root = fileURLToPath(new URL('..', import.meta.url));

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'trickle-key-storage-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

test('FileKeyStorage: a missing file loads as undefined; commits round-trip and replace', () =>
  withTempDir(async (dir) => {
    const storage = new FileKeyStorage(join(dir, 'key-state.bin'));
    assert.equal(await storage.load(), undefined);
    await storage.commit(bytes(1, 2, 3));
    assert.deepEqual(await storage.load(), bytes(1, 2, 3));
    await storage.commit(bytes(9));
    assert.deepEqual(await storage.load(), bytes(9));
    // A new instance (a restart) sees the same.
    assert.deepEqual(await new FileKeyStorage(join(dir, 'key-state.bin')).load(), bytes(9));
    // Nothing left behind but the state.
    assert.deepEqual(await readdir(dir), ['key-state.bin']);
  }));

test('FileKeyStorage: concurrent commits run in order, the last one stays', () =>
  withTempDir(async (dir) => {
    const storage = new FileKeyStorage(join(dir, 'key-state.bin'));
    const buffer = bytes(1);
    const first = storage.commit(buffer);
    buffer[0] = 2; // the caller reusing its buffer does not change what was handed over
    await Promise.all([first, storage.commit(bytes(3)), storage.commit(bytes(4, 4))]);
    assert.deepEqual(await storage.load(), bytes(4, 4));
  }));

test('FileKeyStorage: a leftover .tmp from a crash is ignored, then replaced', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'key-state.bin');
    const storage = new FileKeyStorage(path);
    await storage.commit(bytes(1, 1, 1));
    // A crash between writing the tmp and renaming it: the tmp is half a newer state, world-readable.
    await writeFile(`${path}.tmp`, bytes(2, 2), { mode: 0o644 });
    await chmod(`${path}.tmp`, 0o644);
    assert.deepEqual(await storage.load(), bytes(1, 1, 1));
    await storage.commit(bytes(3));
    assert.deepEqual(await storage.load(), bytes(3));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['key-state.bin']);
  }));

test('FileKeyStorage: the directory is created 0700, the file 0600', { skip: process.platform === 'win32' }, () =>
  withTempDir(async (dir) => {
    const stateDir = join(dir, 'a', 'state');
    const path = join(stateDir, 'key-state.bin');
    await new FileKeyStorage(path).commit(bytes(7));
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  }));

test('FileKeyStorage: read errors other than a missing file reject; misuse is a TypeError', () =>
  withTempDir(async (dir) => {
    // The state path is a directory: not "no state", an error the key must see.
    await mkdir(join(dir, 'key-state.bin'));
    await assert.rejects(new FileKeyStorage(join(dir, 'key-state.bin')).load(), (error: NodeJS.ErrnoException) => error.code === 'EISDIR');
    // A parent that is a file: the commit rejects.
    await writeFile(join(dir, 'file'), 'x');
    await assert.rejects(new FileKeyStorage(join(dir, 'file', 'key-state.bin')).commit(bytes(1)));
    assert.throws(() => new FileKeyStorage(''), TypeError);
    assert.throws(() => new FileKeyStorage(42 as unknown as string), TypeError);
    await assert.rejects(new FileKeyStorage(join(dir, 'x.bin')).commit('state' as unknown as Uint8Array), TypeError);
  }));

/** Runs the child on `path` until it has reported a commit, SIGKILLs it a moment later, returns what it reported. */
async function commitUntilKilled(path: string): Promise<number[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/key-storage-child.ts', path], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let armed = false;
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (armed) return;
    armed = true;
    // A random moment within the next commits, so the kill can land at any step of one (write, fsync,
    // rename, directory fsync); the test asserts nothing about where it lands.
    setTimeout(() => child.kill('SIGKILL'), Math.random() * 15);
  });
  assert.equal(await exited, 'SIGKILL', `child ended on its own: ${stderr}`);
  return stdout.split('\n').slice(0, -1).map(Number); // the last piece may be cut short
}

test('FileKeyStorage: SIGKILL at a random moment leaves one whole committed state (20 rounds)', { timeout: 120_000 }, () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'state', 'key-state.bin');
    const storage = new FileKeyStorage(path);
    let last: number | undefined;
    for (let round = 0; round < 20; round++) {
      const reported = await commitUntilKilled(path);
      const loaded = await storage.load();
      assert.ok(loaded !== undefined, `round ${round}: the state is gone`);
      const index = crashStateIndex(loaded);
      assert.ok(index !== undefined, `round ${round}: the file is not one whole state (${loaded.length} bytes)`);
      // Every commit reported resolved is there; at most the one under way at the kill went further.
      const floor = reported.length > 0 ? reported[reported.length - 1]! : last;
      if (floor === undefined) assert.ok(index <= 1, `round ${round}: loaded ${index}`);
      else assert.ok(index === floor || index === floor + 1, `round ${round}: loaded ${index}, last reported ${floor}`);
      if (reported.length > 0 && last !== undefined) assert.equal(reported[0], last + 1, `round ${round}: the child went on from the state it loaded`);
      last = index;
    }
  }));

/**
 * Child process for the hard-kill test in test/key-storage.test.ts: opens a FileKeyStorage at argv[2]
 * and commits states last+1, last+2, ... (from 0 when there is no state) one at a time until killed,
 * printing each index on its own line once its commit has resolved. Each state is recognisable and of
 * varying length, so a torn or mixed file would show.
 */
import { writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileKeyStorage } from '../../firmware-bridge/file-storage.js';

/** State i: its index (4 bytes, big-endian), then a pattern of 100 B to ~64 KiB depending on i. */
export function crashState(i: number): Uint8Array {
  const bytes = new Uint8Array(4 + 100 + ((i * 7919) % 65_000));
  new DataView(bytes.buffer).setUint32(0, i);
  for (let j = 4; j < bytes.length; j++) bytes[j] = (i * 131 + j * 7) & 0xff;
  return bytes;
}

/** The index of a whole crash state, or undefined when the bytes are not exactly one. */
export function crashStateIndex(bytes: Uint8Array): number | undefined {
  if (bytes.length < 4) return undefined;
  const i = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  const expected = crashState(i);
  if (expected.length !== bytes.length) return undefined;
  for (let j = 0; j < bytes.length; j++) if (expected[j] !== bytes[j]) return undefined;
  return i;
}

async function main(path: string): Promise<void> {
  const storage = new FileKeyStorage(path);
  const current = await storage.load();
  let next = 0;
  if (current !== undefined) {
    const index = crashStateIndex(current);
    if (index === undefined) throw new Error('the stored state is not a whole crash state');
    next = index + 1;
  }
  for (let i = next; ; i++) {
    await storage.commit(crashState(i));
    writeSync(1, `${i}\n`); // synchronous, so the parent sees only indexes whose commit resolved
  }
}

// Run only as a script: the test imports this file for the state layout.
const path = process.argv[2];
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && path !== undefined) {
  main(path).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}

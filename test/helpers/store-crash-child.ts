/**
 * Child process for the hard-kill test in test/store.test.ts: opens an LmdbStore at argv[2] and
 * commits records last+1, last+2, ... (from 0 in a new store) one at a time until killed,
 * printing each index on its own line once its commit has resolved. Each commit writes a record,
 * its index entry and the `last` pointer together, so the parent can tell a half-applied commit
 * from a whole one.
 */
import { writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LmdbStore } from '../../src/store/lmdb.js';

/** Record i: a recognisable pattern of varying length (4 to 40 KiB), so torn pages would show. */
export function crashRecord(i: number): Uint8Array {
  const bytes = new Uint8Array(4096 * (1 + (i % 10)));
  for (let j = 0; j < bytes.length; j++) bytes[j] = (i * 131 + j * 7) & 0xff;
  return bytes;
}

export const recordKey = (i: number): string => `rec/${String(i).padStart(8, '0')}`;
export const indexKey = (i: number): string => `idx/${String(i).padStart(8, '0')}`;
export const LAST_KEY = 'last';
export const encodeIndex = (i: number): Uint8Array => new TextEncoder().encode(String(i));

async function main(dir: string): Promise<void> {
  const store = await LmdbStore.open({ path: dir });
  const last = await store.get(LAST_KEY);
  for (let i = last === undefined ? 0 : Number(new TextDecoder().decode(last)) + 1; ; i++) {
    await store.commit([
      { key: recordKey(i), value: crashRecord(i) },
      { key: indexKey(i), value: encodeIndex(i) },
      { key: LAST_KEY, value: encodeIndex(i) },
    ]);
    writeSync(1, `${i}\n`); // synchronous, so the parent sees only indexes whose commit resolved
  }
}

// Run only as a script: the test imports this file for the record layout.
const dir = process.argv[2];
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && dir !== undefined) {
  main(dir).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}

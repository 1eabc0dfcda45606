/**
 * The Store port contract (src/store/port.ts), run against every adapter, plus what only one
 * adapter promises: MemoryStore's fault injection and LmdbStore's durability across a hard kill.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Store, StoreErrorCode } from '../src/store/port.js';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES, StoreError } from '../src/store/port.js';
import { MemoryStore } from '../src/store/memory.js';
import { LmdbStore } from '../src/store/lmdb.js';
import { LAST_KEY, crashRecord, encodeIndex, indexKey, recordKey } from './helpers/store-crash-child.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);
const isStoreError = (code: StoreErrorCode) => (error: unknown) =>
  error instanceof StoreError && error.name === 'StoreError' && error.code === code;

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'trickle-store-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** An adapter under test: a fresh store, and a "restart" that closes it and opens it again. */
interface Adapter {
  name: string;
  run(fn: (store: Store, restart: (store: Store) => Promise<Store>) => Promise<void>): Promise<void>;
}

const adapters: Adapter[] = [
  {
    name: 'MemoryStore',
    async run(fn) {
      await fn(new MemoryStore(), async (store) => {
        await store.close();
        (store as MemoryStore).reopen();
        return store;
      });
    },
  },
  {
    name: 'LmdbStore',
    async run(fn) {
      await withTempDir(async (dir) => {
        const path = join(dir, 'db');
        const opened: Store[] = [await LmdbStore.open({ path })];
        try {
          await fn(opened[0]!, async (store) => {
            await store.close();
            const again = await LmdbStore.open({ path });
            opened.push(again);
            return again;
          });
        } finally {
          for (const store of opened) await store.close();
        }
      });
    },
  },
];

for (const { name, run } of adapters) {
  test(`${name}: get returns what was committed, undefined for a missing key`, () =>
    run(async (store) => {
      assert.equal(await store.get('a'), undefined);
      await store.commit([{ key: 'a', value: bytes(1, 2, 3) }]);
      assert.deepEqual(await store.get('a'), bytes(1, 2, 3));
      await store.commit([{ key: 'a', value: bytes() }]); // empty value is a value, not a delete
      assert.deepEqual(await store.get('a'), bytes());
      await store.commit([]);
    }));

  test(`${name}: list returns one prefix in ascending UTF-8 key order, and no neighbour`, () =>
    run(async (store) => {
      const keys = ['ch/b', 'ch0', 'ch/a/x', 'cg', 'ch', 'ch/a', 'ci', 'ch/\uE000', 'ch/\u{1F600}', 'ch/\u0001', 'ch/a\u0000'];
      await store.commit(keys.map((key, i) => ({ key, value: bytes(i) })));
      const listed = async (prefix: string) => (await store.list(prefix)).map((e) => e.key);
      // UTF-8 order is code point order: U+E000 before U+1F600 (JS code unit order has the reverse).
      assert.deepEqual(await listed('ch/'), ['ch/\u0001', 'ch/a', 'ch/a\u0000', 'ch/a/x', 'ch/b', 'ch/\uE000', 'ch/\u{1F600}']);
      assert.deepEqual(await listed('ch'), ['ch', ...(await listed('ch/')), 'ch0']);
      assert.deepEqual(await listed('ch/a'), ['ch/a', 'ch/a\u0000', 'ch/a/x']);
      assert.deepEqual(await listed(''), ['cg', ...(await listed('ch')), 'ci']);
      assert.deepEqual(await listed('d'), []);
      assert.deepEqual(await listed('ch/c'), []);
      const entries = await store.list('ch/a');
      assert.deepEqual(entries[0], { key: 'ch/a', value: bytes(keys.indexOf('ch/a')) });
    }));

  test(`${name}: undefined deletes, and writes of one batch apply in order`, () =>
    run(async (store) => {
      await store.commit([
        { key: 'k/1', value: bytes(1) },
        { key: 'k/2', value: bytes(2) },
      ]);
      await store.commit([
        { key: 'k/1', value: undefined },
        { key: 'k/missing', value: undefined },
      ]);
      assert.equal(await store.get('k/1'), undefined);
      assert.deepEqual((await store.list('k/')).map((e) => e.key), ['k/2']);
      await store.commit([
        { key: 'k/2', value: undefined },
        { key: 'k/2', value: bytes(9) },
        { key: 'k/3', value: bytes(3) },
        { key: 'k/3', value: undefined },
      ]);
      assert.deepEqual(await store.list('k/'), [{ key: 'k/2', value: bytes(9) }]);
    }));

  test(`${name}: a batch with one bad write writes nothing`, () =>
    run(async (store) => {
      await store.commit([{ key: 'keep', value: bytes(1) }]);
      const good = { key: 'new', value: bytes(2) };
      const overwrite = { key: 'keep', value: bytes(3) };
      const bad: Array<[unknown, StoreErrorCode]> = [
        [{ key: '', value: bytes() }, 'STORE_BAD_KEY'],
        [{ key: 'é'.repeat(MAX_KEY_BYTES / 2) + 'a', value: bytes() }, 'STORE_BAD_KEY'], // 501 UTF-8 bytes
        [{ key: 'a\uD800b', value: bytes() }, 'STORE_BAD_KEY'],
        [{ key: 7, value: bytes() }, 'STORE_BAD_KEY'],
        [{ key: 'v', value: new Uint8Array(MAX_VALUE_BYTES + 1) }, 'STORE_BAD_VALUE'],
        [{ key: 'v', value: 'text' }, 'STORE_BAD_VALUE'],
        [{ key: 'v', value: null }, 'STORE_BAD_VALUE'],
        [null, 'STORE_BAD_VALUE'],
      ];
      for (const [i, [write, code]] of bad.entries()) {
        const batch = [good, overwrite, write, { key: 'after', value: bytes(4) }] as never;
        await assert.rejects(store.commit(batch), isStoreError(code), `bad write #${i}`);
      }
      assert.deepEqual(await store.list(''), [{ key: 'keep', value: bytes(1) }]);
      // the limits themselves are allowed
      const longKey = 'é'.repeat(MAX_KEY_BYTES / 2);
      const bigValue = new Uint8Array(MAX_VALUE_BYTES).fill(0xab);
      await store.commit([{ key: longKey, value: bigValue }, { key: '\u{1F600}', value: bytes(5) }]);
      assert.deepEqual(await store.get(longKey), bigValue);
      assert.deepEqual(await store.get('\u{1F600}'), bytes(5));
    }));

  test(`${name}: get and list reject a malformed key or prefix`, () =>
    run(async (store) => {
      await assert.rejects(store.get(''), isStoreError('STORE_BAD_KEY'));
      await assert.rejects(store.get('x'.repeat(MAX_KEY_BYTES + 1)), isStoreError('STORE_BAD_KEY'));
      await assert.rejects(store.list('\uDC00'), isStoreError('STORE_BAD_KEY'));
      await assert.rejects(store.list(undefined as never), isStoreError('STORE_BAD_KEY'));
    }));

  test(`${name}: values are copied in and out`, () =>
    run(async (store) => {
      const input = bytes(1, 2, 3);
      const pending = store.commit([{ key: 'a', value: input }]);
      input[0] = 99; // before the commit resolves
      await pending;
      input[1] = 99;
      assert.deepEqual(await store.get('a'), bytes(1, 2, 3));

      const got = (await store.get('a'))!;
      got[0] = 42;
      const [listed] = await store.list('a');
      listed!.value[1] = 42;
      assert.deepEqual(await store.get('a'), bytes(1, 2, 3));

      // a view into a larger buffer stores only the view's bytes
      const backing = Buffer.from([7, 8, 9, 10, 11]);
      await store.commit([{ key: 'view', value: backing.subarray(1, 3) }]);
      backing.fill(0);
      assert.deepEqual(await store.get('view'), bytes(8, 9));
      assert.equal(Buffer.isBuffer(await store.get('view')), false);
    }));

  test(`${name}: a closed store rejects everything with STORE_CLOSED; close twice is fine`, () =>
    run(async (store) => {
      await store.commit([{ key: 'a', value: bytes(1) }]);
      await store.close();
      await store.close();
      await assert.rejects(store.get('a'), isStoreError('STORE_CLOSED'));
      await assert.rejects(store.list(''), isStoreError('STORE_CLOSED'));
      await assert.rejects(store.commit([{ key: 'b', value: bytes(2) }]), isStoreError('STORE_CLOSED'));
      await assert.rejects(store.commit([{ key: '', value: bytes(2) }]), isStoreError('STORE_CLOSED'));
    }));

  test(`${name}: committed data survives close and reopen, including a commit under way at close`, () =>
    run(async (store, restart) => {
      await store.commit([
        { key: 'ch/1', value: bytes(1) },
        { key: 'ch/2', value: bytes(2) },
      ]);
      await store.commit([{ key: 'ch/1', value: undefined }]);
      const underWay = store.commit([{ key: 'ch/3', value: bytes(3) }]);
      const reopened = await restart(store);
      await underWay;
      assert.deepEqual(await reopened.list('ch/'), [
        { key: 'ch/2', value: bytes(2) },
        { key: 'ch/3', value: bytes(3) },
      ]);
      await reopened.commit([{ key: 'ch/4', value: bytes(4) }]);
      assert.deepEqual(await reopened.get('ch/4'), bytes(4));
    }));
}

test('MemoryStore: failNextCommit rejects the next valid commit and changes nothing', async () => {
  const store = new MemoryStore();
  await store.commit([{ key: 'a', value: bytes(1) }]);
  assert.equal(store.commits, 1);

  store.failNextCommit();
  await assert.rejects(store.commit([{ key: '', value: bytes() }]), isStoreError('STORE_BAD_KEY')); // not used up
  await assert.rejects(
    store.commit([
      { key: 'a', value: undefined },
      { key: 'b', value: bytes(2) },
    ]),
    isStoreError('STORE_IO'),
  );
  assert.deepEqual(await store.list(''), [{ key: 'a', value: bytes(1) }]);
  assert.equal(store.commits, 1);

  const custom = new Error('disk full');
  store.failNextCommit(custom);
  await assert.rejects(store.commit([{ key: 'b', value: bytes(2) }]), (error) => error === custom);
  assert.equal(await store.get('b'), undefined);

  await store.commit([{ key: 'b', value: bytes(2) }]); // only the next one fails
  assert.deepEqual(await store.get('b'), bytes(2));
  assert.equal(store.commits, 2);
});

test('LmdbStore: open creates the directory 0o700 (even with a dot in its name) and checks its options', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'nested', 'state.db');
    const store = await LmdbStore.open({ path, mapSizeBytes: 1 << 20 });
    try {
      assert.ok((await stat(path)).isDirectory());
      assert.equal((await stat(path)).mode & 0o777, 0o700);
      assert.equal((await stat(join(path, 'data.mdb'))).mode & 0o777, 0o600);
      // the map grows past its initial size
      const big = new Uint8Array(MAX_VALUE_BYTES).fill(1);
      await store.commit([1, 2, 3].map((i) => ({ key: `big/${i}`, value: big })));
      assert.equal((await store.list('big/')).length, 3);
    } finally {
      await store.close();
    }
    await assert.rejects(LmdbStore.open({ path: '' }), TypeError);
    await assert.rejects(LmdbStore.open({ path, mapSizeBytes: 0 }), RangeError);
    await assert.rejects(LmdbStore.open({ path, mapSizeBytes: 1.5 }), RangeError);
  }));

test('LmdbStore: an open failure is STORE_IO', () =>
  withTempDir(async (dir) => {
    const file = join(dir, 'file');
    await (await import('node:fs/promises')).writeFile(file, 'not a directory');
    await assert.rejects(LmdbStore.open({ path: join(file, 'db') }), isStoreError('STORE_IO'));
  }));

test('LmdbStore: stats counts committed write transactions, and concurrent commits may share one', () =>
  withTempDir(async (dir) => {
    const store = await LmdbStore.open({ path: join(dir, 'db') });
    try {
      const start = store.stats();
      for (let i = 0; i < 3; i++) await store.commit([{ key: `seq/${i}`, value: bytes(i) }]);
      const afterSequential = store.stats();
      assert.equal(afterSequential.writeTransactions - start.writeTransactions, 3, 'one transaction per awaited commit');
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.commit([{ key: `con/${i}`, value: bytes(i) }])));
      const grouped = store.stats().writeTransactions - afterSequential.writeTransactions;
      assert.ok(grouped >= 1 && grouped < 20, `20 concurrent commits took ${grouped} write transactions`);
      const { sizeBytes, pageSizeBytes, entries } = store.stats();
      assert.equal(entries, 23);
      assert.equal(sizeBytes % pageSizeBytes, 0);
      assert.equal(sizeBytes, (await stat(join(dir, 'db', 'data.mdb'))).size, 'the high-water mark is the file length');
    } finally {
      await store.close();
    }
    assert.throws(() => store.stats(), isStoreError('STORE_CLOSED'));
  }));

/** Run the crash child on `dir` until it has reported `count` commits, SIGKILL it, return what it reported. */
async function commitUntilKilled(dir: string, count: number): Promise<number[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/store-crash-child.ts', dir], {
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
    if (armed || stdout.split('\n').length <= count) return;
    armed = true;
    // At a random moment within the next few commits, so the kill can land at any step of one
    // (the test asserts nothing about when it lands).
    setTimeout(() => child.kill('SIGKILL'), Math.random() * 20);
  });
  assert.equal(await exited, 'SIGKILL', `child ended on its own: ${stderr}`);
  return stdout.split('\n').slice(0, -1).map(Number); // the last piece may be cut short
}

test('LmdbStore: every commit the child saw resolve survives SIGKILL, whole', { timeout: 30_000 }, () =>
  withTempDir(async (dir) => {
    let expectedFirst = 0;
    for (let round = 0; round < 2; round++) {
      const reported = await commitUntilKilled(dir, 30);
      assert.ok(reported.length >= 30);
      assert.deepEqual(reported, reported.map((_, i) => expectedFirst + i), 'consecutive, after the last survivor');
      const lastReported = reported[reported.length - 1]!;

      const store = await LmdbStore.open({ path: dir });
      try {
        const last = Number(new TextDecoder().decode(await store.get(LAST_KEY)));
        assert.ok(last >= lastReported, `last ${last} < reported ${lastReported}`);
        // Records 0..last are all there, intact, each with its index entry; nothing beyond last.
        const records = await store.list('rec/');
        const indexes = await store.list('idx/');
        assert.equal(records.length, last + 1, 'records');
        assert.equal(indexes.length, last + 1, 'index entries');
        for (let i = 0; i <= last; i++) {
          assert.equal(records[i]!.key, recordKey(i));
          assert.deepEqual(records[i]!.value, crashRecord(i), `record ${i}`);
          assert.deepEqual(indexes[i], { key: indexKey(i), value: encodeIndex(i) });
        }
        expectedFirst = last + 1;
      } finally {
        await store.close();
      }
    }
  }));

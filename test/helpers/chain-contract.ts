/**
 * The ChainSource contract: what every chain backend (the in-process Simnet, the simnet server's client,
 * bitcoind JSON-RPC, Esplora) must do the same way, because channels depend on it. Each backend runs
 * it with a harness whose chain is backed by a Simnet the test drives directly (coins, blocks,
 * reorgs, spends by someone else). Real signed transactions throughout.
 *
 * Where backends differ by nature, the harness says so:
 *   - seesForeignMempoolSpends: a spend broadcast by someone else is visible before it confirms
 *     (bitcoind without getrawmempool sees it once confirmed);
 *   - reportsEarlierSpends: watching an outpoint already spent gives a 'spent' event (pollers do; the
 *     in-process Simnet reports only later spends, and getSpend answers for earlier ones).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChainEvent, ChainSource, OutPoint } from '../../src/chain/port.js';
import type { Simnet } from '../../src/chain/simnet/simnet.js';
import { compileScript, opcodes } from '../../src/onchain/script.js';
import { P2wpkhKeys, accepted, rejected, txidOf } from './p2wpkh.js';

export interface ChainHarness {
  chain: ChainSource;
  /** The chain behind the backend, driven directly by the test. */
  simnet: Simnet;
  /** Bring the backend's events up to date (a poll for pollers; nothing in process). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface ChainContractOptions {
  seesForeignMempoolSpends: boolean;
  reportsEarlierSpends: boolean;
}

const COIN_SAT = 100_000n;
const FEE_SAT = 1_000n;

export function chainContract(name: string, makeHarness: () => Promise<ChainHarness>, options: ChainContractOptions): void {
  describe(`ChainSource contract: ${name}`, () => {
    let keysPromise: Promise<P2wpkhKeys> | undefined;
    const keys = () => (keysPromise ??= P2wpkhKeys.create(0x5c));

    async function withHarness(fn: (h: ChainHarness, k: P2wpkhKeys, events: ChainEvent[]) => Promise<void>): Promise<void> {
      const h = await makeHarness();
      const events: ChainEvent[] = [];
      const unsubscribe = h.chain.subscribe((e) => events.push(e));
      try {
        await h.sync(); // pollers take their baseline here
        await fn(h, await keys(), events);
      } finally {
        unsubscribe();
        await h.close();
      }
    }

    /** A confirmed 100k-sat coin of key 0, made by the test (not through the backend). */
    async function coin(h: ChainHarness, k: P2wpkhKeys): Promise<OutPoint> {
      return h.simnet.faucet(k.scripts[0]!, COIN_SAT);
    }

    const payTo = (k: P2wpkhKeys, valueSat = COIN_SAT - FEE_SAT) => [{ script: k.scripts[1]!, valueSat }];

    test('tip height and one block event per new block, ascending, with the block hash', async () => {
      await withHarness(async (h, _k, events) => {
        const before = await h.chain.tipHeight();
        assert.equal(before, await h.simnet.tipHeight());
        await h.simnet.mine(3);
        await h.sync();
        assert.equal(await h.chain.tipHeight(), before + 3);
        const blocks = events.filter((e) => e.type === 'block');
        assert.deepEqual(blocks, [1, 2, 3].map((i) => ({ type: 'block', height: before + i, hash: h.simnet.getBlock(before + i)!.hash })));
      });
    });

    test('broadcast, then the transaction in the mempool, then confirmed with a growing depth', async () => {
      await withHarness(async (h, k) => {
        const c = await coin(h, k);
        const raw = await k.spend([{ outpoint: c, valueSat: COIN_SAT }], payTo(k));
        const result = await h.chain.broadcast(raw);
        assert.deepEqual(result, { accepted: true, txid: txidOf(raw) });
        assert.deepEqual(await h.chain.getTransaction(result.txid), { tx: raw, blockHeight: undefined, confirmations: 0 });
        await h.simnet.mine(1);
        await h.sync();
        const height = await h.simnet.tipHeight();
        assert.deepEqual(await h.chain.getTransaction(result.txid), { tx: raw, blockHeight: height, confirmations: 1 });
        await h.simnet.mine(1);
        await h.sync();
        assert.equal((await h.chain.getTransaction(result.txid))?.confirmations, 2);
        assert.equal(await h.chain.getTransaction('ab'.repeat(32)), undefined);
      });
    });

    test('getUtxo: confirmed, unconfirmed, spent and unknown outputs', async () => {
      await withHarness(async (h, k) => {
        const c = await coin(h, k);
        const coinHeight = await h.simnet.tipHeight();
        assert.deepEqual(await h.chain.getUtxo(c), { output: { valueSat: COIN_SAT, script: k.scripts[0] }, blockHeight: coinHeight, confirmations: 1 });
        const raw = await k.spend([{ outpoint: c, valueSat: COIN_SAT }], payTo(k));
        const txid = accepted(await h.chain.broadcast(raw));
        assert.equal(await h.chain.getUtxo(c), undefined, 'spent in the mempool');
        assert.deepEqual(await h.chain.getUtxo({ txid, vout: 0 }), {
          output: { valueSat: COIN_SAT - FEE_SAT, script: k.scripts[1] }, blockHeight: undefined, confirmations: 0,
        });
        assert.equal(await h.chain.getUtxo({ txid, vout: 1 }), undefined, 'no such output');
        assert.equal(await h.chain.getUtxo({ txid: 'cd'.repeat(32), vout: 0 }), undefined, 'no such transaction');
        await h.simnet.mine(2);
        await h.sync();
        assert.deepEqual(await h.chain.getUtxo({ txid, vout: 0 }), {
          output: { valueSat: COIN_SAT - FEE_SAT, script: k.scripts[1] }, blockHeight: coinHeight + 1, confirmations: 2,
        });
      });
    });

    test('getSpend and spent events for a watched outpoint: mempool, then confirmed before its block', async () => {
      await withHarness(async (h, k, events) => {
        const c = await coin(h, k);
        h.chain.watchOutpoint(c);
        await h.sync();
        assert.equal(await h.chain.getSpend(c), undefined);
        const raw = await k.spend([{ outpoint: c, valueSat: COIN_SAT }], payTo(k));
        const txid = accepted(await h.chain.broadcast(raw));
        await h.sync();
        assert.deepEqual(await h.chain.getSpend(c), { txid, inputIndex: 0, blockHeight: undefined });
        assert.deepEqual(events.filter((e) => e.type === 'spent'), [{ type: 'spent', outpoint: c, spend: { txid, inputIndex: 0, blockHeight: undefined } }]);
        events.length = 0;
        await h.simnet.mine(1);
        await h.sync();
        const height = await h.simnet.tipHeight();
        assert.deepEqual(await h.chain.getSpend(c), { txid, inputIndex: 0, blockHeight: height });
        assert.deepEqual(events, [
          { type: 'spent', outpoint: c, spend: { txid, inputIndex: 0, blockHeight: height } },
          { type: 'block', height, hash: h.simnet.getBlock(height)!.hash },
        ]);
      });
    });

    test('a spend broadcast by someone else is reported (at the latest once confirmed)', async () => {
      await withHarness(async (h, k, events) => {
        const c = await coin(h, k);
        h.chain.watchOutpoint(c);
        await h.sync();
        const raw = await k.spend([{ outpoint: c, valueSat: COIN_SAT }], payTo(k));
        const txid = accepted(await h.simnet.broadcast(raw));
        await h.sync();
        const early = events.filter((e) => e.type === 'spent');
        if (options.seesForeignMempoolSpends) {
          assert.deepEqual(early, [{ type: 'spent', outpoint: c, spend: { txid, inputIndex: 0, blockHeight: undefined } }]);
        } else {
          assert.deepEqual(early, []);
        }
        await h.simnet.mine(1);
        await h.sync();
        const height = await h.simnet.tipHeight();
        assert.deepEqual(events.filter((e) => e.type === 'spent').at(-1), { type: 'spent', outpoint: c, spend: { txid, inputIndex: 0, blockHeight: height } });
        assert.deepEqual(await h.chain.getSpend(c), { txid, inputIndex: 0, blockHeight: height });
        assert.deepEqual(await h.chain.getTransaction(txid), { tx: raw, blockHeight: height, confirmations: 1 });
      });
    });

    test('an outpoint spent before it was watched: getSpend finds the confirmed spend', async () => {
      await withHarness(async (h, k, events) => {
        const c = await coin(h, k);
        const raw = await k.spend([{ outpoint: c, valueSat: COIN_SAT }], payTo(k));
        const txid = accepted(await h.simnet.broadcast(raw));
        await h.simnet.mine(3);
        await h.sync();
        const height = (await h.simnet.tipHeight()) - 2;
        h.chain.watchOutpoint(c);
        assert.deepEqual(await h.chain.getSpend(c), { txid, inputIndex: 0, blockHeight: height });
        await h.sync();
        const spent = events.filter((e) => e.type === 'spent');
        assert.deepEqual(spent, options.reportsEarlierSpends ? [{ type: 'spent', outpoint: c, spend: { txid, inputIndex: 0, blockHeight: height } }] : []);
      });
    });

    test('rejections carry the reject code and reason, and the txid', async () => {
      await withHarness(async (h, k) => {
        const [c1, c2, c3] = [await coin(h, k), await coin(h, k), await coin(h, k)];
        const tip = await h.simnet.tipHeight();
        const check = async (raw: Uint8Array, code: string, reason: RegExp) => {
          const r = rejected(await h.chain.broadcast(raw));
          assert.equal(r.code, code, r.reason);
          assert.match(r.reason, reason);
          assert.equal(r.txid, txidOf(raw));
        };
        // nLockTime in the future (a refund before its time).
        await check(await k.spend([{ outpoint: c1, valueSat: COIN_SAT, sequence: 0xfffffffe }], payTo(k), { locktime: tip + 10 }), 'non-final', /^non-final/);
        // BIP 68: a relative lock of 5 blocks on a 3-block-old coin.
        await check(await k.spend([{ outpoint: c1, valueSat: COIN_SAT, sequence: 5 }], payTo(k)), 'non-BIP68-final', /^non-BIP68-final/);
        // A signature by the wrong key.
        await check(await k.spend([{ outpoint: c1, valueSat: COIN_SAT, signWith: 2 }], payTo(k)), 'mandatory-script-verify-flag-failed', /^mandatory-script-verify-flag-failed/);
        // Spending an outpoint that does not exist.
        await check(await k.spend([{ outpoint: { txid: 'ee'.repeat(32), vout: 0 }, valueSat: COIN_SAT }], payTo(k)), 'bad-txns-inputs-missingorspent', /missing|spent/i);
        // A double spend of a coin spent in the mempool.
        const first = await k.spend([{ outpoint: c2, valueSat: COIN_SAT }], payTo(k));
        accepted(await h.chain.broadcast(first));
        await check(await k.spend([{ outpoint: c2, valueSat: COIN_SAT }], payTo(k, COIN_SAT - 2n * FEE_SAT)), 'txn-mempool-conflict', /^txn-mempool-conflict/);
        // The same transaction again while it is in the mempool: accepted again or 'already in mempool'.
        const again = await h.chain.broadcast(first);
        assert.ok(again.accepted || again.code === 'txn-already-in-mempool', JSON.stringify(again));
        assert.equal(again.txid, txidOf(first));
        // A confirmed transaction whose output is unspent: already known.
        const confirmed = await k.spend([{ outpoint: c3, valueSat: COIN_SAT }], payTo(k));
        accepted(await h.chain.broadcast(confirmed));
        await h.simnet.mine(1);
        await h.sync();
        await check(confirmed, 'txn-already-known', /.+/);
        // Bytes that are not a transaction.
        const garbage = rejected(await h.chain.broadcast(Uint8Array.of(1, 2, 3)));
        assert.equal(garbage.code, 'tx-decode-failed');
      });
    });

    test('a fee estimate in sat per 1000 weight units, at least the 253 floor', async () => {
      await withHarness(async (h) => {
        const feerate = await h.chain.estimateFeeratePerKw(6);
        assert.equal(typeof feerate, 'bigint');
        assert.ok(feerate >= 253n, String(feerate));
        await assert.rejects(() => h.chain.estimateFeeratePerKw(0), RangeError);
      });
    });

    test('a reorg: the confirmation disappears, the spend is back in the mempool, then confirms in the new chain', async () => {
      await withHarness(async (h, k, events) => {
        const c = await coin(h, k);
        h.chain.watchOutpoint(c);
        const raw = await k.spend([{ outpoint: c, valueSat: COIN_SAT }], payTo(k));
        const txid = accepted(await h.chain.broadcast(raw));
        await h.simnet.mine(2);
        await h.sync();
        const tip = await h.simnet.tipHeight();
        const height = tip - 1;
        const orphaned = [h.simnet.getBlock(tip)!.hash, h.simnet.getBlock(height)!.hash];
        assert.deepEqual(await h.chain.getSpend(c), { txid, inputIndex: 0, blockHeight: height });
        events.length = 0;

        h.simnet.invalidateBlock(orphaned[1]!);
        await h.sync();
        const reorg = events.find((e) => e.type === 'reorg');
        assert.deepEqual(reorg, { type: 'reorg', forkHeight: height - 1, disconnected: [{ height: tip, hash: orphaned[0] }, { height, hash: orphaned[1] }] });
        assert.equal(await h.chain.tipHeight(), height - 1);
        assert.deepEqual(await h.chain.getTransaction(txid), { tx: raw, blockHeight: undefined, confirmations: 0 });
        assert.deepEqual(await h.chain.getSpend(c), { txid, inputIndex: 0, blockHeight: undefined });
        assert.deepEqual(events.filter((e) => e.type === 'spent'), [{ type: 'spent', outpoint: c, spend: { txid, inputIndex: 0, blockHeight: undefined } }]);
        events.length = 0;

        // The new chain: an empty block first, the spend one block later than before.
        const mempool = h.simnet.mempool();
        for (const id of mempool) h.simnet.evict(id);
        await h.simnet.mine(1);
        accepted(await h.simnet.broadcast(raw));
        await h.simnet.mine(1);
        await h.sync();
        const newHeight = height + 1;
        assert.notEqual(h.simnet.getBlock(height)!.hash, orphaned[1]);
        assert.deepEqual(await h.chain.getSpend(c), { txid, inputIndex: 0, blockHeight: newHeight });
        assert.deepEqual(await h.chain.getTransaction(txid), { tx: raw, blockHeight: newHeight, confirmations: 1 });
        assert.deepEqual(events.filter((e) => e.type === 'block').map((e) => e.type === 'block' && e.height), [height, newHeight]);
        assert.deepEqual(events.filter((e) => e.type === 'spent').at(-1), { type: 'spent', outpoint: c, spend: { txid, inputIndex: 0, blockHeight: newHeight } });
      });
    });

    test('a reorg that drops a spend: the outpoint is unspent again', async () => {
      await withHarness(async (h, k, events) => {
        const c = await coin(h, k);
        h.chain.watchOutpoint(c);
        const raw = await k.spend([{ outpoint: c, valueSat: COIN_SAT }], payTo(k));
        const txid = accepted(await h.chain.broadcast(raw));
        await h.simnet.mine(1);
        await h.sync();
        const height = await h.simnet.tipHeight();
        h.simnet.invalidateBlock(h.simnet.getBlock(height)!.hash);
        assert.deepEqual(h.simnet.evict(txid), [txid]);
        await h.simnet.mine(2);
        await h.sync();
        assert.ok(events.some((e) => e.type === 'reorg' && e.forkHeight === height - 1));
        assert.equal(await h.chain.getSpend(c), undefined);
        assert.equal(await h.chain.getTransaction(txid), undefined);
        assert.deepEqual(await h.chain.getUtxo(c), { output: { valueSat: COIN_SAT, script: k.scripts[0] }, blockHeight: height - 1, confirmations: 3 });
      });
    });

    test('an unspendable output script is never reported as a coin', async () => {
      await withHarness(async (h, k) => {
        const c = await coin(h, k);
        const opReturn = compileScript([opcodes.OP_RETURN, new Uint8Array([1, 2, 3])]);
        const raw = await k.spend([{ outpoint: c, valueSat: COIN_SAT }], [...payTo(k), { script: opReturn, valueSat: 0n }]);
        const txid = accepted(await h.chain.broadcast(raw));
        await h.simnet.mine(1);
        await h.sync();
        assert.equal(await h.chain.getUtxo({ txid, vout: 1 }), undefined);
      });
    });
  });
}

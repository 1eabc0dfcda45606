/**
 * Reports of a funding spend that reach the channel out of order (found by the issue 8 soak: a unilateral
 * closer recorded its commitment as unconfirmed after it had confirmed, never swept its to_local and never
 * closed). The runtime fetches each reported spend's transaction before feeding it; the mempool sighting's
 * fetch can finish after the confirmation's. Neither the late report nor the machine may undo the
 * confirmation: the to_local sweep's BIP 68 delay counts from it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simnet } from '../src/chain/simnet/index.js';
import type { ChainSource, TxStatus } from '../src/chain/port.js';
import { memoryNet, openChannel, startRsmcPair, untilQuiescent, RSMC_TEST_POLICY } from './helpers/rsmc-parties.js';
import { until } from './helpers/session-nodes.js';

/** The Simnet as A's node sees it, except that the first fetch of `held.txid` waits for `held.release()`. */
function chainHoldingFirstFetch(chain: Simnet, held: { txid?: string; waiting: number; gate: Promise<void> }): ChainSource {
  return {
    tipHeight: () => chain.tipHeight(),
    broadcast: (tx) => chain.broadcast(tx),
    async getTransaction(txid): Promise<TxStatus | undefined> {
      const status = await chain.getTransaction(txid);
      if (txid === held.txid && held.waiting++ === 0) await held.gate;
      return status;
    },
    getUtxo: (outpoint) => chain.getUtxo(outpoint),
    getSpend: (outpoint) => chain.getSpend(outpoint),
    estimateFeeratePerKw: (target) => chain.estimateFeeratePerKw(target),
    watchOutpoint: (outpoint) => chain.watchOutpoint(outpoint),
    subscribe: (listener) => chain.subscribe(listener),
  };
}

test('a mempool sighting of the closing commitment fed after its confirmation undoes nothing: the closer sweeps to_local after to_self_delay and closes', async () => {
  const chain = new Simnet();
  let release!: () => void;
  const held = { txid: undefined as string | undefined, waiting: 0, gate: new Promise<void>((r) => (release = r)) };
  const pair = await startRsmcPair({ net: memoryNet(), chain, nodeA: { chain: chainHoldingFirstFetch(chain, held) } });
  try {
    const { a, b } = await openChannel(pair, { localSat: 200_000n });
    await a.pay(70_000_000n);
    await untilQuiescent(a, b);

    held.txid = a.snapshot().localCommit!.txid;
    const closing = a.close({ cooperative: false });
    await until(() => chain.mempool().includes(held.txid!), 'A’s commitment in the mempool');
    await until(() => held.waiting === 1, 'A fetching its commitment for the mempool sighting');

    // The confirmation is reported and fed while the mempool sighting's fetch still hangs.
    await pair.mine(1);
    const confirmedAt = await chain.tipHeight();
    await until(() => a.snapshot().closing?.confirmedHeight === confirmedAt, 'A recording the confirmation');
    assert.equal(a.snapshot().closing!.kind, 'local-latest');

    release();
    await until(() => held.waiting >= 2, 'the confirmation fetched');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(a.snapshot().closing!.confirmedHeight, confirmedAt, 'the late mempool sighting left the confirmation alone');
    const toLocal = a.snapshot().closing!.pending.find((p) => p.purpose === 'to-local-sweep');
    assert.ok(toLocal);
    assert.equal(toLocal.validFromHeight, confirmedAt + RSMC_TEST_POLICY.toSelfDelay!);

    for (let i = 0; i < 20 && (a.phase !== 'closed' || b.phase !== 'closed'); i++) await pair.mine(1);
    assert.equal(a.phase, 'closed', 'A swept its to_local and closed');
    assert.equal(b.phase, 'closed');
    const outcome = await closing;
    assert.equal(outcome.kind, 'unilateral-close');
    assert.equal(outcome.closingTxid, held.txid);
    assert.equal(outcome.blockHeight, confirmedAt);
    // The to_local output less the sweep's fee.
    assert.ok(outcome.localReceivedSat < toLocal.valueSat && outcome.localReceivedSat > toLocal.valueSat - 2_000n, `A received ${outcome.localReceivedSat} of ${toLocal.valueSat}`);
  } finally {
    release();
    await pair.stop();
  }
});

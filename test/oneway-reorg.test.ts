/**
 * One-way channels across chain reorganisations: a channel records its outcome only once the funding
 * spend is `closeDepth` deep, a reorganisation that removes the spend's block sends it back to waiting,
 * and one that comes after the outcome was recorded is reported (REORG_AFTER_CLOSE), never a crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OnewayLogEntry } from '../src/channel/oneway/node.js';
import { until } from './helpers/session-nodes.js';
import { openPaidChannel, stopParty } from './helpers/oneway-parties.js';

async function paidChannelWithLogs(closeDepth: number) {
  const logs: OnewayLogEntry[] = [];
  const opened = await openPaidChannel({ closeDepth, log: (e: OnewayLogEntry) => logs.push(e) });
  return { ...opened, logs };
}

test('the outcome waits for closeDepth; a reorg that removes the settlement block sends both sides back to waiting', async () => {
  const { chain, provider, device, channel, logs } = await paidChannelWithLogs(3);
  const closing = channel.close();
  await until(() => chain.mempool().length > 0, 'settlement broadcast');
  const [settlementTxid] = chain.mempool();
  const [first] = await chain.mine(2);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(channel.phase, 'closing', 'two confirmations of three: not closed yet');

  // The two blocks are replaced; the settlement goes back to the mempool, and is then left out of
  // the new chain's first block.
  chain.invalidateBlock(first!);
  assert.deepEqual(chain.mempool(), [settlementTxid]);
  chain.evict(settlementTxid!);
  await chain.mine(2);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(channel.phase, 'closing');
  assert.equal(provider.node.channel(channel.id)!.phase, 'closing');
  assert.ok(logs.some((e) => /reorganisation/.test(e.msg)));

  // The payee re-broadcasts its settlement at the next block (it is still closing); three blocks later it is final.
  await until(() => chain.mempool().includes(settlementTxid!), 'settlement re-broadcast');
  const [confirmedIn] = await chain.mine(1);
  await chain.mine(2);
  const outcome = await closing;
  assert.equal(outcome?.kind, 'settled');
  assert.equal(outcome?.txid, settlementTxid);
  assert.equal((await chain.getSpend(channel.snapshot().fundingOutpoint!))?.blockHeight, chain.getBlockByHash(confirmedIn!)!.height);
  await until(() => provider.node.channel(channel.id)!.phase === 'closed', 'payee closed');
  await stopParty(device);
  await stopParty(provider);
});

test('a reorg deeper than closeDepth after the outcome is recorded is reported, not a crash', async () => {
  const { chain, provider, device, channel, logs } = await paidChannelWithLogs(1);
  const closing = channel.close();
  await until(() => chain.mempool().length > 0, 'settlement broadcast');
  const [block] = await chain.mine(1);
  assert.equal((await closing)?.kind, 'settled');
  chain.invalidateBlock(block!);
  await until(() => logs.some((e) => e.code === 'REORG_AFTER_CLOSE'), 'reorg warning');
  assert.equal(channel.phase, 'closed');
  await stopParty(device);
  await stopParty(provider);
});

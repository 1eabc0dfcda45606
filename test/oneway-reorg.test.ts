/**
 * One-way channels across chain reorganisations: a channel records its outcome only once the funding
 * spend is `closeDepth` deep, a reorganisation that removes the spend's block sends it back to waiting,
 * and one that comes after the outcome was recorded is reported (REORG_AFTER_CLOSE), never a crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simnet } from '../src/chain/simnet/index.js';
import { InMemoryBroker } from '../src/transport/memory.js';
import type { OnewayLogEntry } from '../src/channel/oneway/node.js';
import { until } from './helpers/session-nodes.js';
import { OFFER, fundWallet, memoryTransport, startParty, stopParty } from './helpers/oneway-parties.js';

async function openPaidChannel(closeDepth: number) {
  const chain = new Simnet();
  const broker = new InMemoryBroker();
  const logs: OnewayLogEntry[] = [];
  const node = { closeDepth, log: (e: OnewayLogEntry) => logs.push(e) };
  const provider = await startParty({ seed: 1, chain, transport: memoryTransport(broker), offers: [OFFER], node });
  const device = await startParty({ seed: 2, chain, transport: memoryTransport(broker), node });
  await fundWallet(chain, device, 1_000_000n);
  await until(() => device.messenger.directory().has(provider.messenger.nodeId), 'announcement');
  const opening = device.node.open(provider.messenger.nodeId, { capacitySat: 200_000n, expiryBlocks: 100 });
  await until(() => chain.mempool().length > 0, 'funding broadcast');
  await chain.mine(1);
  const channel = await opening;
  await channel.pay(3_000_000n);
  return { chain, provider, device, channel, logs };
}

test('the outcome waits for closeDepth; a reorg that removes the settlement block sends both sides back to waiting', async () => {
  const { chain, provider, device, channel, logs } = await openPaidChannel(3);
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
  const { chain, provider, device, channel, logs } = await openPaidChannel(1);
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

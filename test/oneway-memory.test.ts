import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simnet } from '../src/chain/simnet/index.js';
import { InMemoryBroker } from '../src/transport/memory.js';
import { until } from './helpers/session-nodes.js';
import { OFFER, fundWallet, memoryTransport, openOnewayChannel, startParty, stopParty } from './helpers/oneway-parties.js';

test('lifecycle in memory: open, pay, close, settled on chain', async () => {
  const chain = new Simnet();
  const broker = new InMemoryBroker();
  const provider = await startParty({ seed: 1, chain, transport: memoryTransport(broker), offers: [OFFER] });
  const device = await startParty({ seed: 2, chain, transport: memoryTransport(broker) });
  const ch = await openOnewayChannel(chain, provider, device);
  assert.equal(ch.phase, 'open');
  for (let i = 0; i < 5; i++) await ch.pay(1_000_000n);
  assert.equal(ch.paidMsat, 5_000_000n);
  const payeeCh = provider.node.channel(ch.id)!;
  assert.equal(payeeCh.paidMsat, 5_000_000n);
  const closing = ch.close();
  await until(() => chain.mempool().length > 0, 'settlement broadcast');
  await chain.mine(1);
  const outcome = await closing;
  assert.equal(outcome?.kind, 'settled');
  assert.equal(outcome?.payeeValueSat, 5000n);
  await stopParty(device);
  await stopParty(provider);
});

test('a payer whose messenger watches only its peers learns the provider\'s offer in open() and nobody else\'s presence', async () => {
  const chain = new Simnet();
  const broker = new InMemoryBroker();
  const provider = await startParty({ seed: 1, chain, transport: memoryTransport(broker), offers: [OFFER] });
  const bystander = await startParty({ seed: 3, chain, transport: memoryTransport(broker), offers: [{ ...OFFER, serviceId: 'charger' }] });
  const device = await startParty({ seed: 2, chain, transport: memoryTransport(broker), presence: 'watched' });
  assert.equal(device.messenger.directory().size, 0, 'no announcement before open() asks for one');
  await fundWallet(chain, device, 1_000_000n);
  // No service given: open() waits for the provider's announced terms (offerOf), watching that node only.
  const opening = device.node.open(provider.messenger.nodeId, { capacitySat: 200_000n, expiryBlocks: 100 });
  await until(() => chain.mempool().length > 0, 'funding broadcast');
  await chain.mine(1);
  const ch = await opening;
  assert.equal(ch.phase, 'open');
  assert.deepEqual([...device.messenger.directory().keys()], [provider.messenger.nodeId]);
  assert.equal(device.messenger.statuses().has(bystander.messenger.nodeId), false);
  await ch.pay(1_000_000n);
  assert.equal(provider.node.channel(ch.id)?.paidMsat, 1_000_000n);
  await stopParty(device);
  await stopParty(bystander);
  await stopParty(provider);
});

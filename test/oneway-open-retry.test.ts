/**
 * A payer opening a one-way channel asks the payee again when no answer comes (found by the issue 8 soak:
 * a payee killed right after its session acknowledged `oneway_propose`, before its channel runtime stored
 * anything, came back knowing nothing of the channel; the payer waited in `proposed` for good, because
 * nothing made it speak again and its session never learnt the payee had restarted). The retries never
 * give up by themselves; the open timeout does, and gives the funding coins back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simnet } from '../src/chain/simnet/index.js';
import { ManualClock } from '../src/clock.js';
import { ChannelError } from '../src/channel/oneway/errors.js';
import { Messenger } from '../src/node/messenger.js';
import type { OnewayLogEntry } from '../src/channel/oneway/node.js';
import { InMemoryBroker } from '../src/transport/memory.js';
import { FAST_TIMINGS, until } from './helpers/session-nodes.js';
import { OFFER, fundWallet, memoryTransport, seeded, startParty, stopParty, type Party } from './helpers/oneway-parties.js';

test('the payee dies after its session acknowledged the proposal and returns knowing nothing: the payer asks again and the channel opens', async () => {
  const chain = new Simnet();
  const broker = new InMemoryBroker();
  const payeeSeed = 1;

  // The payee's first process: its session layer takes (and acknowledges) what arrives, but its channel
  // runtime dies before acting on it — here it has none at all.
  const { identity: payeeIdentity } = seeded(payeeSeed);
  const firstPayee = await Messenger.start({ identity: payeeIdentity, transport: memoryTransport(broker)(payeeIdentity), session: FAST_TIMINGS });
  let proposalAt: number | undefined; // where the broker's log stood when the proposal arrived
  firstPayee.onMessage((_peer, message) => {
    if (message.type === 'oneway_propose') proposalAt ??= broker.published.length;
  });
  await firstPayee.announce([OFFER]);

  const logs: OnewayLogEntry[] = [];
  const payer = await startParty({ seed: 2, chain, transport: memoryTransport(broker), node: { negotiationRetryMs: 200, log: (e) => logs.push(e) } });
  await fundWallet(chain, payer, 1_000_000n);
  await until(() => payer.messenger.directory().has(payeeIdentity.nodeId), 'the announcement');
  let opened: Awaited<ReturnType<typeof payer.node.open>> | undefined;
  let failed: unknown;
  payer.node.open(payeeIdentity.nodeId, { capacitySat: 200_000n, expiryBlocks: 100 }).then((c) => (opened = c), (e: unknown) => (failed = e));
  await until(() => proposalAt !== undefined, 'the proposal delivered to the first payee process');
  // Its session acknowledges the proposal (a frame back to the payer) and the payer takes the ack: from
  // then on the payer's session has nothing to retransmit, so nothing but a retry makes it speak again.
  await until(() => broker.published.slice(proposalAt).some((d) => d.from === payeeIdentity.nodeId && d.to === payer.identity.nodeId), 'the session acknowledgement');
  await new Promise((r) => setTimeout(r, 20)); // the broker hands it over at the next turn of the event loop

  // SIGKILL as the payer sees it: no goodbye on the session; the new process has a fresh one and no record.
  await firstPayee.stop();
  const payee = await startParty({ seed: payeeSeed, chain, transport: memoryTransport(broker), offers: [OFFER] });
  try {
    await until(() => chain.mempool().length > 0 || failed !== undefined, 'the funding broadcast');
    assert.equal(failed, undefined);
    await chain.mine(1);
    await until(() => opened !== undefined || failed !== undefined, 'the channel open');
    assert.equal(failed, undefined);
    assert.ok(logs.some((e) => e.msg.includes('asking again')), 'the payer asked again');
    const receipt = await opened!.pay(3_000_000n);
    assert.equal(receipt.amountMsat, 3_000_000n);
    const theirs = payee.node.channels();
    assert.equal(theirs.length, 1);
    assert.equal(theirs[0]!.phase, 'open');
  } finally {
    await stopParty(payer);
    await stopParty(payee);
  }
});

test('the retry stops once the payee answered: an open without losses asks nothing again', async () => {
  const chain = new Simnet();
  const broker = new InMemoryBroker();
  const logs: OnewayLogEntry[] = [];
  const payee = await startParty({ seed: 1, chain, transport: memoryTransport(broker), offers: [OFFER] });
  const payer = await startParty({ seed: 2, chain, transport: memoryTransport(broker), node: { negotiationRetryMs: 200, log: (e) => logs.push(e) } });
  try {
    await fundWallet(chain, payer, 1_000_000n);
    await until(() => payer.messenger.directory().has(payee.messenger.nodeId), 'the announcement');
    const opening = payer.node.open(payee.messenger.nodeId, { capacitySat: 200_000n, expiryBlocks: 100 });
    await until(() => chain.mempool().length > 0, 'the funding broadcast');
    await new Promise((r) => setTimeout(r, 500)); // longer than the retry delay, in `funded`
    await chain.mine(1);
    const channel = await opening;
    await channel.pay(1_000_000n);
    assert.deepEqual(logs.filter((e) => e.msg.includes('asking again')), []);
  } finally {
    await stopParty(payer);
    await stopParty(payee);
  }
});

test('a payee that accepts and then never answers: after openTimeoutMs the payer abandons the open and its coins are free again', async () => {
  const chain = new Simnet();
  const broker = new InMemoryBroker();
  const clock = new ManualClock();
  const openTimeoutMs = 60_000;
  // The payee's session goes away right after its oneway_accept is handed over: the payer gets it,
  // reserves its coins, asks for the refund signature, and nothing ever answers.
  let payee: Party | undefined;
  payee = await startParty({
    seed: 1,
    chain,
    transport: memoryTransport(broker),
    offers: [OFFER],
    node: { hooks: { afterSend: (message) => void (message.type === 'oneway_accept' && payee?.messenger.stop()) } },
  });
  const logs: OnewayLogEntry[] = [];
  const payer = await startParty({ seed: 2, chain, transport: memoryTransport(broker), node: { clock, openTimeoutMs, log: (e) => logs.push(e) } });
  try {
    await fundWallet(chain, payer, 1_000_000n);
    await until(() => payer.messenger.directory().has(payee!.messenger.nodeId), 'the announcement');
    const outcome = payer.node.open(payee.messenger.nodeId, { capacitySat: 200_000n, expiryBlocks: 100 }).then(() => 'opened', (e: unknown) => e);
    await until(() => payer.node.channels()[0]?.phase === 'accepted', 'the payee accepted');
    assert.ok((await payer.wallet.balance()).lockedSat > 0n, 'the funding coins are reserved');

    clock.advance(openTimeoutMs - 1); // the retries run, unanswered
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(payer.node.channels()[0]!.phase, 'accepted', 'not before the timeout');
    assert.ok(logs.some((e) => e.msg.includes('asking again')));

    clock.advance(1);
    const error = await outcome;
    assert.ok(error instanceof ChannelError, String(error));
    assert.equal(error.code, 'TIMEOUT');
    const channel = payer.node.channels()[0]!;
    assert.equal(channel.phase, 'aborted');
    assert.equal((await payer.wallet.balance()).lockedSat, 0n, 'the coins are free again');
    assert.equal(chain.mempool().length, 0, 'no funding broadcast');
    const asked = logs.filter((e) => e.msg.includes('asking again')).length;
    assert.equal(clock.pendingTimers, 0, 'no retry or timeout left behind');
    clock.advance(10 * openTimeoutMs);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(logs.filter((e) => e.msg.includes('asking again')).length, asked, 'nothing asked after the abandonment');
  } finally {
    await stopParty(payer);
    await stopParty(payee).catch(() => undefined);
  }
});

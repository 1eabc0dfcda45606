/**
 * Pipelined one-way payments (issue 8): concurrent pay() calls are each their own signed payment, in call
 * order; a payment's commit overlaps the next payment's work, but nothing it produced (the payment, the
 * acknowledgement) leaves before its commit has resolved; a commit that fails stops the channel's sends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simnet } from '../src/chain/simnet/index.js';
import { decodeRecord, type OnewayRecord } from '../src/channel/oneway/state.js';
import { MAX_UNACKED_PAYMENTS } from '../src/channel/oneway/channel.js';
import { MemoryStore } from '../src/store/memory.js';
import type { StoreWrite } from '../src/store/port.js';
import { InMemoryBroker } from '../src/transport/memory.js';
import type { WireMessage } from '../src/wire/index.js';
import { until } from './helpers/session-nodes.js';
import { OFFER, memoryTransport, openOnewayChannel, startParty, stopParty, type Party } from './helpers/oneway-parties.js';

/** A MemoryStore whose commits take a few milliseconds, remembering the highest payment number durable so far. */
class SlowStore extends MemoryStore {
  durablePayment = 0n;
  failAtPayment: bigint | undefined;

  override async commit(writes: readonly StoreWrite[]): Promise<void> {
    const numbers = writes.flatMap((w) => (w.key.startsWith('oneway/') && w.value ? [decodeRecord(w.value).payment.number] : []));
    await new Promise((r) => setTimeout(r, 3));
    if (this.failAtPayment !== undefined && numbers.some((n) => n >= this.failAtPayment!)) this.failNextCommit();
    await super.commit(writes);
    for (const n of numbers) if (n > this.durablePayment) this.durablePayment = n;
  }
}

/** Record, at each send, the number the message speaks for and what the sender had durable then. */
type Send = { type: string; number: bigint; durable: bigint };

function watchSends(party: Party, store: SlowStore, timeline: Send[] = []): Send[] {
  const seen: Send[] = [];
  const send = party.messenger.send.bind(party.messenger);
  party.messenger.send = (peer, message: WireMessage) => {
    if (message.type === 'oneway_pay' || message.type === 'oneway_pay_ack') {
      const entry = { type: message.type, number: message.paymentNumber, durable: store.durablePayment };
      seen.push(entry);
      timeline.push(entry);
    }
    return send(peer, message);
  };
  return seen;
}

async function openPair(stores: { payer: SlowStore; payee: SlowStore }, payTimeoutMs = 20_000) {
  const chain = new Simnet();
  const broker = new InMemoryBroker();
  const provider = await startParty({ seed: 1, chain, transport: memoryTransport(broker), offers: [OFFER], store: stores.payee, node: { payTimeoutMs } });
  const device = await startParty({ seed: 2, chain, transport: memoryTransport(broker), store: stores.payer, node: { payTimeoutMs } });
  const channel = await openOnewayChannel(chain, provider, device, 500_000n);
  return { chain, provider, device, channel };
}

test('concurrent pay() calls: one signed payment each, receipts in call order, nothing sent before its commit', async () => {
  const stores = { payer: new SlowStore(), payee: new SlowStore() };
  const { provider, device, channel } = await openPair(stores);
  const timeline: Send[] = [];
  const payerSends = watchSends(device, stores.payer, timeline);
  const payeeSends = watchSends(provider, stores.payee, timeline);
  const count = 300;
  const receipts = await Promise.all(Array.from({ length: count }, () => channel.pay(1_000n)));
  receipts.forEach((r, i) => {
    assert.equal(r.paymentNumber, BigInt(i + 1));
    assert.equal(r.amountMsat, BigInt(i + 1) * 1_000n);
  });
  const payeeChannel = provider.node.channel(channel.id)!;
  assert.equal(channel.paidMsat, BigInt(count) * 1_000n);
  assert.equal(payeeChannel.paidMsat, BigInt(count) * 1_000n);
  assert.equal(payeeChannel.payments, BigInt(count), 'the payee stored every payment, each separately signed');
  // Several payments were really in flight at once (else this test proves nothing about pipelining).
  let ackedSoFar = 0n;
  let maxAhead = 0n;
  for (const s of timeline) {
    if (s.type === 'oneway_pay_ack') ackedSoFar = s.number;
    else if (s.number - ackedSoFar > maxAhead) maxAhead = s.number - ackedSoFar;
  }
  assert.ok(maxAhead > 1n, `payments were pipelined (at most ${maxAhead} ahead)`);
  for (const s of [...payerSends, ...payeeSends]) {
    assert.ok(s.durable >= s.number, `${s.type} ${s.number} sent with only ${s.durable} durable`);
  }
  assert.deepEqual(payerSends.map((s) => s.number), Array.from({ length: count }, (_, i) => BigInt(i + 1)), 'payments sent in order, once');
  await stopParty(device);
  await stopParty(provider);
});

test('pay() calls beyond the window wait for acknowledgements', async () => {
  const stores = { payer: new SlowStore(), payee: new SlowStore() };
  const { provider, device, channel } = await openPair(stores);
  let maxUnacked = 0n;
  let sends = 0;
  const send = device.messenger.send.bind(device.messenger);
  device.messenger.send = (peer, message: WireMessage) => {
    if (message.type === 'oneway_pay') {
      sends++;
      const r = channel.snapshot() as OnewayRecord & { acked: { number: bigint } };
      if (message.paymentNumber - r.acked.number > maxUnacked) maxUnacked = message.paymentNumber - r.acked.number;
    }
    return send(peer, message);
  };
  await Promise.all(Array.from({ length: 400 }, () => channel.pay(500n)));
  assert.ok(maxUnacked > 1n && maxUnacked <= MAX_UNACKED_PAYMENTS, `${maxUnacked} unacknowledged at once`);
  assert.equal(sends, 400);
  await stopParty(device);
  await stopParty(provider);
});

test('a failed pipelined commit: nothing more is sent on that channel, the durable state is what was acknowledged', async () => {
  const stores = { payer: new SlowStore(), payee: new SlowStore() };
  const { provider, device, channel } = await openPair(stores, 1_500);
  const payeeSends = watchSends(provider, stores.payee);
  await Promise.all(Array.from({ length: 10 }, () => channel.pay(1_000n)));
  stores.payee.failAtPayment = 15n;
  const results = await Promise.allSettled(Array.from({ length: 10 }, () => channel.pay(1_000n)));
  const paid = results.filter((r) => r.status === 'fulfilled').length;
  assert.ok(paid < 10, 'payments after the failed commit are not acknowledged');
  const acks = payeeSends.filter((s) => s.type === 'oneway_pay_ack').map((s) => s.number);
  assert.ok(acks.every((n) => n < 15n), `acks ${acks.join(',')}`);
  assert.equal(channel.paidMsat, BigInt(10 + paid) * 1_000n);
  assert.ok(stores.payee.durablePayment >= channel.payments, 'everything acknowledged is durable at the payee');
  await stopParty(device);
  await stopParty(provider);
});

test('a duplicate payment arriving while its commit is under way is acknowledged only once the commit resolved', async () => {
  // Found by the crash harness: the duplicate's step persists nothing, and its ack went out at once for the
  // in-memory record, ahead of the disk; a SIGKILL then left the payer holding an ack the payee had lost.
  const stores = { payer: new SlowStore(), payee: new SlowStore() };
  const { provider, device, channel } = await openPair(stores);
  const payeeSends = watchSends(provider, stores.payee);
  const send = device.messenger.send.bind(device.messenger);
  device.messenger.send = async (peer, message: WireMessage) => {
    await send(peer, message);
    if (message.type === 'oneway_pay') await send(peer, message); // a resend: a new session message, same payment
  };
  await Promise.all(Array.from({ length: 50 }, () => channel.pay(1_000n)));
  await until(() => provider.node.channel(channel.id)!.payments === 50n, 'all stored');
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(payeeSends.length > 0);
  for (const s of payeeSends) assert.ok(s.durable >= s.number, `${s.type} ${s.number} sent with only ${s.durable} durable`);
  await stopParty(device);
  await stopParty(provider);
});

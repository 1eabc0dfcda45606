/**
 * A listener given as the node's `onEvent` option hears what happens while the node starts: a channel
 * whose close confirmed while its node was away is closed during start-up, before start() returns and
 * before a caller could register with node.onEvent(). The CLI relies on this to print every `closed`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OnewayChannel } from '../src/channel/oneway/channel.js';
import type { ChannelEvent } from '../src/channel/oneway/core.js';
import { until } from './helpers/session-nodes.js';
import { memoryTransport, openPaidChannel, startParty, stopParty } from './helpers/oneway-parties.js';

test('one-way: a close confirmed while the payer was away is told to the onEvent option during start', async () => {
  const { chain, broker, provider, device, channel } = await openPaidChannel();
  await stopParty(device);

  // The provider settles while the device is away.
  const settling = provider.node.channel(channel.id)!.close();
  await until(() => chain.mempool().length > 0, 'settlement broadcast');
  await chain.mine(1);
  const settled = await settling;
  assert.equal(settled?.kind, 'settled');

  const heard: Array<{ channel: OnewayChannel; event: ChannelEvent }> = [];
  const back = await startParty({
    seed: 2,
    chain,
    transport: memoryTransport(broker),
    store: device.store,
    node: { onEvent: (c, event) => heard.push({ channel: c, event }) },
  });
  // Already told when start() returns: the close was found while stored channels loaded.
  const closed = heard.find((h) => h.event.type === 'closed');
  assert.ok(closed, `heard during start: ${heard.map((h) => h.event.type).join(', ') || 'nothing'}`);
  assert.equal(closed.channel.id, channel.id);
  assert.equal(closed.event.type === 'closed' && closed.event.outcome.kind, 'settled');
  assert.equal(closed.event.type === 'closed' && closed.event.outcome.txid, settled.txid);
  assert.equal(back.node.channel(channel.id)!.phase, 'closed');
  await stopParty(back);
  await stopParty(provider);
});

/**
 * The messenger over the in-memory broker: typed messages, pings, invalid payloads from an
 * authenticated peer, and the directory of signed announcements and statuses ([T-3], [T-4], [W-13]).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InMemoryBroker } from '../src/transport/memory.js';
import { Messenger } from '../src/node/messenger.js';
import { randomIdentity, type NodeIdentity } from '../src/session/identity.js';
import { signAnnouncement, signNodeStatus, type ServiceOffer, type WireMessage } from '../src/wire/index.js';
import { SessionManager } from '../src/session/manager.js';
import { until } from './helpers/session-nodes.js';

const NOW = 1_800_000_000;
const OFFER: ServiceOffer = {
  serviceId: 'hotspot',
  unit: 'MB',
  tariffMsatPerUnit: 1000n,
  creditWindowUnits: 10n,
  minCapacitySat: 10_000n,
  maxCapacitySat: 1_000_000n,
};

async function messenger(broker: InMemoryBroker, identity = randomIdentity(), presence?: 'all' | 'watched') {
  const status = (s: 'online' | 'offline') => signNodeStatus({ nodeId: identity.publicKey, status: s, timestamp: NOW }, identity);
  const transport = broker.transport(identity.nodeId, { onlineStatus: status('online'), offlineStatus: status('offline') });
  const m = await Messenger.start({ identity, transport, wallClockSec: () => NOW, ...(presence && { presence }) });
  const received: WireMessage[] = [];
  m.onMessage((_peer, message) => received.push(message));
  return { m, identity, transport, received };
}

test('typed messages arrive decoded; pings are answered, not delivered', async () => {
  const broker = new InMemoryBroker();
  const a = await messenger(broker);
  const b = await messenger(broker);
  await a.m.send(b.m.nodeId, { type: 'ping', id: 9 });
  await a.m.send(b.m.nodeId, { type: 'oneway_close_request', channelId: new Uint8Array(32).fill(1) });
  await until(() => b.received.length === 1 && a.received.length === 1, 'close request and pong');
  assert.equal(b.received[0]!.type, 'oneway_close_request');
  assert.deepEqual(a.received[0], { type: 'pong', id: 9 });
  await a.m.stop();
  await b.m.stop();
});

test('[W-13] an authenticated peer sending undecodable payloads: dropped, counted by code, session intact', async () => {
  const broker = new InMemoryBroker();
  const b = await messenger(broker);
  // A raw session manager: a peer that is authenticated but speaks garbage.
  const rogueIdentity = randomIdentity();
  const rogueTransport = broker.transport(rogueIdentity.nodeId);
  await rogueTransport.start();
  const rogue = new SessionManager({ identity: rogueIdentity, transport: rogueTransport });
  await rogue.send(b.m.nodeId, Uint8Array.of(0xff));
  await rogue.send(b.m.nodeId, Uint8Array.of(0xa2, 0x00, 0x01, 0x01, 0x19, 0xff, 0xff)); // unknown type 65535
  await until(() => Object.values(b.m.stats().invalidMessages).reduce((x, y) => x! + y!, 0) === 2, 'two invalid payloads');
  assert.equal(b.received.length, 0);
  assert.equal(b.m.stats().invalidMessages.UNKNOWN_TYPE, 1);
  rogue.close();
  await b.m.stop();
});

test('[T-4] public announcements are discovered by late subscribers; forged, foreign and future ones are refused', async () => {
  const broker = new InMemoryBroker();
  const provider = await messenger(broker);
  await provider.m.announce([OFFER]);
  const device = await messenger(broker);
  assert.equal(device.m.directory().get(provider.m.nodeId)?.announcement.services[0]?.serviceId, 'hotspot');
  assert.equal(device.m.directory().get(provider.m.nodeId)?.via, 'public');

  // Someone else's announcement published on the provider's topic: refused (node id mismatch).
  const mallory: NodeIdentity = randomIdentity();
  const foreign = signAnnouncement({ nodeId: mallory.publicKey, timestamp: NOW + 1, services: [], public: true }, mallory);
  broker.retainAnnouncement(provider.m.nodeId, foreign);
  // A tampered copy of the real one: bad signature.
  const genuine = provider.m.signServices([OFFER], { public: true });
  const tampered = genuine.slice();
  tampered[tampered.length - 1]! ^= 1;
  broker.retainAnnouncement(provider.m.nodeId, tampered);
  // From the far future.
  const future = signAnnouncement({ nodeId: provider.identity.publicKey, timestamp: NOW + 3600, services: [], public: true }, provider.identity);
  broker.retainAnnouncement(provider.m.nodeId, future);
  const refused = device.m.stats().invalidAnnouncements;
  assert.equal(refused.NODE_ID_MISMATCH, 1);
  assert.equal(refused.BAD_SIGNATURE, 1);
  assert.equal(refused.FROM_THE_FUTURE, 1);
  assert.equal(device.m.directory().get(provider.m.nodeId)?.announcement.services.length, 1, 'the genuine offer is kept');

  await provider.m.withdraw();
  assert.equal(device.m.directory().has(provider.m.nodeId), false);
  await provider.m.stop();
  await device.m.stop();
});

test('[T-4] a private announcement travels inside the session only', async () => {
  const broker = new InMemoryBroker();
  const provider = await messenger(broker);
  const device = await messenger(broker);
  const other = await messenger(broker);
  await provider.m.announceTo(device.m.nodeId, [OFFER]);
  await until(() => device.m.directory().has(provider.m.nodeId), 'private announcement');
  assert.equal(device.m.directory().get(provider.m.nodeId)?.via, 'private');
  assert.equal(other.m.directory().has(provider.m.nodeId), false);
  for (const n of [provider, device, other]) await n.m.stop();
});

test('[T-3] signed statuses: online on start, offline when the link dies (Last Will) or on stop', async () => {
  const broker = new InMemoryBroker();
  const watcher = await messenger(broker);
  const node = await messenger(broker);
  assert.equal(watcher.m.statuses().get(node.m.nodeId)?.status, 'online');
  node.transport.setLink('down');
  assert.equal(watcher.m.statuses().get(node.m.nodeId)?.status, 'offline');
  // A forged "online" for the node is refused.
  const mallory = randomIdentity();
  broker.retainStatus(node.m.nodeId, signNodeStatus({ nodeId: mallory.publicKey, status: 'online', timestamp: NOW + 5 }, mallory));
  assert.equal(watcher.m.statuses().get(node.m.nodeId)?.status, 'offline');
  assert.equal(watcher.m.stats().invalidAnnouncements.NODE_ID_MISMATCH, 1);
  await node.m.stop();
  await watcher.m.stop();
});

test('[T-4] presence \'watched\': only the nodes passed to watch() reach the directory and statuses', async () => {
  const broker = new InMemoryBroker();
  const provider = await messenger(broker);
  const other = await messenger(broker);
  await provider.m.announce([OFFER]);
  await other.m.announce([{ ...OFFER, serviceId: 'charger' }]);
  const device = await messenger(broker, randomIdentity(), 'watched');
  assert.equal(device.m.directory().size, 0);
  assert.equal(device.m.statuses().size, 0);
  assert.throws(() => device.m.watch('not a node id'), TypeError);

  const first = device.m.watch(provider.m.nodeId);
  const second = device.m.watch(provider.m.nodeId);
  // The retained values arrive with the watch, as with a new MQTT subscription.
  assert.equal(device.m.directory().get(provider.m.nodeId)?.announcement.services[0]?.serviceId, 'hotspot');
  assert.equal(device.m.statuses().get(provider.m.nodeId)?.status, 'online');
  assert.deepEqual([...device.m.directory().keys()], [provider.m.nodeId]);
  assert.deepEqual([...device.m.statuses().keys()], [provider.m.nodeId]);

  // Watches are counted: one left still receives; after the last, nothing more arrives.
  first();
  first();
  provider.transport.setLink('down');
  assert.equal(device.m.statuses().get(provider.m.nodeId)?.status, 'offline');
  second();
  provider.transport.setLink('up');
  // Watched, the withdrawal would remove the entry; unwatched it never arrives, and what arrived stays.
  await provider.m.withdraw();
  assert.equal(device.m.directory().has(provider.m.nodeId), true);

  // With presence 'all' (the default) every node arrives and watch() changes nothing.
  const all = await messenger(broker);
  assert.equal(all.m.directory().has(other.m.nodeId), true);
  all.m.watch(other.m.nodeId)();
  assert.equal(all.m.statuses().get(other.m.nodeId)?.status, 'online');
  await assert.rejects(
    Messenger.start({ identity: randomIdentity(), transport: broker.transport(randomIdentity().nodeId), presence: 'some' as 'all' }),
    RangeError,
  );
  for (const n of [provider, other, device, all]) await n.m.stop();
});

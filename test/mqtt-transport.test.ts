/**
 * The MQTT adapter of the Transport port, against every broker we support (embedded aedes,
 * and mosquitto when installed) and both protocol versions (3.1.1 = 4, 5): frame exchange
 * and ordering, retained presence and the Last Will, delivery across a broker restart,
 * reconnect back-off, bounded payloads, hostile handlers; then mosquitto with passwords and
 * an ACL that gives each node read access to its own inbox only.
 *
 * No timing assertions: waits poll for a condition with a generous limit only so that a
 * failure reports instead of hanging. Loopback addresses only.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import {
  MqttTransport,
  MAX_FRAME_BYTES,
  MAX_PRESENCE_BYTES,
  reconnectDelayMs,
  type MqttTransportOptions,
} from '../src/transport/mqtt/index.js';
import { inboxTopic, statusTopic, type LinkState, type NodeId } from '../src/transport/port.js';
import { brokerFactories, mosquittoSkipReason, startTcpProxy, type TestBroker } from './helpers/brokers.js';
import { NODE_ACL, startMosquitto, type MosquittoBroker } from './helpers/mosquitto.js';

const WAIT_MS = 15_000;
const TEST_TIMEOUT_MS = 30_000;
const utf8 = new TextEncoder();
const text = new TextDecoder();

/** A well-formed node id (not a curve point; the transport only checks the shape). */
function nodeId(label: string): NodeId {
  return '02' + createHash('sha256').update(label).digest('hex');
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Transports started by a test, stopped afterwards whatever happens. */
class Fleet {
  private readonly transports: MqttTransport[] = [];
  private readonly clients: MqttClient[] = [];
  constructor(
    private readonly url: string,
    private readonly protocolVersion: 4 | 5,
    private readonly run: string,
  ) {}

  create(label: string, extra: Partial<MqttTransportOptions> = {}): MqttTransport {
    const id = nodeId(`${this.run}/${label}`);
    const t = new MqttTransport({
      url: this.url,
      localNodeId: id,
      protocolVersion: this.protocolVersion,
      onlineStatus: utf8.encode(`online ${label}`),
      offlineStatus: utf8.encode(`offline ${label}`),
      reconnect: { initialDelayMs: 50, maxDelayMs: 400, factor: 2, jitter: 0 },
      connectTimeoutMs: 5000,
      ...extra,
    });
    this.transports.push(t);
    return t;
  }

  async started(label: string, extra: Partial<MqttTransportOptions> = {}): Promise<MqttTransport> {
    const t = this.create(label, extra);
    await t.start();
    return t;
  }

  /** A bare mqtt.js client, for what a well-behaved transport would never do. */
  async raw(extra: Parameters<typeof mqttConnect>[1] = {}): Promise<MqttClient> {
    const client = mqttConnect(this.url, { protocolVersion: this.protocolVersion, reconnectPeriod: 0, ...extra });
    client.on('error', () => {});
    this.clients.push(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('close', () => reject(new Error('raw client could not connect')));
    });
    return client;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.transports.map((t) => t.stop()));
    await Promise.all(this.clients.map((c) => c.endAsync(true)));
  }
}

function collectFrames(t: MqttTransport): Uint8Array[] {
  const frames: Uint8Array[] = [];
  t.onFrame((f) => frames.push(f));
  return frames;
}

function numbered(i: number, size = 64): Uint8Array {
  const frame = new Uint8Array(size);
  new DataView(frame.buffer).setUint32(0, i);
  for (let j = 4; j < size; j++) frame[j] = (i * 31 + j) & 0xff;
  return frame;
}

// ---- misuse: no broker needed ----------------------------------------------------------

describe('MqttTransport misuse', () => {
  const base = (): MqttTransportOptions => ({
    url: 'mqtt://127.0.0.1:1',
    localNodeId: nodeId('misuse'),
    onlineStatus: utf8.encode('on'),
    offlineStatus: utf8.encode('off'),
  });

  test('constructor names the bad field', () => {
    assert.throws(() => new MqttTransport({ ...base(), localNodeId: 'nope' }), { name: 'TypeError', message: /localNodeId/ });
    assert.throws(() => new MqttTransport({ ...base(), onlineStatus: 'x' as unknown as Uint8Array }), {
      name: 'TypeError',
      message: /onlineStatus/,
    });
    assert.throws(() => new MqttTransport({ ...base(), offlineStatus: new Uint8Array(MAX_PRESENCE_BYTES + 1) }), {
      name: 'RangeError',
      message: /offlineStatus/,
    });
    assert.throws(() => new MqttTransport({ ...base(), protocolVersion: 3 as 4 }), { name: 'RangeError' });
    assert.throws(() => new MqttTransport({ ...base(), reconnect: { factor: 0.5 } }), { name: 'RangeError', message: /factor/ });
  });

  test('sendFrame rejects a bad recipient or frame with TypeError/RangeError, and any send after stop()', async () => {
    const t = new MqttTransport(base());
    await assert.rejects(t.sendFrame('02ab', new Uint8Array(1)), { name: 'TypeError', message: /"to"/ });
    await assert.rejects(t.sendFrame(nodeId('x'), 'bytes' as unknown as Uint8Array), { name: 'TypeError', message: /"frame"/ });
    await assert.rejects(t.sendFrame(nodeId('x'), new Uint8Array(MAX_FRAME_BYTES + 1)), { name: 'RangeError' });
    await assert.rejects(t.sendFrame(nodeId('x'), new Uint8Array(1)), /before start/);
    await t.stop();
    await assert.rejects(t.sendFrame(nodeId('x'), new Uint8Array(1)), /after stop/);
    await assert.rejects(t.start(), /stopped/);
  });

  test('[T-5] reconnect delays grow by the factor up to the ceiling; jitter only shortens them', () => {
    const policy = { initialDelayMs: 250, maxDelayMs: 30_000, factor: 2, jitter: 0 };
    assert.deepEqual(
      [0, 1, 2, 3, 7, 8, 20].map((n) => reconnectDelayMs(n, policy)),
      [250, 500, 1000, 2000, 30_000, 30_000, 30_000],
    );
    const jittered = { ...policy, jitter: 0.2 };
    assert.equal(reconnectDelayMs(3, jittered, () => 0), 2000);
    assert.equal(reconnectDelayMs(3, jittered, () => 1), 1600);
  });
});

// ---- every broker × every protocol version ---------------------------------------------

let runCounter = 0;

for (const factory of brokerFactories({ includeSkipped: true })) {
  describe(`MqttTransport over ${factory.name}`, { skip: factory.skip }, () => {
    let broker: TestBroker;
    before(async () => {
      broker = await factory.start();
    });
    after(async () => {
      await broker?.stop();
    });

    if (factory.name === 'aedes') {
      test('aedes 1.x refuses MQTT 5: start() rejects instead of hanging', { timeout: TEST_TIMEOUT_MS }, async () => {
        const fleet = new Fleet(broker.url, 5, `r${runCounter++}`);
        try {
          await assert.rejects(fleet.create('v5').start(), /refused the connection: Unacceptable protocol version/);
        } finally {
          await fleet.stopAll();
        }
      });
    }

    for (const version of [4, 5] as const) {
      const label = version === 4 ? 'MQTT 3.1.1' : 'MQTT 5';
      const unsupported = factory.name === 'aedes' && version === 5 ? 'aedes 1.x speaks MQTT 3.1.1 only' : undefined;

      describe(label, { skip: unsupported }, () => {
        const fleetFor = (): Fleet => new Fleet(broker.url, version, `${factory.name}-${version}-${runCounter++}`);

        test('[T-1][T-2] two transports exchange 500 frames in order, contents intact', { timeout: TEST_TIMEOUT_MS }, async () => {
          const fleet = fleetFor();
          try {
            const a = await fleet.started('a');
            const b = await fleet.started('b');
            const atB = collectFrames(b);
            const atA = collectFrames(a);
            await Promise.all(Array.from({ length: 500 }, (_, i) => a.sendFrame(b.localNodeId, numbered(i, 16 + (i % 300)))));
            await b.sendFrame(a.localNodeId, utf8.encode('ack'));
            await waitFor('500 frames at b', () => atB.length >= 500);
            await waitFor('reply at a', () => atA.length >= 1);
            // Frames on one topic from one publisher keep their order at QoS 1 (MQTT §4.6).
            atB.forEach((frame, i) => assert.deepEqual(frame, numbered(i, 16 + (i % 300)), `frame ${i}`));
            assert.equal(atB.length, 500);
            assert.equal(Object.getPrototypeOf(atB[0]), Uint8Array.prototype, 'a plain Uint8Array, not a Buffer');
            assert.equal(text.decode(atA[0]), 'ack');
            assert.equal(b.stats().received.frames, 500);
            assert.equal(a.linkState, 'up');
          } finally {
            await fleet.stopAll();
          }
        });

        test('[T-3] online status is retained; the Last Will marks a client that dies without DISCONNECT', { timeout: TEST_TIMEOUT_MS }, async () => {
          const fleet = fleetFor();
          const proxy = await startTcpProxy(broker.port);
          const viaProxy = new Fleet(proxy.url, version, `${factory.name}-${version}-${runCounter++}`);
          try {
            const a = await viaProxy.started('dies');
            const b = await fleet.started('leaves');
            // The observer subscribes after both are online: retained status reaches late subscribers.
            const observer = await fleet.started('observer');
            const seen = new Map<NodeId, string[]>();
            observer.onStatus((from, status) => seen.set(from, [...(seen.get(from) ?? []), text.decode(status)]));
            observer.watchPresence('all');
            await waitFor('retained online statuses', () => seen.get(a.localNodeId)?.[0] === 'online dies' && seen.get(b.localNodeId)?.[0] === 'online leaves');

            // Cut the network under `a`: no DISCONNECT reaches the broker, so it publishes the Will.
            await proxy.block();
            await waitFor('the Will of a', () => seen.get(a.localNodeId)?.at(-1) === 'offline dies');
            await waitFor('a sees its link down', () => a.linkState === 'down');

            // `b` leaves politely: stop() publishes the offline status itself.
            await b.stop();
            await waitFor('offline status of b', () => seen.get(b.localNodeId)?.at(-1) === 'offline leaves');
          } finally {
            await viaProxy.stopAll();
            await fleet.stopAll();
            await proxy.close();
          }
        });

        test('[T-4] retained announcements reach a late subscriber; an empty retained publish withdraws them', { timeout: TEST_TIMEOUT_MS }, async () => {
          const fleet = fleetFor();
          try {
            const a = await fleet.started('announcer');
            await a.publishAnnouncement(utf8.encode('announce v1'));
            await a.publishAnnouncement(utf8.encode('announce v2'));
            const late = await fleet.started('late');
            const got: string[] = [];
            late.onAnnouncement((from, ann) => {
              if (from === a.localNodeId) got.push(text.decode(ann));
            });
            late.watchPresence('all');
            await waitFor('the retained announcement', () => got.length >= 1);
            assert.deepEqual(got, ['announce v2'], 'only the last retained value');
            await a.withdrawAnnouncement();
            await waitFor('the withdrawal', () => got.length >= 2);
            assert.equal(got[1], '', 'an empty payload means withdrawn');

            // A subscriber arriving after the withdrawal sees nothing from `a`; a retained
            // marker published before it subscribes shows its retained set has been delivered.
            const marker = await fleet.started('marker');
            await marker.publishAnnouncement(utf8.encode('marker'));
            const later = await fleet.started('later');
            const laterGot: string[] = [];
            let markerSeen = false;
            later.onAnnouncement((from, ann) => {
              if (from === a.localNodeId) laterGot.push(text.decode(ann));
              if (from === marker.localNodeId) markerSeen = true;
            });
            later.watchPresence('all');
            await waitFor('the marker announcement', () => markerSeen);
            assert.deepEqual(laterGot, []);
            await marker.withdrawAnnouncement();
          } finally {
            await fleet.stopAll();
          }
        });

        test('[T-4] watchPresence(node) receives only that node\'s presence; watches are counted and the last unwatch stops it', { timeout: TEST_TIMEOUT_MS }, async () => {
          const fleet = fleetFor();
          try {
            const a = await fleet.started('watched');
            const c = await fleet.started('ignored');
            const m = await fleet.started('marker');
            await a.publishAnnouncement(utf8.encode('a v1'));
            await c.publishAnnouncement(utf8.encode('c v1'));
            const w = await fleet.started('watcher');
            assert.throws(() => w.watchPresence('nope' as NodeId), TypeError);
            const got: string[] = [];
            const record = (kind: string) => (from: NodeId, bytes: Uint8Array): void => {
              const who = from === a.localNodeId ? 'a' : from === c.localNodeId ? 'c' : from === m.localNodeId ? 'm' : 'other';
              got.push(`${who} ${kind} ${text.decode(bytes)}`);
            };
            w.onAnnouncement(record('announce'));
            w.onStatus(record('status'));
            // Published live while w watches nothing: it must reach w only later, as m's retained value.
            await m.publishAnnouncement(utf8.encode('marker 0'));

            const first = w.watchPresence(a.localNodeId);
            const second = w.watchPresence(a.localNodeId);
            await waitFor('a\'s retained announcement and status', () => got.includes('a announce a v1') && got.includes('a status online watched'));
            // c publishes (and the broker takes it) before a does: had c been watched, its value would come first.
            await c.publishAnnouncement(utf8.encode('c v2'));
            await a.publishAnnouncement(utf8.encode('a v2'));
            await waitFor('a\'s live announcement', () => got.includes('a announce a v2'));
            assert.deepEqual(got.filter((g) => !g.startsWith('a ')), [], 'nothing of c or m');

            first();
            first(); // idempotent: the second watch still holds
            await a.publishAnnouncement(utf8.encode('a v3'));
            await waitFor('a v3 while one watch remains', () => got.includes('a announce a v3'));

            second();
            const stopMarker = w.watchPresence(m.localNodeId);
            await waitFor('the marker\'s retained announcement', () => got.includes('m announce marker 0'));
            await a.publishAnnouncement(utf8.encode('a v4'));
            await m.publishAnnouncement(utf8.encode('marker 1'));
            await waitFor('the live marker', () => got.includes('m announce marker 1'));
            assert.equal(got.includes('a announce a v4'), false, 'a is no longer watched');
            assert.equal(got.filter((g) => g === 'm announce marker 0').length, 1, 'marker 0 came once, as the retained value of the watch');
            assert.equal(got.some((g) => g.startsWith('c ')), false, 'c was never watched');
            stopMarker();
            for (const t of [a, c, m]) await t.withdrawAnnouncement();
          } finally {
            await fleet.stopAll();
          }
        });

        test('[T-2][T-5] a frame sent while the broker is down: send resolves, delivery after reconnect depends on the broker keeping sessions', { timeout: TEST_TIMEOUT_MS }, async (t) => {
          const fleet = fleetFor();
          try {
            const a = await fleet.started('sender');
            const b = await fleet.started('receiver');
            const atB = collectFrames(b);
            const links: LinkState[] = [];
            b.onLinkState((s) => links.push(s));
            await a.sendFrame(b.localNodeId, utf8.encode('before'));
            await waitFor('frame before the restart', () => atB.length === 1);

            await broker.restart(async () => {
              await waitFor('both links down', () => a.linkState === 'down' && b.linkState === 'down');
              // Resolves at once: queued by mqtt.js for the reconnect, neither hanging nor rejecting.
              await a.sendFrame(b.localNodeId, utf8.encode('during'));
              assert.equal(a.stats().sent.queuedWhileDown, 1);
            });
            await waitFor('both links up again', () => a.linkState === 'up' && b.linkState === 'up');
            assert.deepEqual(links, ['down', 'up']);
            // Proves the inbox subscription is back even when the broker lost the session.
            await a.sendFrame(b.localNodeId, utf8.encode('after'));
            await waitFor('frame after the restart', () => atB.some((f) => text.decode(f) === 'after'));
            const received = atB.map((f) => text.decode(f));
            const duringDelivered = received.includes('during');
            t.diagnostic(
              `${factory.name} ${label}: the frame sent while down ${duringDelivered ? 'was delivered' : 'was lost'}` +
                (broker.keepsStateAcrossRestart
                  ? ''
                  : ' (the broker came back empty: delivery is a race between the sender resending and the receiver re-subscribing)'),
            );
            if (broker.keepsStateAcrossRestart) {
              // mosquitto with persistence restores b's session (subscription included), so the
              // frame a resends after its reconnect is queued for b and delivered [MQTT-3.1.2-5].
              assert.ok(duringDelivered, 'delivered after the restart');
              assert.deepEqual(received.filter((r) => r !== 'during'), ['before', 'after']);
            }
            assert.equal(a.stats().reconnects, 1);
            assert.equal(b.stats().reconnects, 1);
          } finally {
            await fleet.stopAll();
          }
        });

        test('[T-5] reconnect back-off grows attempt by attempt and resets on connect', { timeout: TEST_TIMEOUT_MS }, async () => {
          const proxy = await startTcpProxy(broker.port);
          const fleet = new Fleet(proxy.url, version, `${factory.name}-${version}-${runCounter++}`);
          const policy = { initialDelayMs: 10, maxDelayMs: 80, factor: 2, jitter: 0 };
          try {
            const a = fleet.create('backoff', { reconnect: policy });
            await a.start();
            await proxy.block();
            const samples = new Map<number, number>();
            await waitFor('five failed attempts', () => {
              const s = a.stats();
              samples.set(s.reconnectAttempts, s.reconnectDelayMs);
              return s.reconnectAttempts >= 5;
            });
            for (const [attempts, delay] of samples) {
              assert.equal(delay, reconnectDelayMs(attempts, policy), `delay after ${attempts} attempts`);
            }
            assert.equal(a.stats().reconnectDelayMs, 80, 'capped at maxDelayMs');
            await proxy.reopen();
            await waitFor('link up', () => a.linkState === 'up');
            const s = a.stats();
            assert.equal(s.reconnects, 1);
            assert.equal(s.reconnectAttempts, 0);
            assert.equal(s.reconnectDelayMs, policy.initialDelayMs);
          } finally {
            await fleet.stopAll();
            await proxy.close();
          }
        });

        test('[T-5] oversized inbox and presence payloads are dropped and counted', { timeout: TEST_TIMEOUT_MS }, async () => {
          const fleet = fleetFor();
          try {
            const b = await fleet.started('bounded');
            const atB = collectFrames(b);
            const statuses: NodeId[] = [];
            b.onStatus((from) => statuses.push(from));
            b.watchPresence('all');
            const intruder = nodeId(`intruder-${runCounter++}`);
            const raw = await fleet.raw();
            await raw.publishAsync(inboxTopic(b.localNodeId), Buffer.alloc(MAX_FRAME_BYTES + 1), { qos: 1 });
            await raw.publishAsync(statusTopic(intruder), Buffer.alloc(MAX_PRESENCE_BYTES + 1), { qos: 1 });
            await raw.publishAsync(inboxTopic(b.localNodeId), Buffer.from('small'), { qos: 1 });
            await raw.publishAsync(statusTopic(intruder), Buffer.from('fine'), { qos: 1 });
            await waitFor('the small frame', () => atB.length >= 1);
            await waitFor('the small status', () => statuses.includes(intruder));
            assert.deepEqual(atB.map((f) => text.decode(f)), ['small']);
            const s = b.stats();
            assert.equal(s.dropped.oversizedFrame, 1);
            assert.equal(s.dropped.oversizedPresence, 1);
            // Clean the retained status we left behind.
            await raw.publishAsync(statusTopic(intruder), Buffer.alloc(0), { qos: 1, retain: true });
          } finally {
            await fleet.stopAll();
          }
        });

        test('a throwing or rejecting handler is counted and the others still get every frame', { timeout: TEST_TIMEOUT_MS }, async () => {
          const fleet = fleetFor();
          try {
            const a = await fleet.started('a');
            const b = await fleet.started('b');
            b.onFrame(() => {
              throw new Error('handler bug');
            });
            b.onFrame(async () => {
              throw new Error('async handler bug');
            });
            const atB = collectFrames(b);
            for (let i = 0; i < 3; i++) await a.sendFrame(b.localNodeId, numbered(i));
            await waitFor('three frames', () => atB.length === 3);
            await waitFor('six handler errors', () => b.stats().handlerErrors === 6);
            assert.equal(b.linkState, 'up');
          } finally {
            await fleet.stopAll();
          }
        });
      });
    }
  });
}

// ---- mosquitto with passwords and an ACL ----------------------------------------------


describe('MqttTransport over mosquitto with passwords and an ACL', { skip: mosquittoSkipReason({ auth: true }) }, () => {
  const alice = nodeId('acl/alice');
  const bob = nodeId('acl/bob');
  const carol = nodeId('acl/carol');
  const secret = (n: NodeId): string => `pw-${n.slice(2, 14)}`;
  let broker: MosquittoBroker;
  before(async () => {
    broker = await startMosquitto({ auth: { users: [alice, bob, carol].map((n) => ({ username: n, password: secret(n) })), acl: NODE_ACL } });
  });
  after(async () => {
    await broker?.stop();
  });

  for (const version of [4, 5] as const) {
    const label = version === 4 ? 'MQTT 3.1.1' : 'MQTT 5';
    const creds = (n: NodeId): Partial<MqttTransportOptions> => ({ localNodeId: n, username: n, password: secret(n) });

    test(`[T-6] ${label}: nodes exchange frames; a third node cannot read someone else's inbox`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const fleet = new Fleet(broker.url, version, `acl-${version}`);
      try {
        const a = await fleet.started('alice', creds(alice));
        const b = await fleet.started('bob', creds(bob));
        const statuses = new Set<NodeId>();
        a.onStatus((from) => statuses.add(from));
        a.watchPresence('all');
        const announcements = new Map<NodeId, string>();
        b.onAnnouncement((from, ann) => announcements.set(from, text.decode(ann)));
        b.watchPresence('all');
        await a.publishAnnouncement(utf8.encode('alice here'));
        const atA = collectFrames(a);
        const atB = collectFrames(b);

        const snoop = await fleet.raw({ username: carol, password: secret(carol), clientId: `snoop-${version}` });
        const stolen: string[] = [];
        snoop.on('message', (topic) => {
          if (topic.endsWith('/in')) stolen.push(topic);
        });
        const grants: string[] = [];
        for (const filter of [inboxTopic(alice), 'trickle/v1/node/+/in', '#']) {
          try {
            const granted = await snoop.subscribeAsync(filter, { qos: 1 });
            grants.push(`${filter}: ${granted.map((g) => g.qos).join(',')}`);
          } catch (err) {
            grants.push(`${filter}: ${(err as Error).message}`);
          }
        }
        t.diagnostic(`carol's subscriptions: ${grants.join('; ')}`);

        for (let i = 0; i < 5; i++) {
          await a.sendFrame(bob, numbered(i));
          await b.sendFrame(alice, numbered(100 + i));
        }
        await waitFor('frames both ways', () => atA.length === 5 && atB.length === 5);
        atB.forEach((f, i) => assert.deepEqual(f, numbered(i)));
        await waitFor('statuses of both', () => statuses.has(alice) && statuses.has(bob));
        await waitFor("alice's announcement at bob", () => announcements.get(alice) === 'alice here');
        await a.withdrawAnnouncement();
        // Let carol's (denied) deliveries have a chance: a frame to her own inbox arrives after them.
        await snoop.subscribeAsync(inboxTopic(carol), { qos: 1 });
        await a.sendFrame(carol, utf8.encode('to carol'));
        await waitFor('carol hears her own inbox', () => stolen.includes(inboxTopic(carol)));
        assert.deepEqual(stolen.filter((topic) => topic !== inboxTopic(carol)), [], 'carol read nobody else\'s inbox');
      } finally {
        await fleet.stopAll();
      }
    });

    test(`[T-6] ${label}: a bad password is refused and start() rejects`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const fleet = new Fleet(broker.url, version, `acl-bad-${version}`);
      try {
        const t = fleet.create('mallory', { ...creds(carol), password: 'wrong' });
        await assert.rejects(t.start(), /refused the connection: (Bad username or password|Bad User Name or Password|Not authorized)/);
        assert.equal(t.linkState, 'down');
      } finally {
        await fleet.stopAll();
      }
    });
  }
});

/**
 * Secure sessions end to end over real brokers — the embedded aedes and a real Mosquitto —
 * through the MQTT transport and the messenger (docs/protocol.md §4, §5):
 *   - 10,000 messages one way (and 1,000 the other, at the same time): none lost, none
 *     duplicated to the application, none reordered;
 *   - the same with the broker restarted mid-stream (aedes comes back empty; mosquitto keeps
 *     its database): the session recovers, and the test reports what happened;
 *   - a third client writing random bytes, truncated frames, replays of captured frames and
 *     frames encrypted under another key onto a node's inbox changes nothing, crashes
 *     nothing, and each is counted by reason;
 *   - Mosquitto with passwords and an ACL that lets each node read only its own inbox.
 * Loopback only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectAsync, type MqttClient } from 'mqtt';
import { bytesToHex, hexToBytes } from '../src/bytes.js';
import { randomIdentity, type NodeIdentity } from '../src/session/identity.js';
import { encodeData } from '../src/session/frames.js';
import { NoiseCipher } from '../src/session/noise.js';
import type { Messenger } from '../src/node/messenger.js';
import { startMqttMessenger, type MqttMessengerOptions } from '../src/transport/mqtt/node.js';
import { inboxTopic, type NodeId } from '../src/transport/port.js';
import type { WireMessage } from '../src/wire/index.js';
import { brokerFactories, mosquittoSkipReason, startAedesBroker, startTcpProxy, type TestBroker } from './helpers/brokers.js';
import { NODE_ACL, startMosquitto } from './helpers/mosquitto.js';
import { prng, until } from './helpers/session-nodes.js';

const CHANNEL = new Uint8Array(32).fill(7);
const MESSAGES = 10_000;
const BACK = 1_000;

interface Endpoint {
  messenger: Messenger;
  identity: NodeIdentity;
  id: NodeId;
  /** paymentNumber of every oneway_pay_ack received, per sender, in arrival order. */
  received: Map<NodeId, number[]>;
  replaced: number;
}

async function endpoint(url: string, protocolVersion: 4 | 5, extra: Partial<MqttMessengerOptions> = {}): Promise<Endpoint> {
  const identity = extra.identity ?? randomIdentity();
  const messenger = await startMqttMessenger({
    url,
    identity,
    protocolVersion,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    session: { reliability: { initialRtoMs: 300, maxRtoMs: 2000 }, handshakeTimeoutMs: 500 },
    ...extra,
  });
  const node: Endpoint = { messenger, identity, id: identity.nodeId, received: new Map(), replaced: 0 };
  messenger.onMessage((peer, message) => {
    if (message.type !== 'oneway_pay_ack') return;
    const list = node.received.get(peer) ?? [];
    list.push(Number(message.paymentNumber));
    node.received.set(peer, list);
  });
  messenger.onSession((event) => {
    if (event.replaced) node.replaced++;
  });
  return node;
}

function ack(n: number): WireMessage {
  return { type: 'oneway_pay_ack', channelId: CHANNEL, paymentNumber: BigInt(n), amountMsat: BigInt(n) * 1000n };
}

function count(node: Endpoint, from: Endpoint): number {
  return node.received.get(from.id)?.length ?? 0;
}

function assertInOrder(node: Endpoint, from: Endpoint, n: number): void {
  const got = node.received.get(from.id) ?? [];
  assert.equal(got.length, n, `${n} messages delivered to the application`);
  for (let i = 0; i < n; i++) if (got[i] !== i) assert.fail(`message ${i} out of order or duplicated (got ${got[i]})`);
}

/** a → b: MESSAGES; b → a: BACK, concurrently. Optionally run `midway` at half-way without pausing. */
async function stream(a: Endpoint, b: Endpoint, midway?: () => Promise<void>): Promise<Promise<void> | undefined> {
  let midwayDone: Promise<void> | undefined;
  const back = (async () => {
    for (let i = 0; i < BACK; i++) await b.messenger.send(a.id, ack(i));
  })();
  for (let i = 0; i < MESSAGES; i++) {
    if (i === MESSAGES / 2 && midway !== undefined) midwayDone = midway();
    await a.messenger.send(b.id, ack(i));
  }
  await back;
  await until(() => count(b, a) >= MESSAGES && count(a, b) >= BACK, 'every message delivered', 120_000);
  return midwayDone;
}

const versionFor = (broker: TestBroker): 4 | 5 => (broker.name === 'mosquitto' ? 5 : 4);

for (const factory of brokerFactories({ includeSkipped: true })) {
  test(`[S-6][S-7] ${MESSAGES} + ${BACK} messages through ${factory.name}: none lost, duplicated or reordered`, { skip: factory.skip }, async (t) => {
    const broker = await factory.start();
    const a = await endpoint(broker.url, versionFor(broker));
    const b = await endpoint(broker.url, versionFor(broker));
    t.after(async () => {
      await a.messenger.stop();
      await b.messenger.stop();
      await broker.stop();
    });
    await stream(a, b);
    assertInOrder(b, a, MESSAGES);
    assertInOrder(a, b, BACK);
    assert.equal(a.replaced + b.replaced, 0, 'one session throughout');
    const s = a.messenger.stats().session;
    t.diagnostic(`${factory.name}: frames sent ${s.framesSent}, retransmitted ${s.framesRetransmitted}, b dropped ${JSON.stringify(b.messenger.stats().session.dropped)}`);
  });

  test(`[S-10] ${MESSAGES} messages through ${factory.name}, broker restarted mid-stream: the session recovers`, { skip: factory.skip }, async (t) => {
    const broker = await factory.start();
    const a = await endpoint(broker.url, versionFor(broker));
    const b = await endpoint(broker.url, versionFor(broker));
    t.after(async () => {
      await a.messenger.stop();
      await b.messenger.stop();
      await broker.stop();
    });
    let deliveredAtRestart = 0;
    const restarted = await stream(a, b, async () => {
      deliveredAtRestart = count(b, a);
      await broker.restart(() => new Promise((resolve) => setTimeout(resolve, 200)));
    });
    await restarted;
    assertInOrder(b, a, MESSAGES);
    assertInOrder(a, b, BACK);
    const sa = a.messenger.stats().session;
    const sb = b.messenger.stats().session;
    t.diagnostic(
      `${factory.name} (${broker.keepsStateAcrossRestart ? 'keeps' : 'loses'} its state on restart): ` +
        `restart when b had ${deliveredAtRestart} messages; all ${MESSAGES} + ${BACK} delivered once, in order; ` +
        `a re-sent ${sa.framesRetransmitted} frames, b re-sent ${sb.framesRetransmitted}; sessions replaced: ${a.replaced + b.replaced}; ` +
        `b dropped ${JSON.stringify(sb.dropped)}`,
    );
  });

  test(`[S-12] a third client writing garbage onto an inbox through ${factory.name} changes nothing`, { skip: factory.skip }, async (t) => {
    const broker = await factory.start();
    const a = await endpoint(broker.url, versionFor(broker));
    const b = await endpoint(broker.url, versionFor(broker));
    const stranger: MqttClient = await connectAsync(broker.url, { protocolVersion: versionFor(broker), clean: true });
    t.after(async () => {
      await stranger.endAsync();
      await a.messenger.stop();
      await b.messenger.stop();
      await broker.stop();
    });
    // Without an ACL the stranger can read b's inbox: it captures frames to replay.
    const captured: Uint8Array[] = [];
    stranger.on('message', (_topic, payload) => captured.push(new Uint8Array(payload)));
    await stranger.subscribeAsync(inboxTopic(b.id), { qos: 1 });

    const first = 2000;
    for (let i = 0; i < first; i++) await a.messenger.send(b.id, ack(i));
    await until(() => count(b, a) === first && captured.length >= first, 'first batch and its capture');
    const before = b.messenger.stats().session;

    const random = prng(1);
    const publish = (payload: Uint8Array) => stranger.publishAsync(inboxTopic(b.id), Buffer.from(payload), { qos: 1 });
    const sent = { random: 0, truncated: 0, replayed: 0, otherKey: 0 };
    for (let i = 0; i < 300; i++) {
      await publish(crypto.getRandomValues(new Uint8Array(1 + Math.floor(random() * 200))));
      sent.random++;
      const frame = captured[Math.floor(random() * captured.length)]!;
      await publish(frame.slice(0, 1 + Math.floor(random() * (frame.length - 1))));
      sent.truncated++;
      await publish(captured[Math.floor(random() * captured.length)]!);
      sent.replayed++;
    }
    // Frames for a's session, at b's next expected sequence number, under a key b doesn't have.
    const dataFrame = captured.find((f) => f[0] === 0x10)!;
    const tag = dataFrame.slice(1, 9);
    for (let i = 0; i < 100; i++) {
      const cipher = new NoiseCipher(crypto.getRandomValues(new Uint8Array(32)), crypto.getRandomValues(new Uint8Array(32)));
      await publish(encodeData(tag, first, cipher.encrypt(new Uint8Array(40))));
      sent.otherKey++;
    }
    const total = sent.random + sent.truncated + sent.replayed + sent.otherKey;
    await until(() => b.messenger.stats().session.framesReceived - before.framesReceived >= total, 'attack frames received');

    const after = b.messenger.stats().session;
    const delta: Record<string, number> = {};
    for (const [reason, n] of Object.entries(after.dropped)) {
      const d = (n ?? 0) - (before.dropped[reason as keyof typeof before.dropped] ?? 0);
      if (d > 0) delta[reason] = d;
    }
    t.diagnostic(`${factory.name}: sent ${JSON.stringify(sent)}; b dropped ${JSON.stringify(delta)}`);
    assert.equal(count(b, a), first, 'nothing delivered twice, nothing invented');
    assert.equal(after.messagesDelivered, before.messagesDelivered);
    assert.ok((delta['forged-data'] ?? 0) >= sent.otherKey, 'each frame under another key counted as forged');
    assert.ok((delta.duplicate ?? 0) > 0, 'replays counted as duplicates');
    const dropped = Object.values(delta).reduce((x, y) => x + y, 0);
    assert.ok(dropped >= total - 5, `every attack frame dropped and counted (${dropped} of ${total}; an act-one replay may start a handshake)`);
    assert.equal(after.dropped['internal-error'] ?? 0, 0);

    // The genuine session carries on.
    for (let i = first; i < first + 500; i++) await a.messenger.send(b.id, ack(i));
    await until(() => count(b, a) === first + 500, 'traffic after the attack');
    assertInOrder(b, a, first + 500);
    assert.equal(a.replaced + b.replaced, 0);
  });
}

test('[T-6] under Mosquitto with passwords and an ACL (each node reads only its own inbox), sessions work', { skip: mosquittoSkipReason({ auth: true }) }, async (t) => {
  const ids = [randomIdentity(), randomIdentity()];
  const password = (identity: NodeIdentity) => bytesToHex(identity.publicKey).slice(2, 34);
  const broker = await startMosquitto({
    auth: { users: ids.map((identity) => ({ username: identity.nodeId, password: password(identity) })), acl: NODE_ACL },
  });
  const [a, b] = await Promise.all(
    ids.map((identity) => endpoint(broker.url, 5, { identity, username: identity.nodeId, password: password(identity) })),
  );
  t.after(async () => {
    await a!.messenger.stop();
    await b!.messenger.stop();
    await broker.stop();
  });
  for (let i = 0; i < 1000; i++) await a!.messenger.send(b!.id, ack(i));
  for (let i = 0; i < 1000; i++) await b!.messenger.send(a!.id, ack(i));
  await until(() => count(b!, a!) === 1000 && count(a!, b!) === 1000, 'both directions under the ACL');
  assertInOrder(b!, a!, 1000);
  assertInOrder(a!, b!, 1000);
  // Each saw the other's signed online status, which the ACL lets everyone read.
  await until(() => a!.messenger.statuses().get(b!.id)?.status === 'online', 'status of b seen by a');
  assert.equal(hexToBytes(b!.id).length, 33);
});

test('[T-3] a node whose connection dies is marked offline by its Will, and online again after it reconnects', async (t) => {
  const broker = await startAedesBroker();
  const proxy = await startTcpProxy(broker.port);
  const watcher = await endpoint(broker.url, 4);
  const node = await endpoint(proxy.url, 4);
  t.after(async () => {
    await node.messenger.stop();
    await watcher.messenger.stop();
    await proxy.close();
    await broker.stop();
  });
  const statusOf = () => watcher.messenger.statuses().get(node.id)?.status;
  await until(() => statusOf() === 'online', 'online on connect');
  proxy.cut(); // the broker sees the connection die without a DISCONNECT
  await until(() => statusOf() === 'offline', 'offline from the Last Will');
  await until(() => statusOf() === 'online', 'online again after the reconnect (newer signed status)');
  await node.messenger.send(watcher.id, ack(0));
  await until(() => count(watcher, node) === 1, 'traffic after the reconnect');
});

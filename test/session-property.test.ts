/**
 * Property tests of the session layer ([S-7], [S-12]): 10,000+ random and mutated frames fed
 * to a node with live sessions. No input may throw, and none may change session state; every
 * one is either counted as a drop or (a well-formed act one) starts a bounded handshake.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InMemoryBroker } from '../src/transport/memory.js';
import { makeNode, numbered, until } from './helpers/session-nodes.js';

async function liveNodes() {
  const broker = new InMemoryBroker();
  const a = makeNode((id) => broker.transport(id.nodeId));
  const b = makeNode((id) => broker.transport(id.nodeId));
  await a.transport.start();
  await b.transport.start();
  for (let i = 0; i < 40; i++) {
    await a.manager.send(b.id, numbered(i));
    await b.manager.send(a.id, numbered(i));
  }
  await until(() => a.received.length === 40 && b.received.length === 40, 'warm-up traffic');
  await until(() => b.manager.snapshot().sessions[0]?.unacked === 0, 'acks settle');
  // Everything b was sent, of every kind: acts, data, acks.
  const captured = broker.published.filter((d) => d.to === b.id).map((d) => d.frame);
  return { broker, a, b, captured };
}

function totalDrops(stats: { dropped: Record<string, number | undefined> }): number {
  return Object.values(stats.dropped).reduce<number>((sum, n) => sum + (n ?? 0), 0);
}

test('[S-12] 12,000 random and mutated frames: nothing throws, session state never changes', async () => {
  const { a, b, captured } = await liveNodes();
  const kinds = captured.map((f) => f[0]);
  assert.ok([0x01, 0x03, 0x10, 0x11].every((k) => kinds.includes(k)), 'captured every frame kind');
  const sessionsBefore = JSON.stringify(b.manager.snapshot().sessions);
  const deliveredBefore = b.received.length;

  const capturedFrame = fc.constantFrom(...captured);
  const mutation = fc.oneof(
    // exact replay
    capturedFrame,
    // bit flips
    fc.tuple(capturedFrame, fc.array(fc.nat(), { minLength: 1, maxLength: 4 })).map(([frame, positions]) => {
      const out = frame.slice();
      for (const p of positions) out[p % out.length]! ^= 1 << (p % 8);
      return out;
    }),
    // truncation / extension
    fc.tuple(capturedFrame, fc.nat()).map(([frame, cut]) => frame.slice(0, cut % (frame.length + 1))),
    fc.tuple(capturedFrame, fc.uint8Array({ minLength: 1, maxLength: 40 })).map(([frame, tail]) => {
      const out = new Uint8Array(frame.length + tail.length);
      out.set(frame);
      out.set(tail, frame.length);
      return out;
    }),
    // header of one frame, body of another
    fc.tuple(capturedFrame, capturedFrame, fc.nat()).map(([x, y, at]) => {
      const cut = at % (Math.min(x.length, y.length) + 1);
      const out = y.slice();
      out.set(x.slice(0, cut));
      return out;
    }),
    // a valid-looking header with a random body, for each kind
    fc.tuple(fc.constantFrom(0x01, 0x02, 0x03, 0x10, 0x11, 0x12), fc.uint8Array({ minLength: 0, maxLength: 120 })).map(
      ([kind, body]) => Uint8Array.of(kind, ...body),
    ),
    // random bytes
    fc.uint8Array({ minLength: 0, maxLength: 300 }),
  );

  let inputs = 0;
  fc.assert(
    fc.property(mutation, (frame) => {
      inputs++;
      const dropsBefore = totalDrops(b.manager.stats());
      const pendingBefore = b.manager.snapshot().pendingResponders;
      b.manager.handleFrame(frame); // must not throw
      const after = b.manager.snapshot();
      assert.equal(JSON.stringify(after.sessions), sessionsBefore);
      const counted = totalDrops(b.manager.stats()) > dropsBefore;
      const startedHandshake = after.pendingResponders > pendingBefore || frame[0] === 0x01;
      assert.ok(counted || startedHandshake, `input neither counted nor a handshake: ${Buffer.from(frame).toString('hex')}`);
      assert.ok(after.pendingResponders <= 64);
    }),
    { numRuns: 12_000 },
  );
  assert.equal(inputs, 12_000);
  assert.equal(b.manager.stats().dropped['internal-error'] ?? 0, 0);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(b.received.length, deliveredBefore, 'nothing was delivered to the application');

  // And the genuine session still works.
  for (let i = 40; i < 60; i++) await a.manager.send(b.id, numbered(i));
  await until(() => b.received.length === deliveredBefore + 20, 'traffic after the fuzzing');
  a.manager.close();
  b.manager.close();
});

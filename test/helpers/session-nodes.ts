/** Nodes with a SessionManager on any FrameTransport, recording what they receive. */
import { randomIdentity, type NodeIdentity } from '../../src/session/identity.js';
import { SessionManager, type SessionEvent, type SessionManagerOptions } from '../../src/session/manager.js';
import type { FrameTransport, NodeId } from '../../src/transport/port.js';

export interface TestNode<T extends FrameTransport = FrameTransport> {
  identity: NodeIdentity;
  transport: T;
  id: NodeId;
  manager: SessionManager;
  received: { from: NodeId; payload: Uint8Array }[];
  events: SessionEvent[];
}

/** Fast timings so loss recovery takes milliseconds, not seconds. */
export const FAST_TIMINGS: Partial<SessionManagerOptions> = {
  reliability: { initialRtoMs: 40, maxRtoMs: 400, ackDelayMs: 5, maxRetransmits: 8 },
  handshakeTimeoutMs: 80,
  connectTimeoutMs: 10_000,
};

export function makeNode<T extends FrameTransport>(
  transportFor: (identity: NodeIdentity) => T,
  options: Partial<SessionManagerOptions> = FAST_TIMINGS,
  identity: NodeIdentity = randomIdentity(),
): TestNode<T> {
  const transport = transportFor(identity);
  const manager = new SessionManager({ ...options, identity, transport });
  const node: TestNode<T> = { identity, transport, id: identity.nodeId, manager, received: [], events: [] };
  manager.onMessage((from, payload) => node.received.push({ from, payload }));
  manager.onSession((event) => node.events.push(event));
  return node;
}

/** Wait until `condition` holds, polling; fail with `what` after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A numbered payload: 4-byte big-endian index followed by filler, so order can be checked. */
export function numbered(index: number, size = 48): Uint8Array {
  const payload = new Uint8Array(size);
  new DataView(payload.buffer).setUint32(0, index, false);
  payload.fill(index & 0xff, 4);
  return payload;
}

export function indexOf(payload: Uint8Array): number {
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(0, false);
}

/** Indices received from `from`, in arrival order. */
export function indicesFrom(node: TestNode, from: NodeId): number[] {
  return node.received.filter((r) => r.from === from).map((r) => indexOf(r.payload));
}

/** Deterministic PRNG (mulberry32) so fault-injection tests are repeatable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

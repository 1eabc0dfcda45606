/**
 * The in-memory Transport double: a broker in one process for tests of protocol cores and
 * of the session layer. It behaves like an MQTT broker with persistent QoS 1 sessions —
 * per-inbox FIFO delivery on a later tick, frames for an offline node queued until it comes
 * back, frames sent while offline queued by the client — and it can misbehave on purpose:
 * an interceptor may drop, duplicate, delay or rewrite any delivery, and inject() publishes
 * as a stranger would.
 */
import type { LinkState, NodeId, Transport, Unsubscribe } from './port.js';
import { isNodeId } from './port.js';

export interface Delivery {
  from: NodeId | 'stranger';
  to: NodeId;
  frame: Uint8Array;
}

/** What to do with one delivery: the frames to hand over instead (empty = drop). */
export type Interceptor = (delivery: Delivery) => Uint8Array[];

export class InMemoryBroker {
  readonly #transports = new Map<NodeId, InMemoryTransport>();
  readonly #queues = new Map<NodeId, Delivery[]>();
  readonly #announcements = new Map<NodeId, Uint8Array>();
  readonly #statuses = new Map<NodeId, Uint8Array>();
  #scheduled = false;
  interceptor: Interceptor | undefined;
  /** Every frame published to an inbox, in order (tests capture and replay from here). */
  readonly published: Delivery[] = [];

  /** A transport for `nodeId` on this broker (not started). */
  transport(nodeId: NodeId, options: { onlineStatus?: Uint8Array; offlineStatus?: Uint8Array } = {}): InMemoryTransport {
    if (!isNodeId(nodeId)) throw new TypeError('"nodeId" expected a node id');
    const transport = new InMemoryTransport(this, nodeId, options.onlineStatus, options.offlineStatus);
    this.#transports.set(nodeId, transport);
    return transport;
  }

  /** Publish onto a node's inbox as anyone could (for attack tests). */
  inject(to: NodeId, frame: Uint8Array): void {
    this.#enqueue({ from: 'stranger', to, frame: frame.slice() });
  }

  /** @internal */
  publish(delivery: Delivery): void {
    this.published.push(delivery);
    const frames = this.interceptor ? this.interceptor(delivery) : [delivery.frame];
    for (const frame of frames) this.#enqueue({ ...delivery, frame: frame.slice() });
  }

  /** @internal */
  retainAnnouncement(from: NodeId, bytes: Uint8Array): void {
    if (bytes.length === 0) this.#announcements.delete(from);
    else this.#announcements.set(from, bytes.slice());
    for (const t of this.#transports.values()) if (t.linkState === 'up') t.deliverAnnouncement(from, bytes);
  }

  /** @internal */
  retainStatus(from: NodeId, bytes: Uint8Array): void {
    this.#statuses.set(from, bytes.slice());
    for (const t of this.#transports.values()) if (t.linkState === 'up') t.deliverStatus(from, bytes);
  }

  /** @internal */
  retained(): { announcements: Map<NodeId, Uint8Array>; statuses: Map<NodeId, Uint8Array> } {
    return { announcements: this.#announcements, statuses: this.#statuses };
  }

  /** @internal A node came (back) online: flush what waited for it. */
  wake(): void {
    this.#schedule();
  }

  #enqueue(delivery: Delivery): void {
    let queue = this.#queues.get(delivery.to);
    if (queue === undefined) {
      queue = [];
      this.#queues.set(delivery.to, queue);
    }
    queue.push(delivery);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    for (const [to, queue] of this.#queues) {
      const target = this.#transports.get(to);
      if (target === undefined || target.linkState !== 'up') continue; // kept, like a persistent session
      const batch = queue.splice(0);
      for (const delivery of batch) target.deliverFrame(delivery.frame);
    }
  }
}

export class InMemoryTransport implements Transport {
  readonly localNodeId: NodeId;
  #linkState: LinkState = 'down';
  #started = false;
  #stopped = false;
  readonly #outbox: Delivery[] = [];
  readonly #frameHandlers = new Set<(frame: Uint8Array) => void>();
  readonly #linkHandlers = new Set<(state: LinkState) => void>();
  readonly #announcementHandlers = new Set<(from: NodeId, bytes: Uint8Array) => void>();
  readonly #statusHandlers = new Set<(from: NodeId, bytes: Uint8Array) => void>();
  /** watchPresence() calls in force, per node or 'all'. */
  readonly #watches = new Map<NodeId | 'all', number>();

  constructor(
    readonly broker: InMemoryBroker,
    nodeId: NodeId,
    readonly onlineStatus: Uint8Array | undefined,
    readonly offlineStatus: Uint8Array | undefined,
  ) {
    this.localNodeId = nodeId;
  }

  get linkState(): LinkState {
    return this.#linkState;
  }

  async start(): Promise<void> {
    if (this.#stopped) throw new Error('transport stopped');
    this.#started = true;
    this.#setLink('up');
    // Subscriptions made before the first connection are granted now, with their retained values.
    for (const node of this.#watches.keys()) this.#deliverRetained(node);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    if (this.offlineStatus !== undefined && this.#linkState === 'up') {
      this.broker.retainStatus(this.localNodeId, this.offlineStatus);
    }
    this.#stopped = true;
    this.#setLink('down');
  }

  /** Simulate losing the broker connection (the Last Will fires) and, later, reconnecting. */
  setLink(state: LinkState): void {
    if (!this.#started || this.#stopped) return;
    if (state === 'down' && this.#linkState === 'up' && this.offlineStatus !== undefined) {
      this.broker.retainStatus(this.localNodeId, this.offlineStatus);
    }
    this.#setLink(state);
  }

  #setLink(state: LinkState): void {
    if (state === this.#linkState) return;
    this.#linkState = state;
    if (state === 'up') {
      if (this.onlineStatus !== undefined) this.broker.retainStatus(this.localNodeId, this.onlineStatus);
      for (const delivery of this.#outbox.splice(0)) this.broker.publish(delivery);
      this.broker.wake();
    }
    for (const handler of this.#linkHandlers) handler(state);
  }

  async sendFrame(to: NodeId, frame: Uint8Array): Promise<void> {
    if (!isNodeId(to)) throw new TypeError('"to" expected a node id');
    if (!(frame instanceof Uint8Array)) throw new TypeError('"frame" expected a Uint8Array');
    if (this.#stopped) throw new Error('transport stopped');
    const delivery: Delivery = { from: this.localNodeId, to, frame: frame.slice() };
    if (this.#linkState === 'up') this.broker.publish(delivery);
    else this.#outbox.push(delivery);
  }

  onFrame(handler: (frame: Uint8Array) => void): Unsubscribe {
    this.#frameHandlers.add(handler);
    return () => this.#frameHandlers.delete(handler);
  }

  onLinkState(handler: (state: LinkState) => void): Unsubscribe {
    this.#linkHandlers.add(handler);
    return () => this.#linkHandlers.delete(handler);
  }

  async publishAnnouncement(announcement: Uint8Array): Promise<void> {
    this.broker.retainAnnouncement(this.localNodeId, announcement);
  }

  async withdrawAnnouncement(): Promise<void> {
    this.broker.retainAnnouncement(this.localNodeId, new Uint8Array());
  }

  watchPresence(node: NodeId | 'all'): Unsubscribe {
    if (node !== 'all' && !isNodeId(node)) throw new TypeError('"node" expected a node id or \'all\'');
    const count = this.#watches.get(node) ?? 0;
    this.#watches.set(node, count + 1);
    // A new subscription brings the retained values at once, as on a broker (once connected).
    if (count === 0 && this.#linkState === 'up') this.#deliverRetained(node);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.#watches.get(node) ?? 1) - 1;
      if (left > 0) this.#watches.set(node, left);
      else this.#watches.delete(node);
    };
  }

  onAnnouncement(handler: (from: NodeId, announcement: Uint8Array) => void): Unsubscribe {
    this.#announcementHandlers.add(handler);
    return () => this.#announcementHandlers.delete(handler);
  }

  onStatus(handler: (from: NodeId, status: Uint8Array) => void): Unsubscribe {
    this.#statusHandlers.add(handler);
    return () => this.#statusHandlers.delete(handler);
  }

  #watching(node: NodeId): boolean {
    return this.#watches.has('all') || this.#watches.has(node);
  }

  #deliverRetained(node: NodeId | 'all'): void {
    const { announcements, statuses } = this.broker.retained();
    for (const [from, bytes] of announcements) if (node === 'all' || from === node) this.deliverAnnouncement(from, bytes);
    for (const [from, bytes] of statuses) if (node === 'all' || from === node) this.deliverStatus(from, bytes);
  }

  /** @internal */
  deliverFrame(frame: Uint8Array): void {
    for (const handler of this.#frameHandlers) {
      try {
        handler(frame.slice());
      } catch {
        // A handler's failure is its own; the broker keeps delivering.
      }
    }
  }

  /** @internal */
  deliverAnnouncement(from: NodeId, bytes: Uint8Array): void {
    if (!this.#watching(from)) return;
    for (const handler of this.#announcementHandlers) handler(from, bytes.slice());
  }

  /** @internal */
  deliverStatus(from: NodeId, bytes: Uint8Array): void {
    if (!this.#watching(from)) return;
    for (const handler of this.#statusHandlers) handler(from, bytes.slice());
  }
}

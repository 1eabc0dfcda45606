/**
 * The Transport port over MQTT (mqtt.js), for MQTT 3.1.1 and 5.
 *
 * Each node owns a persistent session under a fixed client id, so frames published to its
 * inbox while it is offline wait at the broker (QoS 1, clean session 0 / clean start 0 with a
 * session expiry). Presence rides on retained messages: our status topic holds the caller's
 * signed online status while we are connected and the signed offline status (our Last Will)
 * once we are gone; our announcement topic holds the signed announcement until withdrawn.
 *
 * Everything that arrives is untrusted: payloads are size-bounded here and copied into plain
 * Uint8Arrays, topics that are not ours are ignored, and a throwing handler is counted and
 * skipped. Buffer never leaves the adapter. Options and their mqtt.js form: options.ts.
 *
 * @example
 * const t = new MqttTransport({
 *   url: 'mqtts://broker.example:8883', localNodeId: myNodeId,
 *   username: myNodeId, password: secret, tls: { ca },
 *   onlineStatus: signedOnline, offlineStatus: signedOffline,
 * });
 * t.onFrame((frame) => session.receive(frame));
 * await t.start();
 * await t.sendFrame(peerNodeId, frame);
 * await t.stop();
 */
import {
  connect,
  ReasonCodes,
  type IClientOptions,
  type IConnackPacket,
  type IPublishPacket,
  type MqttClient,
  type Packet,
} from 'mqtt';
import {
  ANNOUNCE_FILTER,
  STATUS_FILTER,
  announceTopic,
  inboxTopic,
  isNodeId,
  nodeIdFromTopic,
  statusTopic,
  type LinkState,
  type NodeId,
  type Transport,
  type Unsubscribe,
} from '../port.js';
import {
  MAX_FRAME_BYTES,
  MAX_PRESENCE_BYTES,
  reconnectDelayMs,
  resolveOptions,
  type MqttTransportOptions,
  type ReconnectPolicy,
} from './options.js';

export interface MqttTransportStats {
  /** `frameBytes`: inbox payload bytes (the session frames, not MQTT headers). */
  received: { frames: number; frameBytes: number; announcements: number; statuses: number };
  dropped: {
    /** Inbox payloads over MAX_FRAME_BYTES. */
    oversizedFrame: number;
    /** Announcements or statuses over MAX_PRESENCE_BYTES. */
    oversizedPresence: number;
    /** Retained messages on our inbox: stale copies someone left there, never live frames. */
    retainedFrame: number;
    /** Messages on topics outside our layout. */
    unknownTopic: number;
    /** Presence of a node no longer watched (in flight when we unsubscribed). */
    unwatchedPresence: number;
    /** sendFrame calls refused because maxQueuedFrames were already waiting for the link. */
    queueFull: number;
  };
  sent: { frames: number; frameBytes: number; queuedWhileDown: number; refusedByBroker: number };
  handlerErrors: number;
  /** Subscriptions the broker refused (SUBACK 0x80 or an MQTT 5 reason code ≥ 0x80): an ACL problem. */
  subscribeRefused: number;
  connects: number;
  /** Successful connects after the first. */
  reconnects: number;
  /** Attempts since the link last went down (0 while up). */
  reconnectAttempts: number;
  /** Delay mqtt.js will wait before the next attempt. */
  reconnectDelayMs: number;
  /** 'error' events from mqtt.js: socket errors, refusals, timeouts. */
  errors: number;
  lastError?: string;
}

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

interface StartWaiter {
  resolve(): void;
  reject(err: Error): void;
}

export class MqttTransport implements Transport {
  readonly localNodeId: NodeId;
  private readonly url: string;
  private readonly clientOptions: IClientOptions;
  private readonly policy: ReconnectPolicy;
  private online: Uint8Array;
  private offline: Uint8Array;
  private readonly refreshPresence: MqttTransportOptions['refreshPresence'];
  private readonly inbox: string;
  private readonly maxQueuedFrames: number;
  private readonly stopTimeoutMs: number;

  private state: State = 'idle';
  private client: MqttClient | undefined;
  private detach: (() => void) | undefined;
  private startWaiter: StartWaiter | undefined;
  private stopping: Promise<void> | undefined;
  private link: LinkState = 'down';
  /** Bumped on every CONNACK so work begun for an older connection can tell it is stale. */
  private generation = 0;
  private queuedWhileDown = 0;
  /** Filters we want, and those the broker holds in our current session. */
  private readonly wanted = new Set<string>();
  private readonly granted = new Set<string>();
  /** How many watchPresence() calls hold each presence filter. */
  private readonly presenceWatches = new Map<string, number>();
  /** Presence filters given up while the link was down, which the broker's session may still hold. */
  private readonly abandoned = new Set<string>();
  /** Sends not yet settled: resolved when PUBACKed, queued, or when the link or the transport goes away. */
  private readonly pending = new Set<() => void>();

  private readonly frameHandlers = new Set<(frame: Uint8Array) => void>();
  private readonly linkHandlers = new Set<(state: LinkState) => void>();
  private readonly announcementHandlers = new Set<(from: NodeId, announcement: Uint8Array) => void>();
  private readonly statusHandlers = new Set<(from: NodeId, status: Uint8Array) => void>();

  private readonly counters: MqttTransportStats = {
    received: { frames: 0, frameBytes: 0, announcements: 0, statuses: 0 },
    dropped: { oversizedFrame: 0, oversizedPresence: 0, retainedFrame: 0, unknownTopic: 0, unwatchedPresence: 0, queueFull: 0 },
    sent: { frames: 0, frameBytes: 0, queuedWhileDown: 0, refusedByBroker: 0 },
    handlerErrors: 0,
    subscribeRefused: 0,
    connects: 0,
    reconnects: 0,
    reconnectAttempts: 0,
    reconnectDelayMs: 0,
    errors: 0,
  };

  constructor(options: MqttTransportOptions) {
    const settings = resolveOptions(options);
    this.url = settings.url;
    this.localNodeId = settings.localNodeId;
    this.clientOptions = settings.clientOptions;
    this.policy = settings.policy;
    this.online = settings.online;
    this.offline = settings.offline;
    this.refreshPresence = options.refreshPresence;
    this.maxQueuedFrames = settings.maxQueuedFrames;
    this.stopTimeoutMs = settings.stopTimeoutMs;
    this.inbox = inboxTopic(this.localNodeId);
    this.wanted.add(this.inbox);
    this.counters.reconnectDelayMs = this.clientOptions.reconnectPeriod ?? 0;
  }

  get linkState(): LinkState {
    return this.link;
  }

  /**
   * Connect, subscribe to our inbox and publish our online status. Resolves after the first
   * connection has done all three; keeps retrying (with back-off) while the broker is
   * unreachable; rejects if the broker refuses the connection (credentials, protocol version)
   * or our inbox subscription (ACL), or if stop() is called first.
   */
  start(): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new Error(`MqttTransport: start() called while ${this.state}`));
    this.state = 'starting';
    const started = new Promise<void>((resolve, reject) => {
      this.startWaiter = { resolve, reject };
    });
    const client = connect(this.url, { ...this.clientOptions });
    this.client = client;
    this.detach = this.attach(client);
    return started;
  }

  /**
   * Publish `frame` to `to`'s inbox at QoS 1, never retained. Resolves once the broker has
   * PUBACKed it, or — if the link is down — as soon as mqtt.js has queued it for the
   * reconnect; a send in flight when the link drops resolves at the drop (it stays queued
   * and is resent with DUP set [MQTT-4.4.0-1]). It never waits for the link to come back.
   * Frames beyond maxQueuedFrames while down are dropped (counted) and resolve too: delivery
   * is the session layer's job. Rejects on a bad argument, before start() or after stop().
   */
  async sendFrame(to: NodeId, frame: Uint8Array): Promise<void> {
    if (!isNodeId(to)) throw new TypeError('"to" expected a node id (66 lowercase hex characters)');
    if (!(frame instanceof Uint8Array)) throw new TypeError('"frame" expected Uint8Array');
    if (frame.byteLength > MAX_FRAME_BYTES) throw new RangeError(`"frame" exceeds ${MAX_FRAME_BYTES} bytes`);
    const client = this.usableClient('sendFrame');
    if (!client.connected) {
      if (this.queuedWhileDown >= this.maxQueuedFrames) {
        this.counters.dropped.queueFull++;
        return;
      }
      this.queuedWhileDown++;
      this.counters.sent.queuedWhileDown++;
    }
    this.counters.sent.frames++;
    this.counters.sent.frameBytes += frame.byteLength;
    await this.publish(client, inboxTopic(to), frame, false);
  }

  onFrame(handler: (frame: Uint8Array) => void): Unsubscribe {
    return addHandler(this.frameHandlers, handler, 'handler');
  }

  onLinkState(handler: (state: LinkState) => void): Unsubscribe {
    return addHandler(this.linkHandlers, handler, 'handler');
  }

  async publishAnnouncement(announcement: Uint8Array): Promise<void> {
    if (!(announcement instanceof Uint8Array)) throw new TypeError('"announcement" expected Uint8Array');
    if (announcement.byteLength === 0) throw new RangeError('"announcement" is empty (use withdrawAnnouncement)');
    if (announcement.byteLength > MAX_PRESENCE_BYTES) throw new RangeError(`"announcement" exceeds ${MAX_PRESENCE_BYTES} bytes`);
    await this.publish(this.usableClient('publishAnnouncement'), announceTopic(this.localNodeId), announcement, true);
  }

  async withdrawAnnouncement(): Promise<void> {
    // A zero-byte retained publish removes the retained message [MQTT-3.3.1-10].
    await this.publish(this.usableClient('withdrawAnnouncement'), announceTopic(this.localNodeId), new Uint8Array(0), true);
  }

  watchPresence(node: NodeId | 'all'): Unsubscribe {
    if (node !== 'all' && !isNodeId(node)) throw new TypeError('"node" expected a node id or \'all\'');
    const filters = node === 'all' ? [ANNOUNCE_FILTER, STATUS_FILTER] : [announceTopic(node), statusTopic(node)];
    for (const filter of filters) this.wantFilter(filter);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const filter of filters) this.unwantFilter(filter);
    };
  }

  onAnnouncement(handler: (from: NodeId, announcement: Uint8Array) => void): Unsubscribe {
    return addHandler(this.announcementHandlers, handler, 'handler');
  }

  onStatus(handler: (from: NodeId, status: Uint8Array) => void): Unsubscribe {
    return addHandler(this.statusHandlers, handler, 'handler');
  }

  /**
   * Publish our offline status (retained), disconnect with DISCONNECT — which discards the
   * Will [MQTT-3.1.2-10], hence the explicit publish — and release every listener and timer.
   * Sends still pending resolve. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** A snapshot of the counters. */
  stats(): MqttTransportStats {
    return structuredClone(this.counters);
  }

  // ---- connection lifecycle -------------------------------------------------------------

  private attach(client: MqttClient): () => void {
    const onConnect = (connack: IConnackPacket): void => this.onConnect(client, connack);
    const onClose = (): void => this.onClose();
    const onReconnect = (): void => {
      // mqtt.js retries on a fixed interval read when each wait is armed (after the attempt
      // below fails), so setting it here makes the waits grow attempt by attempt.
      this.counters.reconnectAttempts++;
      const delay = reconnectDelayMs(this.counters.reconnectAttempts, this.policy);
      client.options.reconnectPeriod = delay;
      this.counters.reconnectDelayMs = delay;
      // mqtt.js builds the CONNECT (and its Will) from client.options after this event.
      const fresh = this.refreshPresence?.();
      if (fresh !== undefined && client.options.will !== undefined) {
        this.online = fresh.onlineStatus.slice();
        this.offline = fresh.offlineStatus.slice();
        client.options.will.payload = Buffer.from(this.offline);
      }
    };
    const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void =>
      this.onMessage(topic, payload, packet.retain);
    const onPacket = (packet: Packet): void => {
      if (packet.cmd !== 'connack') return;
      const code = (client.options.protocolVersion === 5 ? packet.reasonCode : packet.returnCode) ?? 0;
      if (code !== 0) this.onRefused(code);
    };
    const onError = (err: Error): void => {
      // Socket errors, timeouts and refusals all end in 'close' and a retry; never rethrow.
      this.counters.errors++;
      this.counters.lastError = err.message;
    };
    client.on('connect', onConnect);
    client.on('close', onClose);
    client.on('reconnect', onReconnect);
    client.on('message', onMessage);
    client.on('packetreceive', onPacket);
    client.on('error', onError);
    return () => {
      client.off('connect', onConnect);
      client.off('close', onClose);
      client.off('reconnect', onReconnect);
      client.off('message', onMessage);
      client.off('packetreceive', onPacket);
      client.off('error', onError);
      // Late socket errors after we let go must not become unhandled 'error' events.
      client.on('error', () => {});
    };
  }

  private onConnect(client: MqttClient, connack: IConnackPacket): void {
    if (this.state !== 'starting' && this.state !== 'running') return;
    // Frames are small and each waits for an answer: with Nagle's algorithm on (mqtt.js leaves it on) a
    // frame sent while a previous one is unacknowledged waits for the peer's delayed ACK, ~40 ms a hop.
    (client.stream as { setNoDelay?: (noDelay: boolean) => unknown } | undefined)?.setNoDelay?.(true);
    const generation = ++this.generation;
    if (this.counters.connects++ > 0) this.counters.reconnects++;
    this.counters.reconnectAttempts = 0;
    client.options.reconnectPeriod = reconnectDelayMs(0, this.policy);
    this.counters.reconnectDelayMs = client.options.reconnectPeriod;
    this.queuedWhileDown = 0;
    // Without a session the broker forgot our subscriptions [MQTT-3.2.2-3]; mqtt.js' own
    // resubscribe only knows what it subscribed itself, so we track what the session holds.
    if (!connack.sessionPresent) this.granted.clear();
    else for (const filter of this.abandoned) if (!this.wanted.has(filter)) client.unsubscribe(filter);
    this.abandoned.clear();
    const inboxGranted = this.subscribeMissing(client, generation);
    // Retained so anyone subscribing later sees it [MQTT-3.3.1-5]; republished on every connect
    // because the Will may have replaced it while we were away.
    const onlinePublished = this.publish(client, statusTopic(this.localNodeId), this.online, true);
    this.setLink('up');
    if (this.startWaiter === undefined) return;
    void Promise.all([inboxGranted, onlinePublished]).then(([granted]) => {
      if (this.startWaiter === undefined || generation !== this.generation) return;
      if (granted === 'refused') {
        this.failStart(new Error(`MqttTransport: the broker refused our inbox subscription ${this.inbox} (check the ACL)`));
      } else if (granted === 'ok') {
        const waiter = this.startWaiter;
        this.startWaiter = undefined;
        this.state = 'running';
        waiter.resolve();
      }
      // 'lost': the link dropped first; the next CONNACK tries again.
    });
  }

  private onClose(): void {
    if (this.link === 'up') {
      this.setLink('down');
      // Whatever is still unacknowledged sits in mqtt.js' store and is resent after the
      // reconnect; by the port's contract those sends are done once queued.
      this.settlePending();
    }
  }

  private onRefused(code: number): void {
    const reason = (ReasonCodes as Record<number, string | undefined>)[code] ?? 'unknown reason';
    if (this.startWaiter !== undefined) {
      this.failStart(new Error(`MqttTransport: the broker refused the connection: ${reason} (code ${code})`));
    }
  }

  private failStart(err: Error): void {
    const waiter = this.startWaiter;
    this.startWaiter = undefined;
    // Settle the caller first, then release the client in the background.
    waiter?.reject(err);
    void this.stop();
  }

  private async shutdown(): Promise<void> {
    this.state = 'stopping';
    const waiter = this.startWaiter;
    this.startWaiter = undefined;
    waiter?.reject(new Error('MqttTransport: stopped before the first connection completed'));
    const client = this.client;
    if (client !== undefined) {
      // Even mid-start: our online status may already be retained and must not outlive us.
      if (client.connected) {
        await withTimeout(this.publish(client, statusTopic(this.localNodeId), this.offline, true), this.stopTimeoutMs);
      }
      await this.endClient(client);
      this.detach?.();
      this.detach = undefined;
    }
    this.settlePending();
    this.setLink('down');
    this.state = 'stopped';
    this.frameHandlers.clear();
    this.linkHandlers.clear();
    this.announcementHandlers.clear();
    this.statusHandlers.clear();
  }

  /** Graceful DISCONNECT when connected (waits for outstanding PUBACKs), else drop the socket; bounded either way. */
  private endClient(client: MqttClient): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        // The graceful path waits for PUBACKs that a dying link will never bring.
        client.stream?.destroy();
        resolve();
      }, this.stopTimeoutMs);
      client.end(!client.connected, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private setLink(state: LinkState): void {
    if (this.link === state) return;
    this.link = state;
    this.dispatch(this.linkHandlers, state);
  }

  // ---- subscriptions --------------------------------------------------------------------

  /** Count one more watch of a presence filter; the first one subscribes (now, or at the next CONNACK). */
  private wantFilter(filter: string): void {
    const count = this.presenceWatches.get(filter) ?? 0;
    this.presenceWatches.set(filter, count + 1);
    if (count > 0 || this.wanted.has(filter)) return;
    this.wanted.add(filter);
    if (this.abandoned.delete(filter)) this.granted.add(filter); // the session still holds it
    const client = this.client;
    if (client?.connected && (this.state === 'running' || this.state === 'starting')) {
      void this.subscribe(client, filter, this.generation);
    }
  }

  /** Count one watch less; the last one unsubscribes. */
  private unwantFilter(filter: string): void {
    const count = this.presenceWatches.get(filter) ?? 0;
    if (count > 1) {
      this.presenceWatches.set(filter, count - 1);
      return;
    }
    this.presenceWatches.delete(filter);
    if (!this.wanted.delete(filter)) return;
    const wasGranted = this.granted.delete(filter);
    const client = this.client;
    if (!wasGranted) return;
    if (client?.connected && this.state === 'running') client.unsubscribe(filter);
    // Offline: the broker's session keeps the subscription until the next CONNACK says it still exists.
    else this.abandoned.add(filter);
  }

  /** Subscribe to every wanted filter the session lacks; reports how the inbox one went. */
  private async subscribeMissing(client: MqttClient, generation: number): Promise<'ok' | 'refused' | 'lost'> {
    let inbox: 'ok' | 'refused' | 'lost' = this.granted.has(this.inbox) ? 'ok' : 'lost';
    const results = await Promise.all(
      [...this.wanted].filter((f) => !this.granted.has(f)).map(async (f) => [f, await this.subscribe(client, f, generation)] as const),
    );
    for (const [filter, result] of results) if (filter === this.inbox) inbox = result;
    return inbox;
  }

  private subscribe(client: MqttClient, filter: string, generation: number): Promise<'ok' | 'refused' | 'lost'> {
    return new Promise((resolve) => {
      client.subscribe(filter, { qos: 1 }, (err, granted) => {
        const refused = (granted ?? []).some((g) => (g.qos & 0x80) !== 0) || (err !== null && /Subscribe error/.test(err.message));
        if (refused) {
          this.counters.subscribeRefused++;
          resolve('refused');
        } else if (err !== null || generation !== this.generation) {
          // The connection closed before SUBACK; the next CONNACK decides again.
          resolve('lost');
        } else {
          if (this.wanted.has(filter)) this.granted.add(filter);
          resolve('ok');
        }
      });
    });
  }

  // ---- publishing -------------------------------------------------------------------------

  private usableClient(method: string): MqttClient {
    if (this.state === 'stopping' || this.state === 'stopped') throw new Error(`MqttTransport: ${method}() after stop()`);
    if (this.client === undefined) throw new Error(`MqttTransport: ${method}() before start()`);
    return this.client;
  }

  /** QoS 1 publish settled by PUBACK, by being queued while the link is down, or by a drop or stop(). */
  private publish(client: MqttClient, topic: string, bytes: Uint8Array, retain: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const settle = (): void => {
        if (this.pending.delete(settle)) resolve();
      };
      this.pending.add(settle);
      const queued = !client.connected;
      // Copied: the caller may reuse its array while the packet waits in mqtt.js' store.
      client.publish(topic, Buffer.from(bytes), { qos: 1, retain, ...(queued ? { cbStorePut: settle } : {}) }, (err) => {
        // An MQTT 5 PUBACK with a reason code ≥ 0x80 (e.g. 0x87 not authorised) arrives here;
        // MQTT 3.1.1 brokers drop a forbidden publish silently instead.
        if (err !== undefined && err !== null && /Publish error/.test(err.message)) this.counters.sent.refusedByBroker++;
        settle();
      });
    });
  }

  private settlePending(): void {
    for (const settle of [...this.pending]) settle();
  }

  // ---- receiving --------------------------------------------------------------------------

  private onMessage(topic: string, payload: Buffer, retained: boolean): void {
    if (topic === this.inbox) {
      if (payload.byteLength > MAX_FRAME_BYTES) {
        this.counters.dropped.oversizedFrame++;
        return;
      }
      // Live messages reach subscribers with RETAIN 0 [MQTT-3.3.1-9]; a retained one on an
      // inbox is a stale copy someone stored there and would replay on every subscribe.
      if (retained) {
        this.counters.dropped.retainedFrame++;
        return;
      }
      this.counters.received.frames++;
      this.counters.received.frameBytes += payload.byteLength;
      this.dispatch(this.frameHandlers, new Uint8Array(payload));
      return;
    }
    const from = nodeIdFromTopic(topic);
    const isAnnouncement = from !== undefined && topic === announceTopic(from);
    const isStatus = from !== undefined && topic === statusTopic(from);
    if (from === undefined || (!isAnnouncement && !isStatus)) {
      this.counters.dropped.unknownTopic++;
      return;
    }
    // Only what is watched now: a publish in flight when we unsubscribed, or one for a filter the
    // broker's session kept, is not asked for.
    if (!this.wanted.has(topic) && !this.wanted.has(isAnnouncement ? ANNOUNCE_FILTER : STATUS_FILTER)) {
      this.counters.dropped.unwatchedPresence++;
      return;
    }
    if (payload.byteLength > MAX_PRESENCE_BYTES) {
      this.counters.dropped.oversizedPresence++;
      return;
    }
    // new Uint8Array(buffer) copies, so the core gets a plain Uint8Array it may keep.
    if (isAnnouncement) {
      this.counters.received.announcements++;
      this.dispatch(this.announcementHandlers, from, new Uint8Array(payload));
    } else {
      this.counters.received.statuses++;
      this.dispatch(this.statusHandlers, from, new Uint8Array(payload));
    }
  }

  /** Call every handler; one that throws (or rejects) is counted and the others still run. */
  private dispatch<A extends unknown[]>(handlers: Set<(...args: A) => void>, ...args: A): void {
    for (const handler of [...handlers]) {
      try {
        const result: unknown = handler(...args);
        if (result instanceof Promise) {
          result.catch(() => {
            this.counters.handlerErrors++;
          });
        }
      } catch {
        this.counters.handlerErrors++;
      }
    }
  }
}

function addHandler<H>(set: Set<H>, handler: H, name: string): Unsubscribe {
  if (typeof handler !== 'function') throw new TypeError(`"${name}" expected a function`);
  set.add(handler);
  return () => {
    set.delete(handler);
  };
}

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The messenger: what a Trickle node uses to talk. It puts the wire catalogue (src/wire) on
 * top of secure sessions (src/session) over any Transport, and keeps a directory of the
 * signed service announcements and node statuses it has seen (docs/protocol.md §4–§5).
 *
 * Peers' messages arrive decoded and typed; a payload that fails strict decoding is dropped and
 * counted by its WireError code ([W-13]). Pings are answered with pongs here. Announcements and
 * statuses are verified against the node id in their topic before they reach the directory.
 *
 * @example
 *   const messenger = await Messenger.start({ identity, transport });
 *   messenger.onMessage((peer, message) => { if (message.type === 'oneway_pay') ... });
 *   await messenger.send(peerId, { type: 'ping', id: 1 });
 */
import { hexToBytes } from '../bytes.js';
import type { Clock } from '../clock.js';
import type { NodeIdentity } from '../session/identity.js';
import {
  SessionManager,
  type SessionEvent,
  type SessionManagerOptions,
  type SessionStats,
} from '../session/manager.js';
import { isNodeId, type FrameTransport, type NodeId, type Transport, type Unsubscribe } from '../transport/port.js';
import {
  WireError,
  encodeMessage,
  openAnnouncement,
  openNodeStatus,
  signAnnouncement,
  tryDecodeMessage,
  type NodeStatus,
  type ServiceAnnouncementFields,
  type ServiceOffer,
  type WireMessage,
} from '../wire/index.js';

/** Announcements dated further ahead than this are ignored (clocks drift, but not by hours). */
const MAX_FUTURE_SKEW_SEC = 600;

export interface MessengerOptions {
  identity: NodeIdentity;
  /** Started by Messenger.start() and stopped by stop(). */
  transport: Transport;
  clock?: Clock;
  /** Seconds since 1970, for announcement timestamps (default: the system clock). */
  wallClockSec?: () => number;
  session?: Omit<SessionManagerOptions, 'identity' | 'transport' | 'clock'>;
  /** Largest decoded message accepted from a peer (default and maximum 65,535, one BOLT 8 message). */
  maxMessageBytes?: number;
  /**
   * Hold every frame that arrives until releaseInbound(). A node restarting from disk sets this so no
   * session comes up, and no peer message (a channel_reestablish) arrives, before its channel runtimes
   * have loaded their records and subscribed; otherwise such a message reaches no one and the channel
   * waits for a reestablish that was already sent. At most MAX_HELD_FRAMES are kept (the session layer
   * retransmits the rest).
   */
  holdInbound?: boolean;
  /**
   * Whose announcements and statuses to receive. 'all' (the default): the whole presence board, so
   * directory() discovers every provider on the broker. 'watched': only the nodes passed to watch() —
   * what a device that already knows its provider wants, since on a busy broker the whole board is
   * thousands of retained messages to receive and verify.
   */
  presence?: 'all' | 'watched';
}

const MAX_HELD_FRAMES = 1024;

export interface DirectoryEntry {
  announcement: ServiceAnnouncementFields;
  /** 'public': retained on the broker for anyone; 'private': sent to us inside a session. */
  via: 'public' | 'private';
}

export interface PeerStatus {
  node: NodeId;
  status: NodeStatus;
  timestamp: number;
}

export interface MessengerStats {
  session: SessionStats;
  /** Payloads from authenticated peers that failed strict decoding, by WireError code. */
  invalidMessages: Partial<Record<string, number>>;
  /** Announcements and statuses refused (bad signature, wrong node, from the future…), by code. */
  invalidAnnouncements: Partial<Record<string, number>>;
  handlerErrors: number;
}

export class Messenger {
  readonly nodeId: NodeId;
  readonly #identity: NodeIdentity;
  readonly #transport: Transport;
  readonly #sessions: SessionManager;
  readonly #wallClockSec: () => number;
  readonly #maxMessageBytes: number;
  readonly #directory = new Map<NodeId, DirectoryEntry>();
  readonly #statuses = new Map<NodeId, PeerStatus>();
  readonly #messageHandlers = new Set<(peer: NodeId, message: WireMessage) => void>();
  readonly #announcementHandlers = new Set<(node: NodeId, entry: DirectoryEntry | undefined) => void>();
  readonly #statusHandlers = new Set<(status: PeerStatus) => void>();
  readonly #unsubscribe: Unsubscribe[] = [];
  readonly #invalidMessages: Partial<Record<string, number>> = {};
  readonly #invalidAnnouncements: Partial<Record<string, number>> = {};
  #handlerErrors = 0;
  #stopped = false;
  #heldFrames: Uint8Array[] | undefined;
  readonly #watchesAll: boolean;
  readonly #watches = new Set<Unsubscribe>();
  #frameHandler: ((frame: Uint8Array) => void) | undefined;

  private constructor(options: MessengerOptions) {
    this.#identity = options.identity;
    this.#transport = options.transport;
    this.nodeId = options.identity.nodeId;
    this.#wallClockSec = options.wallClockSec ?? (() => Math.floor(Date.now() / 1000));
    const max = options.maxMessageBytes ?? 65535;
    if (!Number.isInteger(max) || max < 1 || max > 65535) throw new RangeError('"maxMessageBytes" expected 1..65535');
    this.#maxMessageBytes = max;
    const presence = options.presence ?? 'all';
    if (presence !== 'all' && presence !== 'watched') throw new RangeError('"presence" expected \'all\' or \'watched\'');
    this.#watchesAll = presence === 'all';
    if (options.holdInbound) this.#heldFrames = [];
    const transport = options.transport;
    const frames: FrameTransport = {
      localNodeId: transport.localNodeId,
      get linkState() {
        return transport.linkState;
      },
      sendFrame: (to, frame) => transport.sendFrame(to, frame),
      onFrame: (handler) => {
        this.#frameHandler = handler;
        return transport.onFrame((frame) => {
          if (this.#heldFrames === undefined) handler(frame);
          else if (this.#heldFrames.length < MAX_HELD_FRAMES) this.#heldFrames.push(frame);
        });
      },
      onLinkState: (handler) => transport.onLinkState(handler),
    };
    this.#sessions = new SessionManager({
      ...options.session,
      identity: options.identity,
      transport: frames,
      ...(options.clock !== undefined ? { clock: options.clock } : {}),
    });
    this.#unsubscribe.push(
      this.#sessions.onMessage((peer, payload) => this.#onPayload(peer, payload)),
      this.#transport.onAnnouncement((from, bytes) => this.#onPublicAnnouncement(from, bytes)),
      this.#transport.onStatus((from, bytes) => this.#onStatus(from, bytes)),
    );
    if (this.#watchesAll) this.#unsubscribe.push(this.#transport.watchPresence('all'));
  }

  /** Deliver the frames held since start (MessengerOptions.holdInbound), in order, and stop holding. */
  releaseInbound(): void {
    const held = this.#heldFrames;
    this.#heldFrames = undefined;
    for (const frame of held ?? []) this.#frameHandler?.(frame);
  }

  /** Create the messenger and start its transport (connect, subscribe, publish online status). */
  static async start(options: MessengerOptions): Promise<Messenger> {
    const messenger = new Messenger(options);
    try {
      await options.transport.start();
    } catch (error) {
      messenger.#sessions.close();
      throw error;
    }
    return messenger;
  }

  /** The transport under the sessions (e.g. to read an MQTT adapter's byte counters). */
  get transport(): Transport {
    return this.#transport;
  }

  /** Encode and send one message to a peer over its secure session (handshaking if needed). */
  async send(peer: NodeId, message: WireMessage): Promise<void> {
    await this.#sessions.send(peer, encodeMessage(message, { maxBytes: 65535 }));
  }

  /** Establish the session with `peer` now (e.g. at start-up, to resynchronise channels). */
  connect(peer: NodeId): Promise<void> {
    return this.#sessions.connect(peer);
  }

  /** Every valid message from an authenticated peer, once, in the order it was sent. */
  onMessage(handler: (peer: NodeId, message: WireMessage) => void): Unsubscribe {
    this.#messageHandlers.add(handler);
    return () => this.#messageHandlers.delete(handler);
  }

  /** A session was (re-)established; `replaced: true` means resynchronise channels with that peer. */
  onSession(handler: (event: SessionEvent) => void): Unsubscribe {
    return this.#sessions.onSession(handler);
  }

  /** A verified announcement arrived or replaced an older one (undefined: withdrawn). */
  onAnnouncement(handler: (node: NodeId, entry: DirectoryEntry | undefined) => void): Unsubscribe {
    this.#announcementHandlers.add(handler);
    return () => this.#announcementHandlers.delete(handler);
  }

  onPeerStatus(handler: (status: PeerStatus) => void): Unsubscribe {
    this.#statusHandlers.add(handler);
    return () => this.#statusHandlers.delete(handler);
  }

  /**
   * Receive `node`'s public announcement and status (its retained values arrive at once) until the
   * returned function is called. Needed only with `presence: 'watched'`; with 'all' every node is
   * already received and this does nothing. What arrived stays in directory() and statuses().
   */
  watch(node: NodeId): Unsubscribe {
    if (!isNodeId(node)) throw new TypeError('"node" expected a node id');
    if (this.#watchesAll || this.#stopped) return () => {};
    const unwatch = this.#transport.watchPresence(node);
    const release: Unsubscribe = () => {
      if (this.#watches.delete(release)) unwatch();
    };
    this.#watches.add(release);
    return release;
  }

  /** The newest verified announcement of every node seen, public or private. */
  directory(): ReadonlyMap<NodeId, DirectoryEntry> {
    return this.#directory;
  }

  /** The newest verified status of every node seen. */
  statuses(): ReadonlyMap<NodeId, PeerStatus> {
    return this.#statuses;
  }

  /** Sign our offer. public: retained on the broker for anyone; otherwise only sent with announceTo(). */
  signServices(services: ServiceOffer[], options: { public: boolean }): Uint8Array {
    return signAnnouncement(
      { nodeId: this.#identity.publicKey, timestamp: this.#wallClockSec(), services, public: options.public },
      this.#identity,
    );
  }

  /** Publish a signed, retained public announcement of our services (the MQTT counterpart of node_announcement). */
  async announce(services: ServiceOffer[]): Promise<void> {
    await this.#transport.publishAnnouncement(this.signServices(services, { public: true }));
  }

  /** Remove our retained announcement. */
  withdraw(): Promise<void> {
    return this.#transport.withdrawAnnouncement();
  }

  /** Send a signed, private announcement to one peer inside the encrypted session. */
  async announceTo(peer: NodeId, services: ServiceOffer[]): Promise<void> {
    // Already a complete wire message: send its bytes as they are.
    await this.#sessions.send(peer, this.signServices(services, { public: false }));
  }

  stats(): MessengerStats {
    return {
      session: this.#sessions.stats(),
      invalidMessages: { ...this.#invalidMessages },
      invalidAnnouncements: { ...this.#invalidAnnouncements },
      handlerErrors: this.#handlerErrors,
    };
  }

  /** Stop sessions and the transport (publishing our offline status). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    for (const unwatch of [...this.#watches]) unwatch();
    this.#sessions.close();
    await this.#transport.stop();
  }

  #onPayload(peer: NodeId, payload: Uint8Array): void {
    const decoded = tryDecodeMessage(payload, { maxBytes: this.#maxMessageBytes });
    if (!decoded.ok) {
      count(this.#invalidMessages, decoded.error.code);
      return;
    }
    const message = decoded.message;
    if (message.type === 'ping') {
      // BOLT 1 style liveness: answer at once; the application never sees pings.
      this.send(peer, { type: 'pong', id: message.id }).catch(() => undefined);
      return;
    }
    if (message.type === 'service_announcement') {
      this.#onPrivateAnnouncement(peer, payload);
      return;
    }
    for (const handler of this.#messageHandlers) {
      try {
        handler(peer, message);
      } catch {
        this.#handlerErrors++;
      }
    }
  }

  #onPrivateAnnouncement(peer: NodeId, payload: Uint8Array): void {
    const announcement = this.#open(() => openAnnouncement(payload, { expectedNodeId: hexToBytes(peer) }));
    if (announcement !== undefined) this.#record(peer, { announcement, via: 'private' });
  }

  #onPublicAnnouncement(from: NodeId, bytes: Uint8Array): void {
    if (bytes.length === 0) {
      // A withdrawn (empty retained) announcement. Broker ACLs decide who may do that.
      if (this.#directory.get(from)?.via === 'public') {
        this.#directory.delete(from);
        this.#emitAnnouncement(from, undefined);
      }
      return;
    }
    const announcement = this.#open(() => openAnnouncement(bytes, { expectedNodeId: hexToBytes(from) }));
    if (announcement !== undefined) this.#record(from, { announcement, via: 'public' });
  }

  #record(node: NodeId, entry: DirectoryEntry): void {
    if (entry.announcement.timestamp > this.#wallClockSec() + MAX_FUTURE_SKEW_SEC) {
      count(this.#invalidAnnouncements, 'FROM_THE_FUTURE');
      return;
    }
    const known = this.#directory.get(node);
    if (known !== undefined && known.announcement.timestamp > entry.announcement.timestamp) {
      count(this.#invalidAnnouncements, 'OLDER_THAN_KNOWN');
      return;
    }
    this.#directory.set(node, entry);
    this.#emitAnnouncement(node, entry);
  }

  #onStatus(from: NodeId, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const fields = this.#open(() => openNodeStatus(bytes, { expectedNodeId: hexToBytes(from) }));
    if (fields === undefined) return;
    if (fields.timestamp > this.#wallClockSec() + MAX_FUTURE_SKEW_SEC) {
      count(this.#invalidAnnouncements, 'FROM_THE_FUTURE');
      return;
    }
    const known = this.#statuses.get(from);
    // Equal timestamps: offline wins, because the Last Will is signed when the node connects.
    if (
      known !== undefined &&
      (known.timestamp > fields.timestamp || (known.timestamp === fields.timestamp && known.status === 'offline'))
    ) {
      return;
    }
    const status: PeerStatus = { node: from, status: fields.status, timestamp: fields.timestamp };
    this.#statuses.set(from, status);
    for (const handler of this.#statusHandlers) {
      try {
        handler(status);
      } catch {
        this.#handlerErrors++;
      }
    }
  }

  #open<T>(open: () => T): T | undefined {
    try {
      return open();
    } catch (error) {
      count(this.#invalidAnnouncements, error instanceof WireError ? error.code : 'INTERNAL');
      return undefined;
    }
  }

  #emitAnnouncement(node: NodeId, entry: DirectoryEntry | undefined): void {
    for (const handler of this.#announcementHandlers) {
      try {
        handler(node, entry);
      } catch {
        this.#handlerErrors++;
      }
    }
  }
}

function count(counters: Partial<Record<string, number>>, code: string): void {
  counters[code] = (counters[code] ?? 0) + 1;
}

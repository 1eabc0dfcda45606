/**
 * The Transport port: moves opaque frames between nodes and carries their retained
 * presence data. It knows nothing of encryption or CBOR — the session layer
 * (src/session) puts one encrypted frame in each publish, and the node layer signs
 * announcements and status before they get here. Everything a Transport hands up is
 * untrusted bytes: anyone who can publish to the broker can write to our inbox.
 *
 * Adapters: MQTT (src/transport/mqtt, mqtt.js) and the in-memory double
 * (src/transport/memory.ts) for tests of protocol cores.
 */

/** A node id is the 33-byte compressed identity public key, written as 66 lowercase hex characters. */
export type NodeId = string;

export type LinkState = 'up' | 'down';

export type Unsubscribe = () => void;

export interface FrameTransport {
  readonly localNodeId: NodeId;
  /** Whether the link to the broker is up now. */
  readonly linkState: LinkState;
  /**
   * Publish one frame to `to`'s inbox (QoS 1). Resolves once the broker has taken it
   * (or, while the link is down, once it is queued for the reconnect). Rejects only on
   * misuse or after stop(); delivery is never guaranteed — the session layer retransmits.
   */
  sendFrame(to: NodeId, frame: Uint8Array): Promise<void>;
  /**
   * Every frame that arrives on our own inbox, exactly as received. Delivery is at least once
   * and ordered per sender only while nothing is lost: expect duplicates, gaps and strangers.
   */
  onFrame(handler: (frame: Uint8Array) => void): Unsubscribe;
  /** Called on every change of linkState (after a reconnect: 'up'). */
  onLinkState(handler: (state: LinkState) => void): Unsubscribe;
}

export interface PresenceBoard {
  /** Replace our retained public announcement (bytes already signed by the node layer). */
  publishAnnouncement(announcement: Uint8Array): Promise<void>;
  /** Remove our retained announcement (an empty retained publish). */
  withdrawAnnouncement(): Promise<void>;
  /**
   * Receive the presence (announcement and status) of one node, or of every node ('all': the whole
   * board, for discovery). Nothing reaches onAnnouncement/onStatus until something is watched: on a
   * busy broker the whole board is thousands of retained messages, which a device paying one provider
   * has no use for. A new watch brings the retained values at once (as a new MQTT subscription does);
   * overlapping watches may deliver a value twice. Watches are counted: each call is undone by its
   * Unsubscribe. Throws TypeError for anything but a node id or 'all'.
   */
  watchPresence(node: NodeId | 'all'): Unsubscribe;
  /**
   * Every retained or live announcement of a watched node, with the node id taken from the topic
   * (untrusted until the signature inside is checked). An empty payload means withdrawn.
   */
  onAnnouncement(handler: (from: NodeId, announcement: Uint8Array) => void): Unsubscribe;
  /** Every watched node's retained status (online on connect, offline via the Last Will). */
  onStatus(handler: (from: NodeId, status: Uint8Array) => void): Unsubscribe;
}

export interface Transport extends FrameTransport, PresenceBoard {
  /**
   * Connect (first connection), subscribe to our inbox and publish our online status. Keeps
   * retrying while the broker is unreachable; rejects if the broker refuses us.
   */
  start(): Promise<void>;
  /** Publish our offline status, disconnect cleanly and release every resource. */
  stop(): Promise<void>;
}

/** Topic layout shared by every MQTT-speaking adapter and by broker ACLs. */
export const TOPIC_ROOT = 'trickle/v1';
export const inboxTopic = (node: NodeId): string => `${TOPIC_ROOT}/node/${node}/in`;
export const statusTopic = (node: NodeId): string => `${TOPIC_ROOT}/node/${node}/status`;
export const announceTopic = (node: NodeId): string => `${TOPIC_ROOT}/announce/${node}`;
export const ANNOUNCE_FILTER = `${TOPIC_ROOT}/announce/+`;
export const STATUS_FILTER = `${TOPIC_ROOT}/node/+/status`;

const NODE_ID_RE = /^0[23][0-9a-f]{64}$/;

/** True for a well-formed node id (66 lowercase hex, compressed-point prefix); not a curve check. */
export function isNodeId(value: unknown): value is NodeId {
  return typeof value === 'string' && NODE_ID_RE.test(value);
}

/** The node id in a topic of our layout, or undefined if the topic is not one of ours. */
export function nodeIdFromTopic(topic: string): NodeId | undefined {
  const parts = topic.split('/');
  if (parts.length === 4 && `${parts[0]}/${parts[1]}` === TOPIC_ROOT && parts[2] === 'announce') {
    return isNodeId(parts[3]) ? parts[3] : undefined;
  }
  if (parts.length === 5 && `${parts[0]}/${parts[1]}` === TOPIC_ROOT && parts[2] === 'node') {
    return isNodeId(parts[3]) ? parts[3] : undefined;
  }
  return undefined;
}

/**
 * The session manager: authenticated, encrypted, exactly-once, in-order message delivery
 * between nodes over any FrameTransport (docs/protocol.md §4).
 *
 * It runs BOLT 8 handshakes on demand (Noise_XK: the initiator must know the responder's node
 * id), keeps one session per peer, and hands each delivered payload up once, in the order it
 * was sent. Everything that arrives on the inbox is untrusted: a frame that is malformed, for
 * an unknown session, duplicated, replayed or forged is dropped and counted by reason, and
 * changes no session state. When a session has to be replaced (the peer restarted, or a
 * retransmission timeout says the old one is dead) both sides get a 'session' event naming
 * how many of their messages were left unacknowledged, so channels can resynchronise.
 */
import { systemClock, type Clock } from '../clock.js';
import { bytesToHex, equalBytes, hexToBytes } from '../bytes.js';
import type { FrameTransport, NodeId, Unsubscribe } from '../transport/port.js';
import { isNodeId } from '../transport/port.js';
import { encodeAct1, encodeAct2, encodeAct3, parseFrame, type FrameRejection } from './frames.js';
import type { NodeIdentity } from './identity.js';
import { NoiseInitiator, NoiseResponder } from './noise.js';
import {
  DEFAULT_RELIABILITY,
  EstablishedSession,
  SessionError,
  type ReliabilityOptions,
  type SessionSnapshot,
} from './session.js';

export interface SessionManagerOptions {
  identity: NodeIdentity;
  transport: FrameTransport;
  clock?: Clock;
  reliability?: Partial<ReliabilityOptions>;
  /** First wait for act two before a fresh attempt (default 2,000 ms; doubles up to 30 s). */
  handshakeTimeoutMs?: number;
  /** How long connect()/send() wait for a session before PEER_UNREACHABLE (default 30 s). */
  connectTimeoutMs?: number;
  /** Responder handshakes waiting for act three, across all peers (default 64). */
  maxPendingHandshakes?: number;
}

/** Emitted whenever a session with a peer is established — the first one or a replacement. */
export interface SessionEvent {
  peer: NodeId;
  sessionTag: string;
  initiator: boolean;
  /** A previous session with this peer was replaced: resynchronise channel state. */
  replaced: boolean;
  /** Messages we had sent on the replaced session without an ack: they may not have arrived. */
  unacknowledged: number;
}

/** Why an inbound frame was dropped ([S-12]: each is counted, none changes session state). */
export type DropReason =
  | FrameRejection
  | 'unknown-session'
  | 'closed-session'
  | 'duplicate'
  | 'out-of-order'
  | 'forged-data'
  | 'forged-ack'
  | 'duplicate-ack'
  | 'ack-beyond-sent'
  | 'unknown-handshake'
  | 'duplicate-handshake'
  | 'handshake-failed'
  | 'identity-mismatch'
  | 'handshake-crossed'
  | 'handshake-evicted'
  | 'self-handshake'
  | 'internal-error';

export interface SessionStats {
  framesReceived: number;
  framesSent: number;
  messagesDelivered: number;
  messagesSent: number;
  framesRetransmitted: number;
  handshakesCompleted: number;
  sessionsReplaced: number;
  handlerErrors: number;
  dropped: Partial<Record<DropReason, number>>;
}

export interface ManagerSnapshot {
  sessions: SessionSnapshot[];
  initiating: NodeId[];
  pendingResponders: number;
}

interface Initiation {
  handshakeIdHex: string;
  handshakeId: Uint8Array;
  noise: NoiseInitiator;
  attempt: number;
  cancelTimer: () => void;
}

interface PendingResponder {
  peer: NodeId;
  act1: Uint8Array;
  act2Frame: Uint8Array;
  noise: NoiseResponder;
  cancelExpiry: () => void;
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
  cancelTimeout: () => void;
}

interface PeerState {
  session?: EstablishedSession;
  initiation?: Initiation;
  waiters: Waiter[];
}

const MAX_HANDSHAKE_BACKOFF_MS = 30_000;
const RECENT_LIMIT = 256;

function randomHandshakeId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(8));
}

/** A bounded insertion-ordered set: remembers recent handshake ids and closed session tags. */
class RecentSet<V> {
  readonly #map = new Map<string, V>();
  constructor(readonly limit: number) {}
  set(key: string, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.limit) this.#map.delete(this.#map.keys().next().value!);
  }
  get(key: string): V | undefined {
    return this.#map.get(key);
  }
}

export class SessionManager {
  readonly localNodeId: NodeId;
  readonly #identity: NodeIdentity;
  readonly #transport: FrameTransport;
  readonly #clock: Clock;
  readonly #reliability: ReliabilityOptions;
  readonly #handshakeTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #maxPending: number;

  readonly #peers = new Map<NodeId, PeerState>();
  readonly #sessionsByTag = new Map<string, EstablishedSession>();
  readonly #initiationsById = new Map<string, NodeId>();
  readonly #pendingResponders = new Map<string, PendingResponder>();
  /** Handshake ids that completed, with the session they made (to answer a repeated act three). */
  readonly #completed = new RecentSet<string>(RECENT_LIMIT);
  readonly #closedTags = new RecentSet<true>(RECENT_LIMIT);

  readonly #messageHandlers = new Set<(peer: NodeId, payload: Uint8Array) => void>();
  readonly #sessionHandlers = new Set<(event: SessionEvent) => void>();
  readonly #unsubscribe: Unsubscribe[] = [];
  readonly #staleTimers = new Set<() => void>();
  #closed = false;

  readonly #stats: SessionStats = {
    framesReceived: 0,
    framesSent: 0,
    messagesDelivered: 0,
    messagesSent: 0,
    framesRetransmitted: 0,
    handshakesCompleted: 0,
    sessionsReplaced: 0,
    handlerErrors: 0,
    dropped: {},
  };

  constructor(options: SessionManagerOptions) {
    this.#identity = options.identity;
    this.#transport = options.transport;
    this.localNodeId = options.identity.nodeId;
    if (options.transport.localNodeId !== this.localNodeId) {
      throw new TypeError('"transport" belongs to another node id than "identity"');
    }
    this.#clock = options.clock ?? systemClock;
    this.#reliability = { ...DEFAULT_RELIABILITY, ...options.reliability };
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? 2000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    this.#maxPending = options.maxPendingHandshakes ?? 64;
    this.#unsubscribe.push(
      this.#transport.onFrame((frame) => this.handleFrame(frame)),
      this.#transport.onLinkState((state) => {
        if (state === 'up') for (const peer of this.#peers.values()) peer.session?.onLinkUp();
      }),
    );
  }

  /** Payloads delivered by peers, once each, in the order each peer sent them. */
  onMessage(handler: (peer: NodeId, payload: Uint8Array) => void): Unsubscribe {
    this.#messageHandlers.add(handler);
    return () => this.#messageHandlers.delete(handler);
  }

  onSession(handler: (event: SessionEvent) => void): Unsubscribe {
    this.#sessionHandlers.add(handler);
    return () => this.#sessionHandlers.delete(handler);
  }

  /** Is there a live (not stale) session with the peer now? */
  hasSession(peer: NodeId): boolean {
    const session = this.#peers.get(peer)?.session;
    return session !== undefined && !session.stale;
  }

  /**
   * Make sure a session with `peer` exists, running a handshake if needed. Rejects with
   * SessionError PEER_UNREACHABLE after connectTimeoutMs.
   */
  connect(peer: NodeId): Promise<void> {
    if (this.#closed) return Promise.reject(new SessionError('MANAGER_CLOSED', 'session manager closed'));
    if (!isNodeId(peer)) throw new TypeError('"peer" expected a node id (66 lowercase hex characters)');
    if (peer === this.localNodeId) throw new RangeError('"peer" is this node');
    const state = this.#peerState(peer);
    if (state.session !== undefined && !state.session.stale) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        cancelTimeout: this.#clock.setTimer(this.#connectTimeoutMs, () => {
          state.waiters = state.waiters.filter((w) => w !== waiter);
          if (state.waiters.length === 0 && state.session === undefined) this.#cancelInitiation(state);
          reject(new SessionError('PEER_UNREACHABLE', 'no session with the peer within the connect timeout'));
        }),
      };
      state.waiters.push(waiter);
      if (state.initiation === undefined) this.#initiate(peer, 0);
    });
  }

  /**
   * [S-6] Send one payload (≤ 65,535 bytes) to a peer: encrypted, delivered once and in order
   * while the session lasts. Resolves when it has been encrypted and handed to the transport.
   */
  async send(peer: NodeId, payload: Uint8Array): Promise<void> {
    if (!(payload instanceof Uint8Array)) throw new TypeError('"payload" expected a Uint8Array');
    if (payload.length > 65535) throw new SessionError('MESSAGE_TOO_LARGE', 'payload exceeds 65535 bytes');
    const state = this.#peers.get(peer);
    if (state?.session === undefined || state.session.stale) await this.connect(peer);
    await this.#peerState(peer).session!.send(payload);
    this.#stats.messagesSent++;
  }

  stats(): SessionStats {
    let retransmitted = this.#stats.framesRetransmitted;
    for (const state of this.#peers.values()) retransmitted += state.session?.retransmittedFrames ?? 0;
    return { ...this.#stats, framesRetransmitted: retransmitted, dropped: { ...this.#stats.dropped } };
  }

  /** Session state, for tests that prove invalid input changes nothing. */
  snapshot(): ManagerSnapshot {
    const sessions: SessionSnapshot[] = [];
    const initiating: NodeId[] = [];
    for (const [peer, state] of this.#peers) {
      if (state.session !== undefined) sessions.push(state.session.snapshot());
      if (state.initiation !== undefined) initiating.push(peer);
    }
    return { sessions, initiating, pendingResponders: this.#pendingResponders.size };
  }

  /** Stop every timer, reject pending sends and connects, detach from the transport. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    for (const cancel of this.#staleTimers) cancel();
    this.#staleTimers.clear();
    for (const pending of this.#pendingResponders.values()) pending.cancelExpiry();
    this.#pendingResponders.clear();
    for (const state of this.#peers.values()) {
      this.#cancelInitiation(state);
      const queued = state.session?.close() ?? [];
      for (const item of queued) item.reject(new SessionError('MANAGER_CLOSED', 'session manager closed'));
      for (const waiter of state.waiters.splice(0)) {
        waiter.cancelTimeout();
        waiter.reject(new SessionError('MANAGER_CLOSED', 'session manager closed'));
      }
    }
  }

  /** [S-1] Entry point for every inbound frame. Never throws. */
  handleFrame(bytes: Uint8Array): void {
    if (this.#closed) return;
    this.#stats.framesReceived++;
    try {
      this.#dispatch(bytes);
    } catch {
      // A bug must not let a peer crash the process; the frame is dropped like any bad one.
      this.#drop('internal-error');
    }
  }

  #dispatch(bytes: Uint8Array): void {
    const parsed = parseFrame(bytes);
    if (!parsed.ok) return this.#drop(parsed.reason);
    const frame = parsed.frame;
    switch (frame.kind) {
      case 'act1':
        return this.#onAct1(frame.handshakeId, frame.initiator, frame.act);
      case 'act2':
        return this.#onAct2(frame.handshakeId, frame.act);
      case 'act3':
        return this.#onAct3(frame.handshakeId, frame.act);
      case 'data': {
        const session = this.#sessionByTag(frame.sessionTag);
        if (session === undefined) return;
        const result = session.onData(frame.sequence, frame.message);
        if (result.outcome !== 'delivered') {
          return this.#drop(result.outcome === 'forged' ? 'forged-data' : result.outcome);
        }
        this.#stats.messagesDelivered++;
        for (const handler of this.#messageHandlers) {
          try {
            handler(session.peer, result.payload);
          } catch {
            this.#stats.handlerErrors++;
          }
        }
        return;
      }
      case 'ack': {
        const session = this.#sessionByTag(frame.sessionTag);
        if (session === undefined) return;
        const outcome = session.onAck(frame.nextSequence, frame.gap, frame.mac);
        if (outcome === 'forged') this.#drop('forged-ack');
        else if (outcome === 'beyond-sent') this.#drop('ack-beyond-sent');
        else if (outcome === 'repeated') this.#drop('duplicate-ack');
        return;
      }
    }
  }

  #sessionByTag(tag: Uint8Array): EstablishedSession | undefined {
    const tagHex = bytesToHex(tag);
    const session = this.#sessionsByTag.get(tagHex);
    if (session === undefined) this.#drop(this.#closedTags.get(tagHex) ? 'closed-session' : 'unknown-session');
    return session;
  }

  // ---- handshakes (BOLT 8 acts wrapped in [S-2]..[S-4] frames) ----

  #initiate(peer: NodeId, attempt: number): void {
    const state = this.#peerState(peer);
    this.#cancelInitiation(state);
    const handshakeId = randomHandshakeId();
    const handshakeIdHex = bytesToHex(handshakeId);
    const noise = new NoiseInitiator(this.#identity, hexToBytes(peer));
    const delay = Math.min(this.#handshakeTimeoutMs * 2 ** attempt, MAX_HANDSHAKE_BACKOFF_MS);
    const initiation: Initiation = {
      handshakeId,
      handshakeIdHex,
      noise,
      attempt,
      cancelTimer: this.#clock.setTimer(delay, () => this.#onHandshakeTimeout(peer, initiation)),
    };
    state.initiation = initiation;
    this.#initiationsById.set(handshakeIdHex, peer);
    this.#output(peer, encodeAct1(handshakeId, this.#identity.publicKey, noise.act1()));
  }

  #onHandshakeTimeout(peer: NodeId, initiation: Initiation): void {
    const state = this.#peers.get(peer);
    if (state?.initiation !== initiation || this.#closed) return;
    const needed = state.waiters.length > 0 || state.session?.stale === true;
    if (!needed) return this.#cancelInitiation(state);
    // While the link is down a timeout says nothing about the peer: try again, same back-off.
    const nextAttempt = this.#transport.linkState === 'up' ? initiation.attempt + 1 : initiation.attempt;
    this.#initiate(peer, nextAttempt);
  }

  #cancelInitiation(state: PeerState): void {
    if (state.initiation === undefined) return;
    state.initiation.cancelTimer();
    this.#initiationsById.delete(state.initiation.handshakeIdHex);
    state.initiation = undefined;
  }

  #onAct1(handshakeId: Uint8Array, initiatorKey: Uint8Array, act: Uint8Array): void {
    const peer = bytesToHex(initiatorKey);
    if (peer === this.localNodeId) return this.#drop('self-handshake');
    const idHex = bytesToHex(handshakeId);
    const pending = this.#pendingResponders.get(idHex);
    if (pending !== undefined) {
      // [S-3] A QoS 1 copy of act one gets the same act two, not a new ephemeral key.
      if (pending.peer === peer && equalBytes(pending.act1, act)) this.#output(peer, pending.act2Frame);
      return this.#drop('duplicate-handshake');
    }
    if (this.#completed.get(idHex) !== undefined) return this.#drop('duplicate-handshake');
    const state = this.#peers.get(peer);
    if (state?.initiation !== undefined && this.localNodeId < peer) {
      // [S-4] Crossed handshakes: the lower node id's own handshake wins; the higher one answers.
      return this.#drop('handshake-crossed');
    }
    const noise = new NoiseResponder(this.#identity);
    let act2: Uint8Array;
    try {
      act2 = noise.act2(act);
    } catch {
      return this.#drop('handshake-failed');
    }
    this.#boundPendingResponders(peer);
    const act2Frame = encodeAct2(handshakeId, act2);
    this.#pendingResponders.set(idHex, {
      peer,
      act1: act,
      act2Frame,
      noise,
      cancelExpiry: this.#clock.setTimer(Math.max(this.#handshakeTimeoutMs * 8, 10_000), () => {
        this.#pendingResponders.delete(idHex);
      }),
    });
    this.#output(peer, act2Frame);
  }

  /** A stranger can start handshakes in anyone's name: keep at most two per claimed id and a global cap. */
  #boundPendingResponders(peer: NodeId): void {
    const forPeer = [...this.#pendingResponders].filter(([, p]) => p.peer === peer);
    if (forPeer.length >= 2) this.#evictPending(forPeer[0]![0]);
    if (this.#pendingResponders.size >= this.#maxPending) {
      this.#evictPending(this.#pendingResponders.keys().next().value!);
    }
  }

  #evictPending(idHex: string): void {
    this.#pendingResponders.get(idHex)?.cancelExpiry();
    this.#pendingResponders.delete(idHex);
    this.#drop('handshake-evicted');
  }

  #onAct2(handshakeId: Uint8Array, act: Uint8Array): void {
    const idHex = bytesToHex(handshakeId);
    const peer = this.#initiationsById.get(idHex);
    if (peer === undefined) {
      return this.#drop(this.#completed.get(idHex) !== undefined ? 'duplicate-handshake' : 'unknown-handshake');
    }
    const state = this.#peerState(peer);
    const initiation = state.initiation!;
    let act3: Uint8Array;
    try {
      act3 = initiation.noise.act3(act);
    } catch {
      // The initiator state is spent; start over at once rather than wait for the timeout.
      this.#drop('handshake-failed');
      this.#initiate(peer, initiation.attempt + 1);
      return;
    }
    const result = initiation.noise.result();
    this.#cancelInitiation(state);
    const act3Frame = encodeAct3(handshakeId, act3);
    const session = this.#newSession(peer, true, result, act3Frame);
    this.#completed.set(idHex, session.tagHex);
    this.#output(peer, act3Frame);
    this.#install(peer, session);
  }

  #onAct3(handshakeId: Uint8Array, act: Uint8Array): void {
    const idHex = bytesToHex(handshakeId);
    const pending = this.#pendingResponders.get(idHex);
    if (pending === undefined) {
      const tagHex = this.#completed.get(idHex);
      if (tagHex === undefined) return this.#drop('unknown-handshake');
      // [S-8] The initiator re-sent act three: it missed our first ack, so send it again.
      this.#sessionsByTag.get(tagHex)?.acknowledge();
      return this.#drop('duplicate-handshake');
    }
    let result;
    try {
      result = pending.noise.finish(act);
    } catch {
      pending.cancelExpiry();
      this.#pendingResponders.delete(idHex);
      return this.#drop('handshake-failed');
    }
    pending.cancelExpiry();
    this.#pendingResponders.delete(idHex);
    if (bytesToHex(result.remoteStatic) !== pending.peer) return this.#drop('identity-mismatch');
    const session = this.#newSession(pending.peer, false, result, undefined);
    this.#completed.set(idHex, session.tagHex);
    this.#install(pending.peer, session);
    // [S-8] The first ack confirms the session to the initiator.
    session.acknowledge();
  }

  #newSession(
    peer: NodeId,
    initiator: boolean,
    handshake: ReturnType<NoiseInitiator['result']>,
    act3Frame: Uint8Array | undefined,
  ): EstablishedSession {
    let session: EstablishedSession | undefined;
    session = new EstablishedSession({
      peer,
      initiator,
      handshake,
      ...(act3Frame !== undefined ? { act3Frame } : {}),
      clock: this.#clock,
      options: this.#reliability,
      hooks: {
        output: (frame) => this.#output(peer, frame),
        linkUp: () => this.#transport.linkState === 'up',
        stale: () => {
          // [S-11] No progress: keep the old session for receiving, handshake anew for sending.
          const state = this.#peerState(peer);
          if (state.session !== session || this.#closed) return;
          if (state.initiation === undefined) this.#initiate(peer, 0);
          // Sends queued behind a dead session fail like a connect() would, rather than hang.
          const cancel = this.#clock.setTimer(this.#connectTimeoutMs, () => {
            this.#staleTimers.delete(cancel);
            if (state.session === session && session!.stale) {
              session!.rejectQueued(new SessionError('PEER_UNREACHABLE', 'no new session with the peer within the connect timeout'));
            }
          });
          this.#staleTimers.add(cancel);
        },
      },
    });
    this.#stats.handshakesCompleted++;
    return session;
  }

  /** [S-11] Make `session` the one for `peer`, replacing (and reporting) any previous one. */
  #install(peer: NodeId, session: EstablishedSession): void {
    const state = this.#peerState(peer);
    const previous = state.session;
    let unacknowledged = 0;
    if (previous !== undefined) {
      unacknowledged = previous.unackedCount;
      this.#stats.framesRetransmitted += previous.retransmittedFrames;
      // Payloads queued on the old session are dropped, not carried over: the channel protocols
      // resynchronise on the 'session' event, and an old message arriving after that (a channel_reestablish
      // from before the replacement, say) would be taken for a new one. Everything not acknowledged on a
      // replaced session may be lost, queued or sent alike.
      for (const item of previous.close()) item.reject(new SessionError('SESSION_CLOSED', 'the session was replaced before this message was sent'));
      this.#sessionsByTag.delete(previous.tagHex);
      this.#closedTags.set(previous.tagHex, true);
      this.#stats.sessionsReplaced++;
    }
    state.session = session;
    this.#sessionsByTag.set(session.tagHex, session);
    this.#cancelInitiation(state);
    for (const waiter of state.waiters.splice(0)) {
      waiter.cancelTimeout();
      waiter.resolve();
    }
    const event: SessionEvent = {
      peer,
      sessionTag: session.tagHex,
      initiator: session.initiator,
      replaced: previous !== undefined,
      unacknowledged,
    };
    for (const handler of this.#sessionHandlers) {
      try {
        handler(event);
      } catch {
        this.#stats.handlerErrors++;
      }
    }
  }

  #peerState(peer: NodeId): PeerState {
    let state = this.#peers.get(peer);
    if (state === undefined) {
      state = { waiters: [] };
      this.#peers.set(peer, state);
    }
    return state;
  }

  #output(peer: NodeId, frame: Uint8Array): void {
    if (this.#closed) return;
    this.#stats.framesSent++;
    // Delivery is the session's job (it re-publishes); a failed publish is just a lost frame.
    this.#transport.sendFrame(peer, frame).catch(() => undefined);
  }

  #drop(reason: DropReason): void {
    this.#stats.dropped[reason] = (this.#stats.dropped[reason] ?? 0) + 1;
  }
}

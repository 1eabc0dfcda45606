/**
 * One established session with a peer: BOLT 8 ciphers plus the reliability MQTT lacks
 * (docs/protocol.md §4, [S-5]..[S-12]).
 *
 * BOLT 8 nonces are implicit, so each direction must see every message exactly once and in
 * order. MQTT QoS 1 may duplicate, and a broker restart may lose what it held. So each data
 * frame carries its sequence number; the receiver decrypts only the next expected one and
 * advances only when the tag verifies (a duplicate, replay or forgery changes nothing); the
 * sender keeps the exact bytes of every unacknowledged frame and re-publishes them on a
 * timeout or a reconnect (go-back-N: a receiver drops frames past a gap). A re-published frame
 * is byte-identical, so no nonce is ever used for two plaintexts. Acks are cumulative and
 * carry an HMAC under a per-direction key derived from the handshake, so a stranger can
 * neither forge nor reflect one; a replayed ack is harmless because acks only move forward.
 */
import type { Clock } from '../clock.js';
import { hmacSha256, sha256 } from '../crypto/hash.js';
import { concatBytes, bytesToHex } from '../bytes.js';
import type { NodeId } from '../transport/port.js';
import { ACK_MAC_BYTES, MAX_SEQUENCE, ackBody, encodeAck, encodeData } from './frames.js';
import type { NoiseCipher, NoiseHandshakeResult } from './noise.js';

export interface ReliabilityOptions {
  /** Unacknowledged frames allowed in flight before send() queues (default 128). */
  maxInFlight: number;
  /** Acknowledge at once after this many delivered frames (default 32)... */
  ackEvery: number;
  /** ...and otherwise within this delay (default 20 ms). */
  ackDelayMs: number;
  /** First retransmission timeout (default 1,000 ms), doubled on each expiry up to maxRtoMs. */
  initialRtoMs: number;
  maxRtoMs: number;
  /** Timeouts without progress, while the link is up, before the session is declared stale. */
  maxRetransmits: number;
}

export const DEFAULT_RELIABILITY: ReliabilityOptions = {
  maxInFlight: 128,
  ackEvery: 32,
  ackDelayMs: 20,
  initialRtoMs: 1000,
  maxRtoMs: 30_000,
  maxRetransmits: 6,
};

export type DataOutcome =
  | { outcome: 'delivered'; payload: Uint8Array }
  | { outcome: 'duplicate' | 'out-of-order' | 'forged' };

export type AckOutcome = 'advanced' | 'repeated' | 'forged' | 'beyond-sent';

export class SessionError extends Error {
  constructor(
    readonly code: 'SESSION_CLOSED' | 'PEER_UNREACHABLE' | 'MESSAGE_TOO_LARGE' | 'MANAGER_CLOSED',
    message: string,
  ) {
    super(message);
    this.name = 'SessionError';
  }
}

/** A payload accepted by send() but not yet encrypted (dropped, rejected, if the session is replaced first). */
export interface QueuedPayload {
  payload: Uint8Array;
  resolve: () => void;
  reject: (error: Error) => void;
}

export interface SessionSnapshot {
  peer: NodeId;
  tag: string;
  initiator: boolean;
  confirmed: boolean;
  nextSendSequence: number;
  firstUnackedSequence: number;
  unacked: number;
  queued: number;
  nextReceiveSequence: number;
}

const TEXT = new TextEncoder();

/** [S-5] The session tag both sides derive from the final handshake hash. */
export function sessionTagOf(handshakeHash: Uint8Array): Uint8Array {
  return sha256(concatBytes(TEXT.encode('trickle/v1/session-tag'), handshakeHash)).slice(0, 8);
}

/** [S-9] Ack keys: one per sending role, from the final chaining key (never the BOLT 8 keys). */
function ackKey(chainingKey: Uint8Array, role: 'initiator' | 'responder'): Uint8Array {
  return hmacSha256(chainingKey, TEXT.encode(`trickle/v1/ack/${role}`));
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export interface SessionHooks {
  /** Publish one frame to the peer (fire and forget; loss is handled here). */
  output(frame: Uint8Array): void;
  /** Called once when retransmissions make no progress: the manager renews the session. */
  stale(): void;
  /** Is the link to the broker up? Timeouts while it is down don't count. */
  linkUp(): boolean;
}

export class EstablishedSession {
  readonly peer: NodeId;
  readonly initiator: boolean;
  readonly tag: Uint8Array;
  readonly tagHex: string;
  readonly #sender: NoiseCipher;
  readonly #receiver: NoiseCipher;
  readonly #ackSendKey: Uint8Array;
  readonly #ackReceiveKey: Uint8Array;
  readonly #clock: Clock;
  readonly #options: ReliabilityOptions;
  readonly #hooks: SessionHooks;

  #nextSend = 0;
  #firstUnacked = 0;
  readonly #unacked: Uint8Array[] = [];
  readonly #queue: QueuedPayload[] = [];
  #nextReceive = 0;
  #deliveredSinceAck = 0;
  #gapSeen = false;
  #confirmed: boolean;
  #act3Frame: Uint8Array | undefined;
  #rtoMs: number;
  #lastRetransmitAt = -Infinity;
  readonly #fastRetransmitGapMs: number;
  #timeoutsWithoutProgress = 0;
  #cancelRto: (() => void) | undefined;
  #cancelAck: (() => void) | undefined;
  #stale = false;
  #closed = false;

  /** Frames re-published because of a timeout or a reconnect. */
  retransmittedFrames = 0;

  constructor(params: {
    peer: NodeId;
    initiator: boolean;
    handshake: NoiseHandshakeResult;
    /** Initiator only: act three, re-sent until the responder's first ack confirms the session. */
    act3Frame?: Uint8Array;
    clock: Clock;
    options: ReliabilityOptions;
    hooks: SessionHooks;
  }) {
    this.peer = params.peer;
    this.initiator = params.initiator;
    this.tag = sessionTagOf(params.handshake.handshakeHash);
    this.tagHex = bytesToHex(this.tag);
    this.#sender = params.handshake.sender;
    this.#receiver = params.handshake.receiver;
    const mine = params.initiator ? 'initiator' : 'responder';
    const theirs = params.initiator ? 'responder' : 'initiator';
    this.#ackSendKey = ackKey(params.handshake.chainingKey, mine);
    this.#ackReceiveKey = ackKey(params.handshake.chainingKey, theirs);
    this.#clock = params.clock;
    this.#options = params.options;
    this.#hooks = params.hooks;
    this.#rtoMs = params.options.initialRtoMs;
    this.#fastRetransmitGapMs = Math.max(4 * params.options.ackDelayMs, params.options.initialRtoMs / 8);
    this.#confirmed = !params.initiator;
    this.#act3Frame = params.act3Frame;
    if (!this.#confirmed) this.#armRto();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Stale: retransmissions made no progress; new payloads should wait for a fresh session. */
  get stale(): boolean {
    return this.#stale;
  }

  get confirmed(): boolean {
    return this.#confirmed;
  }

  /** Frames sent but not yet acknowledged by the peer. */
  get unackedCount(): number {
    return this.#unacked.length;
  }

  /** [S-6] Queue a payload; it is encrypted and published in order as the window allows. */
  send(payload: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new SessionError('SESSION_CLOSED', 'session closed'));
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ payload, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (
      !this.#closed &&
      !this.#stale &&
      this.#queue.length > 0 &&
      this.#unacked.length < this.#options.maxInFlight
    ) {
      if (this.#nextSend >= MAX_SEQUENCE) {
        // [S-6] u32 sequence space used up: renew rather than wrap.
        this.#markStale();
        return;
      }
      const item = this.#queue.shift()!;
      let frame: Uint8Array;
      try {
        frame = encodeData(this.tag, this.#nextSend, this.#sender.encrypt(item.payload));
      } catch {
        item.reject(new SessionError('MESSAGE_TOO_LARGE', 'payload exceeds 65535 bytes'));
        continue;
      }
      this.#nextSend++;
      this.#unacked.push(frame);
      if (this.#cancelRto === undefined) this.#armRto();
      this.#hooks.output(frame);
      item.resolve();
    }
  }

  /** [S-7] A data frame for this session. Changes nothing unless it is the next one and authentic. */
  onData(sequence: number, message: Uint8Array): DataOutcome {
    if (this.#closed) return { outcome: 'forged' };
    if (sequence !== this.#nextReceive) {
      // A copy means our ack may have been lost; a frame past a gap means one of theirs was:
      // either way an ack (a NACK for a gap) tells the sender where we are.
      if (sequence > this.#nextReceive) this.#gapSeen = true;
      this.#ensureAckTimer();
      return { outcome: sequence < this.#nextReceive ? 'duplicate' : 'out-of-order' };
    }
    let payload: Uint8Array;
    try {
      payload = this.#receiver.decrypt(message);
    } catch {
      return { outcome: 'forged' };
    }
    this.#nextReceive++;
    this.#deliveredSinceAck++;
    if (this.#deliveredSinceAck >= this.#options.ackEvery) this.#sendAck();
    else this.#ensureAckTimer();
    return { outcome: 'delivered', payload };
  }

  /** [S-9] A cumulative ack from the peer. */
  onAck(nextSequence: number, gap: boolean, mac: Uint8Array): AckOutcome {
    if (this.#closed) return 'forged';
    const expected = hmacSha256(this.#ackReceiveKey, ackBody(this.tag, nextSequence, gap)).slice(0, ACK_MAC_BYTES);
    if (!constantTimeEqual(expected, mac)) return 'forged';
    if (nextSequence > this.#nextSend) return 'beyond-sent';
    if (!this.#confirmed) {
      this.#confirmed = true;
      this.#act3Frame = undefined;
    }
    if (nextSequence <= this.#firstUnacked) {
      if (this.#unacked.length === 0) this.#disarmRto();
      else if (gap && nextSequence === this.#firstUnacked && this.#clock.now() - this.#lastRetransmitAt >= this.#fastRetransmitGapMs) {
        // [S-10] The receiver is past a gap: re-send now rather than wait for the timeout
        // (at most once per interval, so a burst of NACKs doesn't become a burst of windows).
        this.#retransmit();
      }
      return 'repeated';
    }
    this.#unacked.splice(0, nextSequence - this.#firstUnacked);
    this.#firstUnacked = nextSequence;
    this.#timeoutsWithoutProgress = 0;
    this.#rtoMs = this.#options.initialRtoMs;
    this.#disarmRto();
    if (this.#unacked.length > 0) this.#armRto();
    this.#pump();
    return 'advanced';
  }

  /** Send our position now (e.g. right after the responder completes the handshake). */
  acknowledge(): void {
    this.#sendAck();
  }

  /** [S-10] The link came back: re-publish everything unacknowledged at once. */
  onLinkUp(): void {
    if (this.#closed) return;
    this.#retransmit();
    if (this.#nextReceive > 0 || !this.initiator) this.#sendAck();
  }

  /** Fail every payload still waiting to be encrypted (the peer stayed unreachable). */
  rejectQueued(error: Error): void {
    for (const item of this.#queue.splice(0)) item.reject(error);
  }

  /** Stop timers; return payloads never encrypted so a replacement session can send them. */
  close(): QueuedPayload[] {
    this.#closed = true;
    this.#disarmRto();
    this.#cancelAck?.();
    this.#cancelAck = undefined;
    return this.#queue.splice(0);
  }

  snapshot(): SessionSnapshot {
    return {
      peer: this.peer,
      tag: this.tagHex,
      initiator: this.initiator,
      confirmed: this.#confirmed,
      nextSendSequence: this.#nextSend,
      firstUnackedSequence: this.#firstUnacked,
      unacked: this.#unacked.length,
      queued: this.#queue.length,
      nextReceiveSequence: this.#nextReceive,
    };
  }

  #retransmit(): void {
    this.#lastRetransmitAt = this.#clock.now();
    if (this.#act3Frame !== undefined) this.#hooks.output(this.#act3Frame);
    for (const frame of this.#unacked) {
      this.retransmittedFrames++;
      this.#hooks.output(frame);
    }
  }

  #armRto(): void {
    this.#cancelRto = this.#clock.setTimer(this.#rtoMs, () => this.#onRto());
  }

  #disarmRto(): void {
    this.#cancelRto?.();
    this.#cancelRto = undefined;
  }

  #onRto(): void {
    this.#cancelRto = undefined;
    if (this.#closed || (this.#unacked.length === 0 && this.#confirmed)) return;
    if (this.#hooks.linkUp()) {
      this.#retransmit();
      this.#timeoutsWithoutProgress++;
      this.#rtoMs = Math.min(this.#rtoMs * 2, this.#options.maxRtoMs);
      if (this.#timeoutsWithoutProgress > this.#options.maxRetransmits) this.#markStale();
    }
    if (!this.#closed) this.#armRto();
  }

  #markStale(): void {
    if (this.#stale) return;
    this.#stale = true;
    this.#hooks.stale();
  }

  #ensureAckTimer(): void {
    if (this.#cancelAck !== undefined) return;
    this.#cancelAck = this.#clock.setTimer(this.#options.ackDelayMs, () => {
      this.#cancelAck = undefined;
      if (!this.#closed) this.#sendAck();
    });
  }

  #sendAck(): void {
    this.#cancelAck?.();
    this.#cancelAck = undefined;
    this.#deliveredSinceAck = 0;
    const body = ackBody(this.tag, this.#nextReceive, this.#gapSeen);
    this.#gapSeen = false;
    this.#hooks.output(encodeAck(body, hmacSha256(this.#ackSendKey, body).slice(0, ACK_MAC_BYTES)));
  }
}

/**
 * Session frames: the bytes of one MQTT publish (docs/protocol.md §4, [S-1]..[S-4]).
 *
 * A frame is a fixed binary header followed by untouched BOLT 8 bytes — a handshake act or
 * a transport message `lc || c` — so the BOLT 8 vectors apply unchanged. The header only
 * routes and deduplicates: it names the handshake or session, and (for data) the message's
 * sequence number, which is also its position in the BOLT 8 nonce stream. A header that lies
 * gains nothing: a data frame is decrypted only at the receiver's next expected sequence
 * number, so a rewritten number fails the AEAD tag like any forgery.
 *
 *   ACT1  0x01 | handshake id (8) | initiator node id (33) | act one (50)     = 92 bytes
 *   ACT2  0x02 | handshake id (8) | act two (50)                             = 59 bytes
 *   ACT3  0x03 | handshake id (8) | act three (66)                           = 75 bytes
 *   DATA  0x10 | session tag (8)  | sequence u32 BE | BOLT 8 message (≥ 34)  ≥ 47 bytes
 *   ACK   0x11 | session tag (8)  | next expected sequence u32 BE | mac (16) = 29 bytes
 *   NACK  0x12 | same as ACK: "and I have seen a frame past a gap" (asks for a re-send now)
 */
import { isValidPublicKey } from '../crypto/secp256k1.js';

export const FRAME_ACT1 = 0x01;
export const FRAME_ACT2 = 0x02;
export const FRAME_ACT3 = 0x03;
export const FRAME_DATA = 0x10;
export const FRAME_ACK = 0x11;
export const FRAME_NACK = 0x12;

export const HANDSHAKE_ID_BYTES = 8;
export const SESSION_TAG_BYTES = 8;
export const ACK_MAC_BYTES = 16;
const ACT1_BYTES = 50;
const ACT2_BYTES = 50;
const ACT3_BYTES = 66;
/** BOLT 8: 18-byte encrypted length + 16-byte body tag around an empty body. */
const MIN_BOLT8_MESSAGE = 34;
/** BOLT 8: 18 + 65535 + 16. */
const MAX_BOLT8_MESSAGE = 65569;
const DATA_HEADER_BYTES = 1 + SESSION_TAG_BYTES + 4;
/** The largest frame we ever accept (a full BOLT 8 message plus the data header). */
export const MAX_FRAME_BYTES = DATA_HEADER_BYTES + MAX_BOLT8_MESSAGE;
/** Sequence numbers are u32; a session is renewed long before this. */
export const MAX_SEQUENCE = 0xffffffff;

export type Frame =
  | { kind: 'act1'; handshakeId: Uint8Array; initiator: Uint8Array; act: Uint8Array }
  | { kind: 'act2'; handshakeId: Uint8Array; act: Uint8Array }
  | { kind: 'act3'; handshakeId: Uint8Array; act: Uint8Array }
  | { kind: 'data'; sessionTag: Uint8Array; sequence: number; message: Uint8Array }
  | { kind: 'ack'; sessionTag: Uint8Array; nextSequence: number; gap: boolean; mac: Uint8Array };

/** Why a frame could not be parsed; the session layer counts drops by these names. */
export type FrameRejection =
  | 'empty'
  | 'too-large'
  | 'unknown-kind'
  | 'bad-length'
  | 'bad-initiator-key';

export type ParsedFrame = { ok: true; frame: Frame } | { ok: false; reason: FrameRejection };

/** [S-1] Parse one publish payload. Never throws: every input gets a frame or a reason. */
export function parseFrame(bytes: Uint8Array): ParsedFrame {
  if (bytes.length === 0) return { ok: false, reason: 'empty' };
  if (bytes.length > MAX_FRAME_BYTES) return { ok: false, reason: 'too-large' };
  const kind = bytes[0];
  switch (kind) {
    case FRAME_ACT1: {
      if (bytes.length !== 1 + HANDSHAKE_ID_BYTES + 33 + ACT1_BYTES) return { ok: false, reason: 'bad-length' };
      const initiator = bytes.slice(9, 42);
      if (!isValidPublicKey(initiator)) return { ok: false, reason: 'bad-initiator-key' };
      return { ok: true, frame: { kind: 'act1', handshakeId: bytes.slice(1, 9), initiator, act: bytes.slice(42) } };
    }
    case FRAME_ACT2:
      if (bytes.length !== 1 + HANDSHAKE_ID_BYTES + ACT2_BYTES) return { ok: false, reason: 'bad-length' };
      return { ok: true, frame: { kind: 'act2', handshakeId: bytes.slice(1, 9), act: bytes.slice(9) } };
    case FRAME_ACT3:
      if (bytes.length !== 1 + HANDSHAKE_ID_BYTES + ACT3_BYTES) return { ok: false, reason: 'bad-length' };
      return { ok: true, frame: { kind: 'act3', handshakeId: bytes.slice(1, 9), act: bytes.slice(9) } };
    case FRAME_DATA: {
      if (bytes.length < DATA_HEADER_BYTES + MIN_BOLT8_MESSAGE) return { ok: false, reason: 'bad-length' };
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return {
        ok: true,
        frame: {
          kind: 'data',
          sessionTag: bytes.slice(1, 9),
          sequence: view.getUint32(9, false),
          message: bytes.slice(DATA_HEADER_BYTES),
        },
      };
    }
    case FRAME_ACK:
    case FRAME_NACK: {
      if (bytes.length !== 1 + SESSION_TAG_BYTES + 4 + ACK_MAC_BYTES) return { ok: false, reason: 'bad-length' };
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return {
        ok: true,
        frame: {
          kind: 'ack',
          sessionTag: bytes.slice(1, 9),
          nextSequence: view.getUint32(9, false),
          gap: kind === FRAME_NACK,
          mac: bytes.slice(13),
        },
      };
    }
    default:
      return { ok: false, reason: 'unknown-kind' };
  }
}

function checkLength(name: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new RangeError(`"${name}" expected ${length} bytes`);
  }
}

export function encodeAct1(handshakeId: Uint8Array, initiator: Uint8Array, act: Uint8Array): Uint8Array {
  checkLength('handshakeId', handshakeId, HANDSHAKE_ID_BYTES);
  checkLength('initiator', initiator, 33);
  checkLength('act', act, ACT1_BYTES);
  const out = new Uint8Array(1 + HANDSHAKE_ID_BYTES + 33 + ACT1_BYTES);
  out[0] = FRAME_ACT1;
  out.set(handshakeId, 1);
  out.set(initiator, 9);
  out.set(act, 42);
  return out;
}

export function encodeAct2(handshakeId: Uint8Array, act: Uint8Array): Uint8Array {
  return encodeActFrame(FRAME_ACT2, handshakeId, act, ACT2_BYTES);
}

export function encodeAct3(handshakeId: Uint8Array, act: Uint8Array): Uint8Array {
  return encodeActFrame(FRAME_ACT3, handshakeId, act, ACT3_BYTES);
}

function encodeActFrame(kind: number, handshakeId: Uint8Array, act: Uint8Array, actBytes: number): Uint8Array {
  checkLength('handshakeId', handshakeId, HANDSHAKE_ID_BYTES);
  checkLength('act', act, actBytes);
  const out = new Uint8Array(1 + HANDSHAKE_ID_BYTES + actBytes);
  out[0] = kind;
  out.set(handshakeId, 1);
  out.set(act, 9);
  return out;
}

export function encodeData(sessionTag: Uint8Array, sequence: number, message: Uint8Array): Uint8Array {
  checkLength('sessionTag', sessionTag, SESSION_TAG_BYTES);
  checkSequence(sequence);
  if (message.length < MIN_BOLT8_MESSAGE || message.length > MAX_BOLT8_MESSAGE) {
    throw new RangeError('"message" is not a BOLT 8 transport message');
  }
  const out = new Uint8Array(DATA_HEADER_BYTES + message.length);
  out[0] = FRAME_DATA;
  out.set(sessionTag, 1);
  new DataView(out.buffer).setUint32(9, sequence, false);
  out.set(message, DATA_HEADER_BYTES);
  return out;
}

/** The authenticated part of an ACK or NACK (everything before the mac, kind byte included). */
export function ackBody(sessionTag: Uint8Array, nextSequence: number, gap: boolean): Uint8Array {
  checkLength('sessionTag', sessionTag, SESSION_TAG_BYTES);
  checkSequence(nextSequence);
  const out = new Uint8Array(1 + SESSION_TAG_BYTES + 4);
  out[0] = gap ? FRAME_NACK : FRAME_ACK;
  out.set(sessionTag, 1);
  new DataView(out.buffer).setUint32(9, nextSequence, false);
  return out;
}

export function encodeAck(body: Uint8Array, mac: Uint8Array): Uint8Array {
  checkLength('mac', mac, ACK_MAC_BYTES);
  const out = new Uint8Array(body.length + ACK_MAC_BYTES);
  out.set(body, 0);
  out.set(mac, body.length);
  return out;
}

function checkSequence(sequence: number): void {
  if (!Number.isInteger(sequence) || sequence < 0 || sequence > MAX_SEQUENCE) {
    throw new RangeError('"sequence" expected a u32');
  }
}

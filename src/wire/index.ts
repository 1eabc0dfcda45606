/**
 * The wire message catalogue (docs/protocol.md): every message Trickle nodes exchange, as one flat CBOR
 * map with integer keys, strictly decoded. Pure: bytes in, typed messages out, no I/O.
 *
 * @example
 *   const bytes = encodeMessage({ type: 'oneway_pay_ack', channelId, paymentNumber: 7n, amountMsat: 21_000n });
 *   const result = tryDecodeMessage(bytes);
 *   if (result.ok && result.message.type === 'oneway_pay_ack') console.log(result.message.amountMsat);
 */
import { decodeBody, decodeEnvelope, DEFAULT_MAX_MESSAGE_BYTES, encodeEnvelope } from './codec.js';
import type { MessageDef } from './schema.js';
import { MESSAGE_TYPE_CODES, type WireMessageType } from './codes.js';
import { WireError } from './wire-error.js';
import { sessionMessages, type SessionMsg } from './session.js';
import { errorMessages, type ErrorFamilyMsg } from './errors.js';
import { onewayOpenMessages, type OnewayOpenMsg } from './oneway-open.js';
import { rsmcOpenMessages, type RsmcOpenMsg } from './rsmc-open.js';
import { updateMessages, type UpdateMsg } from './update.js';
import { closeMessages, type CloseMsg } from './close.js';
import { announceMessages, type AnnounceMsg } from './announce.js';

export { WireError, type WireErrorCode, type WireErrorDetails } from './wire-error.js';
export { DEFAULT_MAX_MESSAGE_BYTES, PROTOCOL_VERSION } from './codec.js';
export { MAX_DEPTH, MAX_ITEMS } from './guard.js';
export { MESSAGE_TYPE_CODES, type WireMessageType } from './codes.js';
export type { FieldEntry, FieldTable, MessageDef, TypeSpec } from './schema.js';
export type * from './session.js';
export type * from './errors.js';
export type * from './oneway-open.js';
export type * from './rsmc-open.js';
export type * from './update.js';
export type * from './close.js';
export type * from './announce.js';
export { MAX_FEATURE_BYTES, MAX_PING_PADDING } from './session.js';
export { MAX_ERROR_TEXT_BYTES } from './errors.js';
export { MAX_SERVICE_ID_BYTES, MAX_UNIT_BYTES } from './oneway-open.js';
export { MAX_CONTRIBUTED_INPUTS, MAX_WITNESS_ITEMS, MAX_WITNESS_ITEM_BYTES } from './rsmc-open.js';
export { MAX_FAIL_REASON_BYTES, MAX_HTLC_SIGNATURES, MAX_ROUTE_BYTES } from './update.js';
export {
  ANNOUNCE_DOMAIN_TAG,
  MAX_ANNOUNCEMENT_BODY_BYTES,
  MAX_SERVICES,
  MAX_STATUS_BODY_BYTES,
  announcementDigest,
  openAnnouncement,
  openNodeStatus,
  signAnnouncement,
  signNodeStatus,
} from './announce.js';

/** Every message, discriminated by `type`. */
export type WireMessage = SessionMsg | ErrorFamilyMsg | OnewayOpenMsg | UpdateMsg | CloseMsg | RsmcOpenMsg | AnnounceMsg;

// The union and the code table must name the same messages.
type Exactly<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const _sameTypes: Exactly<WireMessage['type'], WireMessageType> = true;
void _sameTypes;

const DEFINITIONS: readonly MessageDef[] = [
  ...sessionMessages,
  ...errorMessages,
  ...onewayOpenMessages,
  ...updateMessages,
  ...closeMessages,
  ...rsmcOpenMessages,
  ...announceMessages,
];

const byType = new Map<string, MessageDef>();
const byCode = new Map<number, MessageDef>();
for (const def of DEFINITIONS) {
  if (byType.has(def.type) || byCode.has(def.code)) throw new Error(`wire: ${def.type} defined twice or code ${def.code} reused`);
  byType.set(def.type, def);
  byCode.set(def.code, def);
}
if (byType.size !== Object.keys(MESSAGE_TYPE_CODES).length) throw new Error('wire: a message in the code table has no definition');

/** The schema of a message type (docs, tests). */
export function messageDefinition(type: WireMessageType): MessageDef {
  const def = byType.get(type);
  if (def === undefined) throw new TypeError(`"type" unknown message type ${String(type)}`);
  return def;
}

export interface EncodeOptions {
  /** Refuse (RangeError) to produce more than this many bytes; default DEFAULT_MAX_MESSAGE_BYTES. */
  maxBytes?: number;
}

/**
 * Encode a message deterministically ([W-5]). Throws TypeError/RangeError naming the field when the
 * message is not valid: wrong type, out of range, too long, missing.
 */
export function encodeMessage(message: WireMessage, options: EncodeOptions = {}): Uint8Array {
  if (typeof message !== 'object' || message === null) throw new TypeError('"message" expected an object');
  const def = messageDefinition(message.type);
  return encodeEnvelope(def, message, options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
}

export interface DecodeOptions {
  /** [W-2] Reject longer input before parsing; default DEFAULT_MAX_MESSAGE_BYTES. */
  maxBytes?: number;
}

/**
 * Decode one message. For any byte string it returns a valid message or throws WireError, nothing else
 * ([W-13]); a non-Uint8Array argument or a bad `maxBytes` is misuse and throws TypeError/RangeError.
 * service_announcement and node_status come back with their body unchecked: use openAnnouncement /
 * openNodeStatus to verify them.
 */
export function decodeMessage(bytes: Uint8Array, options: DecodeOptions = {}): WireMessage {
  const envelope = decodeEnvelope(bytes, options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
  const def = byCode.get(envelope.typeCode);
  if (def === undefined) {
    const typeCode = envelope.typeCode >= 0 ? envelope.typeCode : undefined;
    throw new WireError('UNKNOWN_TYPE', `type code ${typeCode ?? '≥ 2^32'} is not defined`, {
      field: 'type',
      ...(typeCode === undefined ? {} : { typeCode }),
    });
  }
  return decodeBody(def, envelope) as WireMessage;
}

export type DecodeResult = { ok: true; message: WireMessage } | { ok: false; error: WireError };

/** decodeMessage as a result: bad bytes give `{ ok: false, error }` with the WireError. */
export function tryDecodeMessage(bytes: Uint8Array, options: DecodeOptions = {}): DecodeResult {
  try {
    return { ok: true, message: decodeMessage(bytes, options) };
  } catch (error) {
    if (error instanceof WireError) return { ok: false, error };
    throw error;
  }
}

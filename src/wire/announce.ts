/**
 * Signed announcements (docs/protocol.md §3.7, [W-14]): what a node offers (`service_announcement`) and
 * whether it is reachable (`node_status`), published retained on MQTT and relayed by anyone, so each
 * carries its author's signature.
 *
 * No canonicalisation is needed: the envelope carries the signed body as a byte string, and the
 * signature covers exactly those bytes — sha256("trickle/v1/announce" ‖ body), 64-byte compact low-S
 * ECDSA under the nodeId inside the body. The body is itself a map in envelope form whose type code
 * equals the outer one, so a signed status can never pass as a signed announcement.
 *
 * @example
 *   const bytes = signAnnouncement({ nodeId, timestamp: 1_700_000_000, services, public: true }, secretKey);
 *   const ann = openAnnouncement(bytes); // verified, or throws WireError
 */
import { concatBytes, equalBytes } from '../bytes.js';
import { sha256 } from '../crypto/hash.js';
import { publicKeyOf, signDigest, verifyDigest } from '../crypto/secp256k1.js';
import { decodeBody, decodeEnvelope, DEFAULT_MAX_MESSAGE_BYTES, encodeEnvelope } from './codec.js';
import {
  arrayOf,
  bool,
  defineMessage,
  enumOf,
  type MessageDef,
  msat,
  pubkey,
  sat,
  sig,
  struct,
  text,
  u64,
  unixTime,
  varBytes,
} from './schema.js';
import { MAX_SERVICE_ID_BYTES, MAX_UNIT_BYTES } from './oneway-open.js';
import { WireError } from './wire-error.js';

export const ANNOUNCE_DOMAIN_TAG = 'trickle/v1/announce';
export const MAX_SERVICES = 16;
export const MAX_ANNOUNCEMENT_BODY_BYTES = 4096;
export const MAX_STATUS_BODY_BYTES = 256;

const DOMAIN_TAG_BYTES = new TextEncoder().encode(ANNOUNCE_DOMAIN_TAG);

/** One metered service a node sells. */
export interface ServiceOffer {
  serviceId: string;
  unit: string;
  tariffMsatPerUnit: bigint;
  creditWindowUnits: bigint;
  minCapacitySat: bigint;
  maxCapacitySat: bigint;
}

export interface ServiceAnnouncementFields {
  /** The node's 33-byte identity key; the signature must verify under it. */
  nodeId: Uint8Array;
  /** Seconds since 1970; a receiver keeps only the newest per node. */
  timestamp: number;
  services: ServiceOffer[];
  /** Whether the node accepts channels from anyone (false: from known peers only). */
  public: boolean;
}

export type NodeStatus = 'offline' | 'online';

export interface NodeStatusFields {
  nodeId: Uint8Array;
  status: NodeStatus;
  timestamp: number;
}

/** The envelope as decodeMessage returns it: the body is opaque until openAnnouncement checks it. */
export interface ServiceAnnouncementMsg {
  type: 'service_announcement';
  body: Uint8Array;
  signature: Uint8Array;
}

export interface NodeStatusMsg {
  type: 'node_status';
  body: Uint8Array;
  signature: Uint8Array;
}

export type AnnounceMsg = ServiceAnnouncementMsg | NodeStatusMsg;

export interface OpenOptions {
  /** Limit on the whole message (default DEFAULT_MAX_MESSAGE_BYTES). */
  maxBytes?: number;
  /** Reject (NODE_ID_MISMATCH) unless the body's nodeId is this key, e.g. the one in the MQTT topic. */
  expectedNodeId?: Uint8Array;
}

const serviceOffer = struct<ServiceOffer>('ServiceOffer', {
  serviceId: { key: 0, type: text(MAX_SERVICE_ID_BYTES) },
  unit: { key: 2, type: text(MAX_UNIT_BYTES) },
  tariffMsatPerUnit: { key: 4, type: msat },
  creditWindowUnits: { key: 6, type: u64 },
  minCapacitySat: { key: 8, type: sat },
  maxCapacitySat: { key: 10, type: sat },
});

export const announceMessages = [
  defineMessage<ServiceAnnouncementMsg>('service_announcement', {
    body: { key: 2, type: varBytes(MAX_ANNOUNCEMENT_BODY_BYTES) },
    signature: { key: 4, type: sig },
  }),
  defineMessage<NodeStatusMsg>('node_status', {
    body: { key: 2, type: varBytes(MAX_STATUS_BODY_BYTES) },
    signature: { key: 4, type: sig },
  }),
] as const;

type Body<T, N extends AnnounceMsg['type']> = T & { type: N };

/** The signed bodies: same envelope layout and type code as the message that carries them. */
export const announceBodies = {
  service_announcement: defineMessage<Body<ServiceAnnouncementFields, 'service_announcement'>>('service_announcement', {
    nodeId: { key: 2, type: pubkey },
    timestamp: { key: 4, type: unixTime },
    services: { key: 6, type: arrayOf(serviceOffer, MAX_SERVICES) },
    public: { key: 8, type: bool },
  }),
  node_status: defineMessage<Body<NodeStatusFields, 'node_status'>>('node_status', {
    nodeId: { key: 2, type: pubkey },
    status: { key: 4, type: enumOf<NodeStatus>(['offline', 'online']) },
    timestamp: { key: 6, type: unixTime },
  }),
} as const;

/** [W-14] What the signature covers. */
export function announcementDigest(body: Uint8Array): Uint8Array {
  return sha256(concatBytes(DOMAIN_TAG_BYTES, body));
}

/**
 * Who signs: a raw 32-byte identity secret, or anything holding the identity key that can
 * sign a digest without revealing it (a NodeIdentity, a hardware key).
 */
export type AnnouncementSigner = Uint8Array | { readonly publicKey: Uint8Array; signDigest(digest: Uint8Array): Uint8Array };

function sign(outer: MessageDef, inner: MessageDef, bodyMax: number, fields: { nodeId: Uint8Array }, signer: AnnouncementSigner): Uint8Array {
  if (typeof fields !== 'object' || fields === null) throw new TypeError('"fields" expected an object');
  const nodeId = signer instanceof Uint8Array ? publicKeyOf(signer) : signer.publicKey; // TypeError/RangeError on a bad key
  if (!(fields.nodeId instanceof Uint8Array) || !equalBytes(fields.nodeId, nodeId)) {
    throw new RangeError('"nodeId" is not the public key of the signer');
  }
  const body = encodeEnvelope(inner, fields, bodyMax);
  const digest = announcementDigest(body);
  const signature = signer instanceof Uint8Array ? signDigest(digest, signer) : signer.signDigest(digest);
  return encodeEnvelope(outer, { body, signature });
}

function open<N extends AnnounceMsg['type'], F extends { nodeId: Uint8Array }>(
  outer: MessageDef<Extract<AnnounceMsg, { type: N }>>,
  inner: MessageDef<Body<F, N>>,
  bodyMax: number,
  bytes: Uint8Array,
  options: OpenOptions,
): F {
  const envelope = decodeEnvelope(bytes, options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
  if (envelope.typeCode !== outer.code) throw new WireError('BAD_TYPE', `expected a ${outer.type} message`, { field: 'type' });
  const { body, signature } = decodeBody(outer, envelope);
  let decoded: Body<F, N>;
  try {
    const inside = decodeEnvelope(body, bodyMax);
    if (inside.typeCode !== outer.code) throw new WireError('BAD_TYPE', `the body is not a ${outer.type} body`, { field: 'type' });
    decoded = decodeBody(inner, inside);
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    const field = e.field === undefined ? 'body' : `body.${e.field}`;
    throw new WireError(e.code, e.detail, { field, ...(e.offset === undefined ? {} : { offset: e.offset }) });
  }
  const { type, ...fields } = decoded;
  void type;
  const expected = options.expectedNodeId;
  if (expected !== undefined) {
    if (!(expected instanceof Uint8Array)) throw new TypeError('"expectedNodeId" expected Uint8Array');
    if (!equalBytes(expected, decoded.nodeId)) throw new WireError('NODE_ID_MISMATCH', 'signed by another node', { field: 'body.nodeId' });
  }
  // nodeId was checked on the curve and signature is 64 bytes, so verifyDigest cannot throw here.
  if (!verifyDigest(signature, announcementDigest(body), decoded.nodeId)) {
    throw new WireError('BAD_SIGNATURE', "does not verify under the body's nodeId", { field: 'signature' });
  }
  return fields as unknown as F;
}

const [announcementDef, statusDef] = announceMessages;

/** Sign a service announcement with the node's identity key; returns the complete wire message. */
export function signAnnouncement(fields: ServiceAnnouncementFields, signer: AnnouncementSigner): Uint8Array {
  return sign(announcementDef, announceBodies.service_announcement, MAX_ANNOUNCEMENT_BODY_BYTES, fields, signer);
}

/** Decode and verify a service announcement. Throws WireError (BAD_SIGNATURE, NODE_ID_MISMATCH, …). */
export function openAnnouncement(bytes: Uint8Array, options: OpenOptions = {}): ServiceAnnouncementFields {
  return open(announcementDef, announceBodies.service_announcement, MAX_ANNOUNCEMENT_BODY_BYTES, bytes, options);
}

/** Sign a node status with the node's identity key; returns the complete wire message. */
export function signNodeStatus(fields: NodeStatusFields, signer: AnnouncementSigner): Uint8Array {
  return sign(statusDef, announceBodies.node_status, MAX_STATUS_BODY_BYTES, fields, signer);
}

/** Decode and verify a node status. Throws WireError (BAD_SIGNATURE, NODE_ID_MISMATCH, …). */
export function openNodeStatus(bytes: Uint8Array, options: OpenOptions = {}): NodeStatusFields {
  return open(statusDef, announceBodies.node_status, MAX_STATUS_BODY_BYTES, bytes, options);
}

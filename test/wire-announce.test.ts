/**
 * Signed announcements (docs/protocol.md §2.9 [W-14], §3.7): the vectors in
 * test/vectors/wire/announcements.json, checked against node:crypto as an independent ECDSA and SHA-256,
 * and every way an announcement can be forged or confused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash, verify as nodeVerify } from 'node:crypto';
import * as secp from '@noble/secp256k1';
import { bigIntToBytes32, bytesToBigInt, bytesToHex, concatBytes, hexToBytes } from '../src/bytes.js';
import { CURVE_ORDER, publicKeyOf, signDigest } from '../src/crypto/secp256k1.js';
import {
  ANNOUNCE_DOMAIN_TAG,
  MAX_SERVICES,
  WireError,
  announcementDigest,
  decodeMessage,
  encodeMessage,
  openAnnouncement,
  openNodeStatus,
  signAnnouncement,
  signNodeStatus,
  type ServiceAnnouncementFields,
  type WireErrorCode,
} from '../src/wire/index.js';

interface SignedVector {
  fields: Record<string, unknown>;
  bodyHex: string;
  digestHex: string;
  signatureHex: string;
  messageHex: string;
}
const vectors = JSON.parse(readFileSync(new URL('./vectors/wire/announcements.json', import.meta.url), 'utf8')) as {
  secretKeyHex: string;
  nodeIdHex: string;
  service_announcement: SignedVector;
  node_status: SignedVector;
};

const secretKey = hexToBytes(vectors.secretKeyHex);
const nodeId = hexToBytes(vectors.nodeIdHex);
const otherKey = new Uint8Array(32).fill(2);

const va = vectors.service_announcement;
const announcement: ServiceAnnouncementFields = {
  nodeId,
  timestamp: va.fields.timestamp as number,
  public: va.fields.public as boolean,
  services: (va.fields.services as Record<string, string>[]).map((s) => ({
    serviceId: s.serviceId!,
    unit: s.unit!,
    tariffMsatPerUnit: BigInt(s.tariffMsatPerUnit!),
    creditWindowUnits: BigInt(s.creditWindowUnits!),
    minCapacitySat: BigInt(s.minCapacitySat!),
    maxCapacitySat: BigInt(s.maxCapacitySat!),
  })),
};

function codeOf(fn: () => unknown): WireErrorCode {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof WireError, `expected WireError, got ${String(e)}`);
    return e.code;
  }
  assert.fail('expected a WireError');
}

/** Sign arbitrary body bytes with `key` and wrap them, bypassing signAnnouncement's checks. */
function wrap(type: 'service_announcement' | 'node_status', body: Uint8Array, key = secretKey): Uint8Array {
  return encodeMessage({ type, body, signature: signDigest(announcementDigest(body), key) });
}

/** Verify with node:crypto (OpenSSL): SHA-256 of tag ‖ body, P1363 (r ‖ s) signature. */
function opensslVerifies(vector: SignedVector): boolean {
  const point = secp.Point.fromBytes(nodeId).toBytes(false);
  const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  const jwk = { kty: 'EC', crv: 'secp256k1', x: b64url(point.slice(1, 33)), y: b64url(point.slice(33)) };
  const data = concatBytes(new TextEncoder().encode(ANNOUNCE_DOMAIN_TAG), hexToBytes(vector.bodyHex));
  return nodeVerify('sha256', data, { key: jwk, format: 'jwk', dsaEncoding: 'ieee-p1363' }, hexToBytes(vector.signatureHex));
}

test('[W-14] service_announcement vector: signs to the same bytes, opens to the same fields', () => {
  assert.equal(bytesToHex(publicKeyOf(secretKey)), vectors.nodeIdHex);
  const bytes = signAnnouncement(announcement, secretKey);
  assert.equal(bytesToHex(bytes), va.messageHex);
  assert.deepEqual(openAnnouncement(bytes), announcement);
  const digest = createHash('sha256').update(ANNOUNCE_DOMAIN_TAG).update(hexToBytes(va.bodyHex)).digest('hex');
  assert.equal(digest, va.digestHex);
  assert.equal(bytesToHex(announcementDigest(hexToBytes(va.bodyHex))), va.digestHex);
  assert.ok(opensslVerifies(va));
});

test('[W-14] node_status vector: signs to the same bytes, opens to the same fields', () => {
  const vs = vectors.node_status;
  const fields = { nodeId, status: vs.fields.status as 'offline', timestamp: vs.fields.timestamp as number };
  const bytes = signNodeStatus(fields, secretKey);
  assert.equal(bytesToHex(bytes), vs.messageHex);
  assert.deepEqual(openNodeStatus(bytes), fields);
  assert.deepEqual(openNodeStatus(signNodeStatus({ ...fields, status: 'online' }, secretKey)), { ...fields, status: 'online' });
  assert.ok(opensslVerifies(vs));
});

test('[W-14] decodeMessage returns the envelope, which re-encodes byte for byte', () => {
  const message = decodeMessage(hexToBytes(va.messageHex));
  assert.equal(message.type, 'service_announcement');
  assert.ok(message.type === 'service_announcement' && bytesToHex(message.body) === va.bodyHex);
  assert.equal(bytesToHex(encodeMessage(message)), va.messageHex);
});

test('[W-14] a tampered body fails with BAD_SIGNATURE', () => {
  const message = decodeMessage(hexToBytes(va.messageHex));
  assert.ok(message.type === 'service_announcement');
  // timestamp 1700000000 = 1a 6553f100 → 1a 6553f101: still a valid body, no longer the signed one
  const body = hexToBytes(va.bodyHex.replace('041a6553f100', '041a6553f101'));
  assert.notEqual(bytesToHex(body), va.bodyHex);
  assert.equal(codeOf(() => openAnnouncement(encodeMessage({ ...message, body }))), 'BAD_SIGNATURE');
  // tariff 1500 → 1501 in the raw message bytes
  const raw = hexToBytes(va.messageHex.replace('041905dc', '041905dd'));
  assert.equal(codeOf(() => openAnnouncement(raw)), 'BAD_SIGNATURE');
});

test('[W-14] a tampered or high-S signature fails with BAD_SIGNATURE', () => {
  const message = decodeMessage(hexToBytes(va.messageHex));
  assert.ok(message.type === 'service_announcement');
  const flipped = Uint8Array.from(message.signature);
  flipped[10]! ^= 1;
  assert.equal(codeOf(() => openAnnouncement(encodeMessage({ ...message, signature: flipped }))), 'BAD_SIGNATURE');
  const s = bytesToBigInt(message.signature.slice(32));
  const highS = concatBytes(message.signature.slice(0, 32), bigIntToBytes32(CURVE_ORDER - s));
  assert.equal(codeOf(() => openAnnouncement(encodeMessage({ ...message, signature: highS }))), 'BAD_SIGNATURE');
  assert.equal(codeOf(() => openAnnouncement(encodeMessage({ ...message, signature: new Uint8Array(64) }))), 'BAD_SIGNATURE');
});

test('[W-14] signed by a key other than nodeId: BAD_SIGNATURE; signAnnouncement refuses it', () => {
  const body = hexToBytes(va.bodyHex); // nodeId is the vector's key
  assert.equal(codeOf(() => openAnnouncement(wrap('service_announcement', body, otherKey))), 'BAD_SIGNATURE');
  assert.throws(() => signAnnouncement(announcement, otherKey), RangeError);
  assert.throws(() => signNodeStatus({ nodeId, status: 'online', timestamp: 1 }, otherKey), RangeError);
  assert.throws(() => signAnnouncement(announcement, new Uint8Array(31)), TypeError);
});

test('[W-14] nodeId other than the expected node: NODE_ID_MISMATCH', () => {
  const bytes = hexToBytes(va.messageHex);
  assert.deepEqual(openAnnouncement(bytes, { expectedNodeId: nodeId }), announcement);
  assert.equal(codeOf(() => openAnnouncement(bytes, { expectedNodeId: publicKeyOf(otherKey) })), 'NODE_ID_MISMATCH');
  // A self-consistent announcement by another node, e.g. replayed onto this node's topic.
  const other = signAnnouncement({ ...announcement, nodeId: publicKeyOf(otherKey) }, otherKey);
  assert.equal(openAnnouncement(other).nodeId.length, 33);
  assert.equal(codeOf(() => openAnnouncement(other, { expectedNodeId: nodeId })), 'NODE_ID_MISMATCH');
  assert.equal(codeOf(() => openNodeStatus(hexToBytes(vectors.node_status.messageHex), { expectedNodeId: publicKeyOf(otherKey) })), 'NODE_ID_MISMATCH');
});

test('[W-14] a status cannot pass as an announcement, outside or inside', () => {
  const status = hexToBytes(vectors.node_status.messageHex);
  assert.equal(codeOf(() => openAnnouncement(status)), 'BAD_TYPE');
  assert.equal(codeOf(() => openNodeStatus(hexToBytes(va.messageHex))), 'BAD_TYPE');
  // a validly signed status body inside an announcement envelope
  try {
    openAnnouncement(wrap('service_announcement', hexToBytes(vectors.node_status.bodyHex)));
    assert.fail('opened');
  } catch (e) {
    assert.ok(e instanceof WireError && e.code === 'BAD_TYPE' && e.field === 'body.type', String(e));
  }
});

test('[W-9] [W-14] the body follows the wire rules, with errors located under body.*', () => {
  const statusBody = vectors.node_status.bodyHex; // a5 … 04 00 06 1a6553f100
  const edit = (hex: string) => hexToBytes(hex);
  assert.ok(statusBody.startsWith('a5'));
  // an unknown odd key is ignored (and covered by the signature); an unknown even key is rejected
  const odd = edit('a6' + statusBody.slice(2) + '0b00');
  assert.equal(openNodeStatus(wrap('node_status', odd)).status, 'offline');
  const even = edit('a6' + statusBody.slice(2) + '0a00');
  try {
    openNodeStatus(wrap('node_status', even));
    assert.fail('opened');
  } catch (e) {
    assert.ok(e instanceof WireError && e.code === 'UNKNOWN_EVEN_FIELD' && e.field === 'body.#10', String(e));
  }
  // enum value 2 is not defined
  const status2 = edit(statusBody.replace('0400061a', '0402061a'));
  assert.equal(codeOf(() => openNodeStatus(wrap('node_status', status2))), 'OUT_OF_RANGE');
  // not CBOR at all, a duplicate key, a wrong version
  assert.equal(codeOf(() => openNodeStatus(wrap('node_status', edit('ff')))), 'NOT_A_MAP');
  assert.equal(codeOf(() => openNodeStatus(wrap('node_status', edit('a6' + statusBody.slice(2) + '0600')))), 'DUPLICATE_KEY');
  assert.equal(codeOf(() => openNodeStatus(wrap('node_status', edit('a5' + '0002' + statusBody.slice(6))))), 'UNSUPPORTED_VERSION');
  // a body longer than its limit (256 bytes for a status) is refused by the envelope's field check
  assert.throws(() => encodeMessage({ type: 'node_status', body: new Uint8Array(257), signature: new Uint8Array(64) }), RangeError);
  const long = hexToBytes('a4000101186202590101' + '00'.repeat(257) + '045840' + '00'.repeat(64));
  assert.equal(codeOf(() => decodeMessage(long)), 'BAD_LENGTH');
  assert.equal(codeOf(() => openNodeStatus(long)), 'BAD_LENGTH');
});

test('[W-10] service list limits are enforced when signing', () => {
  const service = announcement.services[0]!;
  const sixteen = Array.from({ length: MAX_SERVICES }, () => service);
  assert.equal(openAnnouncement(signAnnouncement({ ...announcement, services: sixteen }, secretKey)).services.length, 16);
  assert.throws(() => signAnnouncement({ ...announcement, services: [...sixteen, service] }, secretKey), RangeError);
  assert.throws(() => signAnnouncement({ ...announcement, services: [{ ...service, unit: 'x'.repeat(17) }] }, secretKey), RangeError);
});

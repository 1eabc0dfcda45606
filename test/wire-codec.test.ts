/**
 * The wire codec (docs/protocol.md §2–§3): every message type round-trips byte for byte, each strictness
 * rule rejects a hand-made CBOR input with its own code, the hex fixtures of
 * test/vectors/wire/strict-decoding.json drive one generic test, and the catalogue in docs/protocol.md
 * matches the schemas.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bytesToHex, hexToBytes } from '../src/bytes.js';
import { publicKeyOf } from '../src/crypto/secp256k1.js';
import { MAX_MONEY_MSAT, MAX_MONEY_SAT } from '../src/amounts.js';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_HTLC_SIGNATURES,
  MAX_ITEMS,
  MESSAGE_TYPE_CODES,
  WireError,
  decodeMessage,
  encodeMessage,
  messageDefinition,
  tryDecodeMessage,
  type WireErrorCode,
  type WireMessage,
  type WireMessageType,
} from '../src/wire/index.js';
import { announceBodies } from '../src/wire/announce.js';
import { describeType, type FieldTable, type TypeSpec } from '../src/wire/schema.js';

const fill = (length: number, byte: number): Uint8Array => new Uint8Array(length).fill(byte);
const key = (n: number): Uint8Array => publicKeyOf(fill(32, n));
const cid = fill(32, 0x11);
const sigA = fill(64, 0x22);
const p2wpkh = hexToBytes('0014' + '33'.repeat(20));

/** One example of every message, fields near their interesting edges. */
const samples: Record<WireMessageType, WireMessage> = {
  init: { type: 'init', features: hexToBytes('0102'), chainHash: fill(32, 0x06) },
  ping: { type: 'ping', id: 0xffff_ffff, padding: fill(1024, 0) },
  pong: { type: 'pong', id: 0 },
  error: { type: 'error', code: 1, message: 'funding too small — ünïcødé 🚀' },
  warning: { type: 'warning', channelId: cid, code: 65535, message: '' },
  oneway_propose: {
    type: 'oneway_propose',
    tempChannelId: fill(32, 1),
    capacitySat: MAX_MONEY_SAT,
    expiryHeight: 899_999,
    payerFundingPubkey: key(1),
    payerRefundScript: p2wpkh,
    serviceId: 'wifi.hotspot',
    unit: 'MB',
    tariffMsatPerUnit: 1500n,
    creditWindowUnits: 10n,
    feeratePerKw: 253n,
  },
  oneway_accept: { type: 'oneway_accept', tempChannelId: fill(32, 1), payeeFundingPubkey: key(2), payeePayoutScript: new Uint8Array(0), minimumDepth: 3 },
  oneway_refund_request: { type: 'oneway_refund_request', tempChannelId: fill(32, 1), fundingTxid: fill(32, 9), fundingVout: 1, fundingValueSat: 100_000n },
  oneway_refund_signed: { type: 'oneway_refund_signed', tempChannelId: fill(32, 1), refundSignature: sigA },
  oneway_funded: { type: 'oneway_funded', tempChannelId: fill(32, 1), channelId: cid, fundingTxid: fill(32, 9), fundingVout: 0 },
  oneway_ready: { type: 'oneway_ready', channelId: cid },
  oneway_pay: { type: 'oneway_pay', channelId: cid, paymentNumber: (1n << 64n) - 1n, amountMsat: MAX_MONEY_MSAT, signature: sigA },
  oneway_pay_ack: { type: 'oneway_pay_ack', channelId: cid, paymentNumber: 0n, amountMsat: 0n },
  oneway_resume: { type: 'oneway_resume', channelId: cid, latestPaymentNumber: 4_294_967_296n, latestAmountMsat: 4_294_967_295n },
  oneway_close_request: { type: 'oneway_close_request', channelId: cid },
  oneway_settled: { type: 'oneway_settled', channelId: cid, txid: fill(32, 0xee) },
  open_channel: {
    type: 'open_channel',
    temporaryChannelId: fill(32, 3),
    fundingSat: 1_000_000n,
    pushMsat: 0n,
    dustLimitSat: 354n,
    maxHtlcValueInFlightMsat: 1_000_000_000n,
    channelReserveSat: 10_000n,
    htlcMinimumMsat: 1n,
    feeratePerKw: 0xffff_ffffn,
    toSelfDelay: 144,
    maxAcceptedHtlcs: 483,
    fundingPubkey: key(3),
    revocationBasepoint: key(4),
    paymentBasepoint: key(5),
    delayedPaymentBasepoint: key(6),
    htlcBasepoint: key(7),
    firstPerCommitmentPoint: key(8),
  },
  accept_channel: {
    type: 'accept_channel',
    temporaryChannelId: fill(32, 3),
    fundingSat: 0n,
    dustLimitSat: 546n,
    maxHtlcValueInFlightMsat: MAX_MONEY_MSAT,
    channelReserveSat: 10_000n,
    htlcMinimumMsat: 1000n,
    minimumDepth: 6,
    toSelfDelay: 65535,
    maxAcceptedHtlcs: 30,
    fundingPubkey: key(9),
    revocationBasepoint: key(10),
    paymentBasepoint: key(11),
    delayedPaymentBasepoint: key(12),
    htlcBasepoint: key(13),
    firstPerCommitmentPoint: key(14),
  },
  funding_contribution: {
    type: 'funding_contribution',
    temporaryChannelId: fill(32, 3),
    inputs: [
      { txid: fill(32, 0xa1), vout: 0, valueSat: 50_000n, script: p2wpkh },
      { txid: fill(32, 0xa2), vout: 7, valueSat: 25_000n, script: p2wpkh },
    ],
    changeScript: p2wpkh,
  },
  funding_created: { type: 'funding_created', temporaryChannelId: fill(32, 3), fundingTxid: fill(32, 0xf0), fundingOutputIndex: 1, signature: sigA },
  funding_signed: { type: 'funding_signed', channelId: cid, signature: sigA },
  funding_tx_signatures: { type: 'funding_tx_signatures', channelId: cid, witnesses: [[fill(72, 0x30), key(1)], []] },
  channel_ready: { type: 'channel_ready', channelId: cid, secondPerCommitmentPoint: key(15) },
  update_add_htlc: {
    type: 'update_add_htlc',
    channelId: cid,
    id: 0n,
    amountMsat: 1n,
    paymentHash: fill(32, 0x77),
    cltvExpiry: 800_144,
    route: fill(1300, 0x55),
  },
  update_fulfill_htlc: { type: 'update_fulfill_htlc', channelId: cid, id: 1n, paymentPreimage: fill(32, 0x99) },
  update_fail_htlc: { type: 'update_fail_htlc', channelId: cid, id: 2n, reason: fill(1024, 1) },
  update_fee: { type: 'update_fee', channelId: cid, feeratePerKw: 253n },
  update_transfer: { type: 'update_transfer', channelId: cid, id: 7n, amountMsat: 1_234_567n },
  commitment_signed: { type: 'commitment_signed', channelId: cid, signature: sigA, htlcSignatures: [sigA, fill(64, 0x23)] },
  revoke_and_ack: { type: 'revoke_and_ack', channelId: cid, perCommitmentSecret: fill(32, 0x44), nextPerCommitmentPoint: key(16) },
  channel_reestablish: {
    type: 'channel_reestablish',
    channelId: cid,
    nextCommitmentNumber: 1n,
    nextRevocationNumber: 0n,
    yourLastPerCommitmentSecret: fill(32, 0),
    myCurrentPerCommitmentPoint: key(17),
  },
  shutdown: { type: 'shutdown', channelId: cid, scriptPubkey: hexToBytes('5120' + '44'.repeat(32)) },
  closing_signed: { type: 'closing_signed', channelId: cid, feeSat: 183n, signature: sigA },
  service_announcement: { type: 'service_announcement', body: fill(40, 0xa0), signature: sigA },
  node_status: { type: 'node_status', body: fill(12, 0xa0), signature: sigA },
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

const decodeHex = (hex: string, maxBytes?: number) => decodeMessage(hexToBytes(hex.replace(/\s+/g, '')), maxBytes === undefined ? {} : { maxBytes });
const rejects = (hex: string, code: WireErrorCode) => assert.equal(codeOf(() => decodeHex(hex)), code);

// pong {0:1, 1:6, 2:7}: the smallest valid message, the base of most hand-made inputs below.
const PONG = 'a3 00 01 01 06 02 07';

test('[W-8] the type table has one sample per message type, and codes are unique and even', () => {
  assert.deepEqual(Object.keys(samples).sort(), Object.keys(MESSAGE_TYPE_CODES).sort());
  const codes = Object.values(MESSAGE_TYPE_CODES);
  assert.equal(new Set(codes).size, codes.length);
  for (const code of codes) assert.equal(code % 2, 0);
});

for (const [type, message] of Object.entries(samples)) {
  test(`[W-5] ${type} round-trips and re-encodes byte for byte`, () => {
    const bytes = encodeMessage(message);
    const decoded = decodeMessage(bytes);
    assert.deepEqual(decoded, message);
    assert.equal(bytesToHex(encodeMessage(decoded)), bytesToHex(bytes));
    for (const value of Object.values(decoded)) {
      if (value instanceof Uint8Array) assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype, 'plain Uint8Array, not Buffer');
    }
  });
}

test('[W-10] every defined field has an even key ≥ 2 (nested: ≥ 0), except ping.padding', () => {
  const check = (table: FieldTable, where: string, min: number) => {
    for (const e of table.entries) {
      assert.ok(e.key >= min, `${where}.${e.name}`);
      if (!(where === 'ping' && e.name === 'padding')) assert.equal(e.key % 2, 0, `${where}.${e.name} has an odd key`);
      let spec: TypeSpec = e.spec;
      while (spec.kind === 'array') spec = spec.item;
      if (spec.kind === 'struct') check(spec.table, spec.name, 0);
    }
  };
  for (const type of Object.keys(MESSAGE_TYPE_CODES) as WireMessageType[]) check(messageDefinition(type).table, type, 2);
  for (const [type, def] of Object.entries(announceBodies)) check(def.table, `${type} body`, 2);
});

test('[W-5] pinned encodings: pong, and integers at each width boundary', () => {
  assert.equal(bytesToHex(encodeMessage({ type: 'pong', id: 7 })), 'a3000101060207');
  const amounts: [bigint, string][] = [
    [0n, '00'],
    [23n, '17'],
    [24n, '1818'],
    [255n, '18ff'],
    [256n, '190100'],
    [65535n, '19ffff'],
    [65536n, '1a00010000'],
    [4_294_967_295n, '1affffffff'],
    [4_294_967_296n, '1b0000000100000000'],
  ];
  for (const [amountMsat, hex] of amounts) {
    const bytes = encodeMessage({ type: 'oneway_pay_ack', channelId: cid, paymentNumber: 1n, amountMsat });
    assert.ok(bytesToHex(bytes).endsWith('06' + hex), `${amountMsat}`);
    // [W-11] any width decodes to a bigint
    const decoded = decodeMessage(bytes);
    assert.equal(decoded.type === 'oneway_pay_ack' && decoded.amountMsat, amountMsat);
  }
});

test('[W-10] commitment_signed with 483 HTLC signatures fits, 484 does not encode', () => {
  const htlcSignatures = Array.from({ length: MAX_HTLC_SIGNATURES }, (_, i) => fill(64, i & 0xff));
  const message: WireMessage = { type: 'commitment_signed', channelId: cid, signature: sigA, htlcSignatures };
  const bytes = encodeMessage(message);
  assert.ok(bytes.length < 33_000);
  assert.deepEqual(decodeMessage(bytes), message);
  assert.throws(() => encodeMessage({ ...message, htlcSignatures: [...htlcSignatures, sigA] }), RangeError);
});

// ---------------------------------------------------------------------------------------------------------
// Vectors as data

interface Vectors {
  valid: { name: string; type: WireMessageType; hex: string; canonicalHex?: string }[];
  invalid: { name: string; hex: string; code: WireErrorCode }[];
}
const vectors = JSON.parse(readFileSync(new URL('./vectors/wire/strict-decoding.json', import.meta.url), 'utf8')) as Vectors;

test('vectors: valid inputs decode and re-encode canonically', () => {
  for (const v of vectors.valid) {
    const message = decodeMessage(hexToBytes(v.hex));
    assert.equal(message.type, v.type, v.name);
    assert.equal(bytesToHex(encodeMessage(message)), v.canonicalHex ?? v.hex, v.name);
  }
});

test('vectors: invalid inputs fail with their code', () => {
  for (const v of vectors.invalid) {
    assert.equal(codeOf(() => decodeMessage(hexToBytes(v.hex))), v.code, v.name);
    const result = tryDecodeMessage(hexToBytes(v.hex));
    assert.ok(!result.ok && result.error.code === v.code, v.name);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Strictness, rule by rule

test('[W-2] a message over the limit is rejected before it is parsed', () => {
  assert.equal(codeOf(() => decodeHex(PONG, 6)), 'TOO_LARGE');
  assert.equal(decodeHex(PONG, 7).type, 'pong');
  // Garbage of the default limit + 1 bytes: TOO_LARGE, not whatever the first byte would say.
  assert.equal(codeOf(() => decodeMessage(fill(DEFAULT_MAX_MESSAGE_BYTES + 1, 0xff))), 'TOO_LARGE');
  assert.throws(() => decodeMessage(hexToBytes('a0'), { maxBytes: 0 }), RangeError);
});

test('[W-1] the top level is exactly one map', () => {
  rejects('83 00 01 06', 'NOT_A_MAP');
  rejects('c0 a0', 'NOT_A_MAP');
  rejects('', 'MALFORMED');
  rejects(PONG + '00', 'TRAILING_BYTES');
  rejects(PONG + PONG, 'TRAILING_BYTES');
  rejects('a3 00 01 01 06 02', 'MALFORMED');
});

test('[W-4] rejects a duplicate key, at the top level and nested', () => {
  rejects('a4 00 01 01 06 02 07 02 07', 'DUPLICATE_KEY');
  rejects('a4 00 01 01 06 02 07 00 01', 'DUPLICATE_KEY');
  // a ContributedInput inside funding_contribution.inputs: { 0: txid, 0: txid }
  const input = 'a2 00 5820' + '11'.repeat(32) + ' 00 5820' + '11'.repeat(32);
  rejects('a4 00 01 01 18 34 02 5820' + '11'.repeat(32) + ' 04 81 ' + input, 'DUPLICATE_KEY');
  // a duplicate odd (unknown, otherwise ignored) key is still a duplicate
  rejects('a5 00 01 01 06 02 07 03 00 03 00', 'DUPLICATE_KEY');
});

test('[W-4] map keys are unsigned integers below 2^32', () => {
  rejects('a3 00 01 01 06 61 61 07', 'BAD_KEY');
  rejects('a3 00 01 01 06 20 07', 'BAD_KEY');
  rejects('a4 00 01 01 06 02 07 1b 0000000100000000 00', 'BAD_KEY');
  assert.equal(decodeHex('a4 00 01 01 06 02 07 1a ffffffff 00').type, 'pong'); // odd, ignored
});

test('[W-5] rejects non-shortest heads and keys out of order', () => {
  rejects('a3 00 01 01 06 02 18 07', 'NON_CANONICAL');
  rejects('a3 00 01 01 06 02 19 0007', 'NON_CANONICAL');
  rejects('a3 00 01 01 06 02 1a 00000007', 'NON_CANONICAL');
  rejects('a3 00 01 01 06 02 1b 0000000000000007', 'NON_CANONICAL');
  rejects('a3 00 01 01 06 02 1b 00000000ffffffff', 'NON_CANONICAL');
  rejects('b8 03 00 01 01 06 02 07', 'NON_CANONICAL');
  rejects('a4 00 01 01 06 02 07 03 58 01 00', 'NON_CANONICAL');
  rejects('a3 01 06 00 01 02 07', 'NON_CANONICAL');
  rejects('a4 00 01 01 06 03 00 02 07', 'NON_CANONICAL');
});

test('[W-3] rejects tags, indefinite lengths, floats and simple values', () => {
  rejects('a3 00 01 01 06 02 c1 07', 'TAG_NOT_ALLOWED');
  rejects('a4 00 01 01 06 02 07 03 d8 40 41 00', 'TAG_NOT_ALLOWED');
  rejects('bf 00 01 01 06 02 07 ff', 'INDEFINITE_LENGTH');
  rejects('a4 00 01 01 06 02 07 03 9f ff', 'INDEFINITE_LENGTH');
  rejects('a4 00 01 01 06 02 07 03 7f ff', 'INDEFINITE_LENGTH');
  rejects('a3 00 01 01 06 02 1f', 'MALFORMED');
  rejects('a3 00 01 01 06 02 f9 0000', 'FLOAT_NOT_ALLOWED');
  rejects('a3 00 01 01 06 02 fa 3f800000', 'FLOAT_NOT_ALLOWED');
  rejects('a3 00 01 01 06 02 fb 3ff0000000000000', 'FLOAT_NOT_ALLOWED');
  rejects('a3 00 01 01 06 02 f6', 'SIMPLE_NOT_ALLOWED');
  rejects('a3 00 01 01 06 02 f7', 'SIMPLE_NOT_ALLOWED');
  rejects('a3 00 01 01 06 02 e0', 'SIMPLE_NOT_ALLOWED');
  rejects('a3 00 01 01 06 02 f8 20', 'SIMPLE_NOT_ALLOWED');
  rejects('a3 00 01 01 06 02 fc', 'MALFORMED');
  rejects('a3 00 01 01 06 02 ff', 'MALFORMED');
});

test('[W-6] huge declared lengths in a tiny message fail fast, without allocating', () => {
  const started = performance.now();
  for (const head of ['5a ffffffff', '5b ffffffffffffffff', '7a ffffffff', '9a ffffffff', '9b 0000000100000000', 'ba ffffffff', 'bb ffffffffffffffff', '58 ff', '98 20']) {
    rejects('a4 00 01 01 06 02 07 03 ' + head, 'MALFORMED');
  }
  rejects('ba ffffffff 00 01', 'MALFORMED');
  rejects('bb 0000000100000000 00 01', 'MALFORMED');
  assert.ok(performance.now() - started < 100);
});

test('[W-6] rejects nesting deeper than 8 and accepts 8', () => {
  const nested = (arrays: number) => 'a4 00 01 01 06 02 07 03 ' + '81 '.repeat(arrays - 1) + '80';
  assert.equal(decodeHex(nested(7)).type, 'pong'); // map (1) + 7 arrays = depth 8
  rejects(nested(8), 'TOO_DEEP');
  rejects('a4 00 01 01 06 02 07 03 ' + 'a1 01 '.repeat(7) + 'a0', 'TOO_DEEP');
});

test('[W-6] rejects more than MAX_ITEMS data items', () => {
  const many = (n: number) => 'a4 00 01 01 06 02 07 03 99 ' + n.toString(16).padStart(4, '0') + '00'.repeat(n);
  // the envelope map and its 7 keys and values, the array itself, then its elements
  assert.equal(decodeHex(many(MAX_ITEMS - 9)).type, 'pong');
  rejects(many(MAX_ITEMS - 8), 'TOO_MANY_ITEMS');
});

test('[W-6] rejects text that is not valid UTF-8', () => {
  const error = (text: string) => `a4 00 01 01 08 04 01 06 ${(0x60 + text.length / 2).toString(16)} ${text}`;
  assert.equal(decodeHex(error('c3a9')).type, 'error');
  assert.equal(decodeHex(error('f09f9a80')).type, 'error');
  for (const bad of ['c328', 'ff', 'c0af', 'e080af', 'eda080', 'f4908080', 'e282', 'f09f9a']) rejects(error(bad), 'BAD_UTF8');
});

test('[W-7] rejects an unsupported, missing or mistyped version', () => {
  rejects('a3 00 02 01 06 02 07', 'UNSUPPORTED_VERSION');
  rejects('a3 00 00 01 06 02 07', 'UNSUPPORTED_VERSION');
  rejects('a2 01 06 02 07', 'MISSING_FIELD');
  rejects('a3 00 41 01 01 06 02 07', 'BAD_TYPE');
  rejects('a3 00 20 01 06 02 07', 'BAD_TYPE');
});

test('[W-8] rejects an unknown type with its own code and says which', () => {
  for (const [hex, code] of [['05', 5], ['00', 0], ['19 03e8', 1000]] as const) {
    try {
      decodeHex(`a3 00 01 01 ${hex} 02 07`);
      assert.fail('decoded');
    } catch (e) {
      assert.ok(e instanceof WireError && e.code === 'UNKNOWN_TYPE' && e.typeCode === code);
    }
  }
  rejects('a2 00 01 02 07', 'MISSING_FIELD');
  rejects('a3 00 01 01 61 61 02 07', 'BAD_TYPE');
  rejects('a3 00 01 01 1b 0000000100000000 02 07', 'UNKNOWN_TYPE');
});

test('[W-9] an unknown odd key is ignored, an unknown even key rejected, nested too', () => {
  // the value of an ignored key is not interpreted (its nested even key 4 is not "unknown")
  assert.deepEqual(decodeHex('a4 00 01 01 06 02 07 03 a1 04 f5'), { type: 'pong', id: 7 });
  assert.deepEqual(decodeHex('a4 00 01 01 06 02 07 19 ffff 82 20 61 61'), { type: 'pong', id: 7 });
  rejects('a4 00 01 01 06 02 07 04 00', 'UNKNOWN_EVEN_FIELD');
  rejects('a4 00 01 01 06 02 07 1a fffffffe 00', 'UNKNOWN_EVEN_FIELD');
  const txid = '5820' + 'aa'.repeat(32);
  const input = (extra: string) => `a5 00 ${txid} 02 00 04 01 06 40 ${extra}`;
  const contribution = (extra: string) => `a4 00 01 01 18 34 02 5820${'11'.repeat(32)} 04 81 ` + input(extra);
  const decoded = decodeHex(contribution('09 00'));
  assert.ok(decoded.type === 'funding_contribution' && decoded.inputs.length === 1 && decoded.inputs[0]!.vout === 0);
  try {
    decodeHex(contribution('08 00'));
    assert.fail('decoded');
  } catch (e) {
    assert.ok(e instanceof WireError && e.code === 'UNKNOWN_EVEN_FIELD' && e.field === 'inputs[0].#8', String(e));
  }
});

test('[W-10] rejects missing fields, wrong types, out-of-range integers and bad lengths', () => {
  rejects('a2 00 01 01 06', 'MISSING_FIELD');
  rejects('a3 00 01 01 06 02 41 07', 'BAD_TYPE');
  rejects('a3 00 01 01 06 02 61 37', 'BAD_TYPE');
  rejects('a3 00 01 01 06 02 f5', 'BAD_TYPE');
  rejects('a3 00 01 01 06 02 80', 'BAD_TYPE');
  rejects('a3 00 01 01 06 02 a0', 'BAD_TYPE');
  rejects('a3 00 01 01 06 02 1b 0000000100000000', 'OUT_OF_RANGE');
  rejects('a3 00 01 01 06 02 20', 'OUT_OF_RANGE');
  rejects('a3 00 01 01 06 02 3b ffffffffffffffff', 'OUT_OF_RANGE');
  const m = (message: WireMessage) => bytesToHex(encodeMessage(message));
  // sat above MAX_MONEY: re-encode a closing_signed with the amount spliced in by hand.
  const closing = m({ type: 'closing_signed', channelId: cid, feeSat: 1n, signature: sigA });
  rejects(closing.replace('0401', '041b000775f05a074001'), 'OUT_OF_RANGE');
  assert.equal(decodeHex(closing.replace('0401', '041b000775f05a074000')).type, 'closing_signed'); // = MAX_MONEY_SAT
  // wrong-length signature and byte strings
  const funded = m({ type: 'funding_signed', channelId: cid, signature: sigA });
  rejects(funded.replace('5840' + '22'.repeat(64), '583f' + '22'.repeat(63)), 'BAD_LENGTH');
  rejects(funded.replace('5840' + '22'.repeat(64), '5841' + '22'.repeat(65)), 'BAD_LENGTH');
  rejects(funded.replace('5820' + '11'.repeat(32), '5821' + '11'.repeat(33)), 'BAD_LENGTH');
  // enum out of range is covered by the node_status body in wire-announce.test.ts
});

test('[W-10] rejects a pubkey that is not on the curve, or not compressed', () => {
  const ready = bytesToHex(encodeMessage({ type: 'channel_ready', channelId: cid, secondPerCommitmentPoint: key(15) }));
  const point = bytesToHex(key(15));
  rejects(ready.replace(point, '02' + '00'.repeat(32)), 'BAD_PUBKEY');
  rejects(ready.replace(point, '04' + point.slice(2)), 'BAD_PUBKEY');
  rejects(ready.replace(point, '02' + 'ff'.repeat(32)), 'BAD_PUBKEY');
  rejects(ready.replace('5821' + point, '5841' + '04' + point.slice(2) + '00'.repeat(32)), 'BAD_LENGTH');
});

test('[W-13] errors name the field but never echo secret bytes', () => {
  const secret = '5a'.repeat(31);
  const ack = bytesToHex(encodeMessage({ type: 'revoke_and_ack', channelId: cid, perCommitmentSecret: fill(32, 0x5a), nextPerCommitmentPoint: key(16) }));
  const bad = hexToBytes(ack.replace('5820' + '5a'.repeat(32), '581f' + secret));
  const result = tryDecodeMessage(bad);
  assert.ok(!result.ok);
  assert.equal(result.error.code, 'BAD_LENGTH');
  assert.equal(result.error.field, 'perCommitmentSecret');
  assert.ok(!result.error.message.toLowerCase().includes('5a5a5a'));
  assert.ok(!result.error.message.includes('90,90,90'));
});

test('[W-13] decoded byte strings are copies, not views into the input', () => {
  const bytes = encodeMessage({ type: 'oneway_ready', channelId: cid });
  const message = decodeMessage(bytes);
  bytes.fill(0);
  assert.ok(message.type === 'oneway_ready' && message.channelId.every((b) => b === 0x11));
});

test('[W-13] misuse of decode and encode throws TypeError/RangeError naming the field', () => {
  assert.throws(() => decodeMessage('a0' as unknown as Uint8Array), TypeError);
  const ack = { type: 'oneway_pay_ack', channelId: cid, paymentNumber: 1n, amountMsat: 5n } as const;
  assert.throws(() => encodeMessage({ ...ack, amountMsat: 5 as unknown as bigint }), /amountMsat/);
  assert.throws(() => encodeMessage({ ...ack, amountMsat: -1n }), RangeError);
  assert.throws(() => encodeMessage({ ...ack, amountMsat: MAX_MONEY_MSAT + 1n }), RangeError);
  assert.throws(() => encodeMessage({ ...ack, channelId: fill(31, 0) }), /channelId/);
  assert.throws(() => encodeMessage({ ...ack, amountMSat: 5n } as unknown as WireMessage), /amountMSat/);
  assert.throws(() => encodeMessage({ type: 'pong' } as unknown as WireMessage), /"id" is required/);
  assert.throws(() => encodeMessage({ type: 'nope' } as unknown as WireMessage), TypeError);
  assert.throws(() => encodeMessage({ type: 'pong', id: 1.5 }), TypeError);
  assert.throws(() => encodeMessage({ type: 'error', code: 1, message: 'x'.repeat(257) }), RangeError);
  assert.throws(() => encodeMessage({ type: 'error', code: 1, message: '\ud800' }), RangeError);
  assert.throws(() => encodeMessage({ type: 'channel_ready', channelId: cid, secondPerCommitmentPoint: fill(33, 4) }), RangeError);
  assert.throws(() => encodeMessage(samples.update_fail_htlc, { maxBytes: 100 }), RangeError);
  // 65 witness stacks: one more than the array allows
  const witnesses = Array.from({ length: 64 }, () => Array.from({ length: 32 }, () => new Uint8Array(0)));
  assert.throws(() => encodeMessage({ type: 'funding_tx_signatures', channelId: cid, witnesses: [...witnesses, ...witnesses.slice(0, 1)] }), RangeError);
});

// ---------------------------------------------------------------------------------------------------------
// docs/protocol.md §3 matches the schemas

test('docs/protocol.md lists every type code and every field as the schemas define them', () => {
  const doc = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8');
  const codeRows = [...doc.matchAll(/^\| (\d+) \| `([a-z_]+)` \| [^|]+ \| `src\/wire\/[a-z-]+\.ts` \|$/gm)];
  assert.deepEqual(Object.fromEntries(codeRows.map((r) => [r[2], Number(r[1])])), MESSAGE_TYPE_CODES);

  // Every `#### name (type n)`, `##### name body` or `##### Name (nested map)` heading and its first table.
  const documented = new Map<string, string[]>();
  const sections = doc.split(/^(?=#{4,5} `)/m).slice(1);
  for (const section of sections) {
    const heading = /^#{4,5} `([A-Za-z_]+)`(?: \(type (\d+)\)| (body)| \(nested map\))$/m.exec(section);
    assert.ok(heading, section.slice(0, 60));
    const name = heading[3] ? `${heading[1]} body` : heading[1]!;
    if (heading[2]) assert.equal(MESSAGE_TYPE_CODES[name as WireMessageType], Number(heading[2]), name);
    const rows = [...section.matchAll(/^\| (\d+) \| `(\w+)` \| ([^|]+) \| (required|optional) \|$/gm)].map((r) => `${r[1]} ${r[2]} ${r[3]!.trim()} ${r[4]}`);
    documented.set(name, rows);
  }
  const expected = new Map<string, string[]>();
  const rowsOf = (table: FieldTable): string[] =>
    table.entries.map((e) => {
      let spec: TypeSpec = e.spec;
      while (spec.kind === 'array') spec = spec.item;
      if (spec.kind === 'struct') expected.set(spec.name, rowsOf(spec.table));
      return `${e.key} ${e.name} ${describeType(e.spec)} ${e.optional ? 'optional' : 'required'}`;
    });
  for (const type of Object.keys(MESSAGE_TYPE_CODES) as WireMessageType[]) expected.set(type, rowsOf(messageDefinition(type).table));
  for (const [type, def] of Object.entries(announceBodies)) expected.set(`${type} body`, rowsOf(def.table));
  assert.deepEqual(new Map([...documented].sort()), new Map([...expected].sort()));
});

// ---------------------------------------------------------------------------------------------------------

test('importing src/wire loads no native addon, and cbor-x only through its no-eval entry', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const probe = `
    import { createRequire } from 'node:module';
    const require = createRequire(import.meta.url);
    const loaded = [];
    const originalDlopen = process.dlopen;
    process.dlopen = function (...args) { loaded.push('dlopen:' + args[1]); return originalDlopen.apply(this, args); };
    const wire = await import('./src/wire/index.ts');
    if (typeof wire.decodeMessage !== 'function') throw new Error('wire exports missing');
    wire.decodeMessage(wire.encodeMessage({ type: 'pong', id: 1 }));
    const cached = Object.keys(require.cache).filter((p) => /cbor/.test(p)).map((p) => p.replace(/.*node_modules./, ''));
    console.log(JSON.stringify({ loaded, cached }));
  `;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], { cwd: root, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  const { loaded, cached } = JSON.parse(result.stdout.trim().split('\n').pop()!) as { loaded: string[]; cached: string[] };
  assert.deepEqual(loaded, []);
  assert.ok(cached.every((p) => /cbor-x.dist.index-no-eval\.cjs$/.test(p)), JSON.stringify(cached));
  assert.ok(!cached.some((p) => /cbor-extract/.test(p)));
});

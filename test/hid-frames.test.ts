/**
 * The HID report framing (firmware-bridge/PROTOCOL.md §2, after CTAP 2.1 §11.2.4 CTAPHID) against the
 * hand-derived vectors of test/vectors/hid-frames/: every valid message encodes to exactly its reports and
 * the reports decode (packet by packet and through MessageAssembler) back to it; every invalid report or
 * sequence yields the ERROR code or the silence the vectors say. The key's core uses the same module, so
 * these vectors hold for both ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bytesToHex, hexToBytes } from '../src/bytes.js';
import {
  BROADCAST_CID,
  CONT_DATA_SIZE,
  FRAMING_PROTOCOL_VERSION,
  HidCommand,
  HidErrorCode,
  INIT_DATA_SIZE,
  INIT_NONCE_SIZE,
  INIT_RESPONSE_SIZE,
  MAX_MESSAGE_SIZE,
  MessageAssembler,
  REPORT_SIZE,
  decodePacket,
  encodeMessage,
  readCid,
  type AssembleResult,
} from '../src/signer/hid/framing.js';

interface MessageVector {
  description: string;
  cid: string;
  command: number;
  payloadHex?: string;
  reports?: string[];
  payloadRule?: string;
  payloadLength?: number;
  reportCount?: number;
  firstReportHex?: string;
  lastReportHex?: string;
  init?: { nonceHex: string; cid: string; protocolVersion: number; major: number; minor: number; build: number; capabilities: number };
}
interface EncodeMisuse {
  description: string;
  encode: { cid: number; command: number; payloadLength: number };
  throws: 'RangeError' | 'TypeError';
}
interface BadReport {
  description: string;
  reportHex: string;
  decode: null;
}
type Expect =
  | { kind: 'partial' }
  | { kind: 'ignore' }
  | { kind: 'error'; cid: string; code: number; codeName: keyof typeof HidErrorCode }
  | { kind: 'message'; cid: string; command: number; payloadHex: string };
interface Sequence {
  description: string;
  steps: Array<{ reportHex: string; expect: Expect }>;
}
interface InitInvalid {
  description: string;
  allocated: string[];
  reportsIn: string[];
  reportsOut: string[];
}

function load<V, I>(name: string): { description: string; valid: V[]; invalid: I[] } {
  return JSON.parse(readFileSync(new URL(`./vectors/hid-frames/${name}`, import.meta.url), 'utf8'));
}

const init = load<MessageVector, InitInvalid>('init.json');
const single = load<MessageVector, BadReport | EncodeMisuse>('single.json');
const multi = load<MessageVector, EncodeMisuse>('multi.json');
const errors = load<Sequence, Sequence>('errors.json');

const cidOf = (hex: string): number => parseInt(hex, 16) >>> 0;

function payloadOf(v: MessageVector): Uint8Array {
  if (v.payloadHex !== undefined) return hexToBytes(v.payloadHex);
  assert.equal(v.payloadRule, 'payload[i] = i & 0xff', `${v.description}: unknown payload rule`);
  return Uint8Array.from({ length: v.payloadLength! }, (_, i) => i & 0xff);
}

/** Decode direction: each packet's header, then the assembler's verdict report by report. */
function assertDecodes(v: MessageVector, reports: Uint8Array[]): void {
  const cid = cidOf(v.cid);
  const payload = payloadOf(v);
  const assembler = new MessageAssembler();
  reports.forEach((report, i) => {
    const packet = decodePacket(report);
    assert.ok(packet, `${v.description}: report ${i} decodes`);
    assert.equal(packet.cid, cid);
    if (i === 0) {
      assert.equal(packet.kind, 'init');
      if (packet.kind === 'init') {
        assert.equal(packet.command, v.command);
        assert.equal(packet.length, payload.length);
      }
    } else {
      assert.equal(packet.kind, 'cont');
      if (packet.kind === 'cont') assert.equal(packet.sequence, i - 1);
    }
    const result = assembler.feed(report);
    if (i < reports.length - 1) assert.deepEqual(result, { kind: 'partial' }, `${v.description}: report ${i}`);
    else {
      assert.equal(result.kind, 'message', `${v.description}: last report completes the message`);
      if (result.kind === 'message') {
        assert.equal(result.message.cid, cid);
        assert.equal(result.message.command, v.command);
        assert.equal(bytesToHex(result.message.payload), bytesToHex(payload));
      }
    }
  });
  assert.equal(assembler.busy, false);
}

for (const [file, vectors] of [['init.json', init], ['single.json', single], ['multi.json', multi]] as const) {
  for (const v of vectors.valid as MessageVector[]) {
    test(`[F-1] [F-2] ${file}: ${v.description} — encodes to the vector's reports`, () => {
      const reports = encodeMessage({ cid: cidOf(v.cid), command: v.command, payload: payloadOf(v) });
      for (const report of reports) assert.equal(report.length, REPORT_SIZE);
      if (v.reports) {
        assert.deepEqual(reports.map(bytesToHex), v.reports);
      } else {
        assert.equal(reports.length, v.reportCount);
        assert.equal(bytesToHex(reports[0]!), v.firstReportHex);
        assert.equal(bytesToHex(reports.at(-1)!), v.lastReportHex);
      }
    });
    test(`[F-1] [F-7] ${file}: ${v.description} — decodes back`, () => {
      // The big vector stores only its ends; its middle is checked by a round trip and by the ends here.
      const reports = v.reports ? v.reports.map(hexToBytes) : encodeMessage({ cid: cidOf(v.cid), command: v.command, payload: payloadOf(v) });
      if (!v.reports) {
        assert.equal(bytesToHex(reports[0]!), v.firstReportHex);
        assert.equal(bytesToHex(reports.at(-1)!), v.lastReportHex);
      }
      assertDecodes(v, reports);
    });
  }
}

test('[F-9] init.json: INIT responses carry nonce ‖ cid ‖ version ‖ major ‖ minor ‖ build ‖ capabilities', () => {
  const responses = init.valid.filter((v) => v.init);
  assert.equal(responses.length, 2);
  for (const v of responses) {
    const payload = payloadOf(v);
    const expected = v.init!;
    assert.equal(payload.length, INIT_RESPONSE_SIZE);
    assert.equal(bytesToHex(payload.subarray(0, INIT_NONCE_SIZE)), expected.nonceHex);
    assert.equal(readCid(payload.subarray(8, 12)), cidOf(expected.cid));
    assert.deepEqual([...payload.subarray(12)], [expected.protocolVersion, expected.major, expected.minor, expected.build, expected.capabilities]);
    assert.equal(expected.protocolVersion, FRAMING_PROTOCOL_VERSION);
    assert.equal(v.command, HidCommand.INIT);
  }
});

test('[F-9] init.json: the invalid INIT requests frame well (the key, not the framing, rejects them)', () => {
  for (const v of init.invalid) {
    const assembler = new MessageAssembler();
    const results = v.reportsIn.map((hex) => assembler.feed(hexToBytes(hex)));
    const last = results.at(-1)!;
    assert.equal(last.kind, 'message', v.description);
    for (const hex of v.reportsOut) {
      const packet = decodePacket(hexToBytes(hex));
      assert.ok(packet?.kind === 'init' && packet.command === HidCommand.ERROR && packet.length === 1, `${v.description}: answer is a 1-byte ERROR`);
    }
  }
});

for (const v of [...single.invalid, ...multi.invalid]) {
  if ('encode' in v) {
    test(`[F-2] encodeMessage refuses ${v.description}`, () => {
      const { cid, command, payloadLength } = v.encode;
      assert.throws(() => encodeMessage({ cid, command, payload: new Uint8Array(payloadLength) }), { name: v.throws });
    });
  } else {
    test(`[F-1] ${v.description} is not a report`, () => {
      const report = hexToBytes(v.reportHex);
      assert.equal(decodePacket(report), undefined);
      assert.deepEqual(new MessageAssembler().feed(report), { kind: 'ignore', reason: 'report size' });
    });
  }
}

function normalise(result: AssembleResult): Expect {
  switch (result.kind) {
    case 'partial':
      return { kind: 'partial' };
    case 'ignore':
      return { kind: 'ignore' };
    case 'error': {
      const codeName = (Object.keys(HidErrorCode) as Array<keyof typeof HidErrorCode>).find((name) => HidErrorCode[name] === result.code)!;
      return { kind: 'error', cid: result.cid.toString(16).padStart(8, '0'), code: result.code, codeName };
    }
    case 'message':
      return { kind: 'message', cid: result.message.cid.toString(16).padStart(8, '0'), command: result.message.command, payloadHex: bytesToHex(result.message.payload) };
  }
}

for (const [group, sequences] of [['valid', errors.valid], ['invalid', errors.invalid]] as const) {
  for (const sequence of sequences) {
    test(`[F-5] [F-7] errors.json (${group}): ${sequence.description}`, () => {
      const assembler = new MessageAssembler();
      sequence.steps.forEach((step, i) => {
        if (step.expect.kind === 'error') assert.equal(HidErrorCode[step.expect.codeName], step.expect.code, 'vector code and name agree');
        assert.deepEqual(normalise(assembler.feed(hexToBytes(step.reportHex))), step.expect, `step ${i}`);
      });
    });
  }
}

test('[F-2] sizes: 64-byte reports, 57 + 128 × 59 = 7609', () => {
  assert.equal(REPORT_SIZE, 64);
  assert.equal(INIT_DATA_SIZE, 57);
  assert.equal(CONT_DATA_SIZE, 59);
  assert.equal(MAX_MESSAGE_SIZE, 7609);
  assert.equal(BROADCAST_CID, 0xffff_ffff);
});

test('[F-7] every message size from 0 to 7609 round-trips through the assembler, with the report count the layout gives', () => {
  const payload = Uint8Array.from({ length: MAX_MESSAGE_SIZE }, (_, i) => (i * 7 + 3) & 0xff);
  for (let size = 0; size <= MAX_MESSAGE_SIZE; size++) {
    const message = payload.subarray(0, size);
    const reports = encodeMessage({ cid: 0x8000_0001, command: 0x55, payload: message });
    assert.equal(reports.length, size <= INIT_DATA_SIZE ? 1 : 1 + Math.ceil((size - INIT_DATA_SIZE) / CONT_DATA_SIZE));
    const assembler = new MessageAssembler();
    let result: AssembleResult | undefined;
    for (const report of reports) result = assembler.feed(report);
    assert.equal(result?.kind, 'message');
    if (result?.kind === 'message') assert.ok(result.message.payload.length === size && result.message.payload.every((b, i) => b === message[i]), `size ${size}`);
  }
});

test('[F-7] the assembler starts over cleanly after each error and after reset()', () => {
  const assembler = new MessageAssembler();
  const [first, second] = encodeMessage({ cid: 7, command: 0x41, payload: new Uint8Array(100).fill(9) });
  assert.deepEqual(assembler.feed(first!), { kind: 'partial' });
  assert.equal(assembler.busy, true);
  assert.equal(assembler.cid, 7);
  assembler.reset();
  assert.equal(assembler.busy, false);
  assert.equal(assembler.feed(second!).kind, 'ignore');
  assert.deepEqual(assembler.feed(first!), { kind: 'partial' });
  assert.equal(assembler.feed(second!).kind, 'message');
  // Untrusted input never throws out of feed().
  assert.equal(assembler.feed(undefined as unknown as Uint8Array).kind, 'ignore');
  assert.equal(assembler.feed(new Uint8Array(REPORT_SIZE).fill(0xff)).kind, 'error'); // length 0xffff on the broadcast channel
});

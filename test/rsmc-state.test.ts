/**
 * The RSMC record codec (src/channel/rsmc/state.ts):
 *   - a record with every optional field set, and one with every optional field unset, read back equal;
 *   - records fresh from the machine (openerStart, accepterStart) read back equal;
 *   - anything else — truncated, garbage, oversized, too deep, a field of the wrong type or length, a
 *     damaged per-commitment secret store — is refused with RsmcError CORRUPT_RECORD, never another error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RsmcError } from '../src/channel/rsmc/errors.js';
import { accepterStart, DEFAULT_RSMC_POLICY, openerStart } from '../src/channel/rsmc/machine.js';
import { decodeRecord, encodeRecord, MAX_RECORD_BYTES, RECORD_PREFIX, recordKey } from '../src/channel/rsmc/state.js';
import type { Basepoints, PartyConfig, RsmcRecord } from '../src/channel/rsmc/types.js';
import { commitmentIndex, generatePerCommitmentSecret, PerCommitmentSecretStore } from '../src/onchain/rsmc/shachain.js';
import { softwareIdentity } from '../src/session/identity.js';
import { SoftwareSigner } from '../src/signer/software.js';
import type { OpenChannelMsg } from '../src/wire/index.js';

const PEER = softwareIdentity(new Uint8Array(32).fill(7)).nodeId;
const bytes = (fill: number, length: number): Uint8Array => new Uint8Array(length).fill(fill);
const point = (fill: number): Uint8Array => Uint8Array.from([0x02, ...bytes(fill, 32)]);
const TXID_A = 'aa'.repeat(32);
const TXID_B = 'bb'.repeat(32);
const TXID_C = 'cc'.repeat(32);

function party(base: number): PartyConfig {
  return {
    fundingPubkey: point(base),
    revocationBasepoint: point(base + 1),
    paymentBasepoint: point(base + 2),
    delayedPaymentBasepoint: point(base + 3),
    htlcBasepoint: point(base + 4),
    dustLimitSat: 546n,
    channelReserveSat: 2_000n,
    toSelfDelay: 144,
    htlcMinimumMsat: 1n,
    maxHtlcValueInFlightMsat: 200_000_000n,
    maxAcceptedHtlcs: 30,
  };
}

/** The peer revealed its secrets for commitments 0..n-1, in order (as revoke_and_ack delivers them). */
function secretsUpTo(n: number) {
  const seed = bytes(0x42, 32);
  const store = new PerCommitmentSecretStore();
  for (let i = 0n; i < BigInt(n); i++) store.insert(commitmentIndex(i), generatePerCommitmentSecret(seed, commitmentIndex(i)));
  return store.toJSON();
}

/** Every optional field set, every list non-empty. */
function fullRecord(): RsmcRecord {
  return {
    role: 'opener',
    phase: 'closing',
    peer: PEER,
    tempChannelId: bytes(1, 32),
    channelId: bytes(2, 32),
    keyIndex: 1_000_003,
    local: party(0x10),
    remote: party(0x20),
    fundingSat: 300_000n,
    localFundingSat: 200_000n,
    remoteFundingSat: 100_000n,
    pushMsat: 5_000n,
    feeratePerKw: 2_500n,
    minimumDepth: 3,
    fundingOutpoint: { txid: TXID_A, vout: 1 },
    fundingTx: bytes(0x33, 200),
    localInputs: [{ coin: { outpoint: { txid: TXID_B, vout: 0 }, valueSat: 250_000n, pubkey: point(0x30), key: { family: 'wallet', index: 4 } } }],
    localChangeScript: Uint8Array.from([0x00, 0x14, ...bytes(9, 20)]),
    remoteInputs: [{ outpoint: { txid: TXID_C, vout: 7 }, valueSat: 120_000n, script: Uint8Array.from([0x00, 0x14, ...bytes(8, 20)]) }],
    remoteChangeScript: Uint8Array.from([0x00, 0x14, ...bytes(6, 20)]),
    remoteWitnessesReceived: true,
    fundingBroadcast: true,
    localCommit: { number: 5n, spec: { localMsat: 150_000_000n, remoteMsat: 150_000_000n }, remoteSignature: bytes(0x44, 64), txid: TXID_B },
    remoteCommit: { number: 5n, spec: { localMsat: 150_000_000n, remoteMsat: 150_000_000n }, point: point(0x50), txid: TXID_C },
    remoteNext: {
      number: 6n,
      spec: { localMsat: 149_000_000n, remoteMsat: 151_000_000n },
      point: point(0x51),
      txid: TXID_A,
      signature: bytes(0x45, 64),
      localCommitNumberAtSigning: 5n,
    },
    remoteNextPoint: point(0x52),
    localCurrentPoint: point(0x53),
    localNextPoint: point(0x54),
    openingSignature: bytes(0x46, 64),
    localChanges: {
      proposed: [],
      signed: [{ kind: 'transfer', id: 6n, amountMsat: 1_000_000n, ref: 11 }],
      acked: [{ kind: 'transfer', id: 5n, amountMsat: 2_000n }],
    },
    remoteChanges: {
      proposed: [],
      acked: [{ kind: 'transfer', id: 2n, amountMsat: 20n }],
      signed: [{ kind: 'transfer', id: 1n, amountMsat: 30n }],
    },
    localUpdateCount: 8n,
    remoteUpdateCount: 4n,
    remoteSecrets: secretsUpTo(5),
    readySent: true,
    readyReceived: true,
    sentCount: 6n,
    receivedCount: 2n,
    shutdown: {
      localScript: Uint8Array.from([0x00, 0x14, ...bytes(5, 20)]),
      remoteScript: Uint8Array.from([0x00, 0x14, ...bytes(4, 20)]),
      sent: true,
      lastProposedFeeSat: 700n,
      lastProposedSignature: bytes(0x47, 64),
      lastReceived: { feeSat: 650n, signature: bytes(0x48, 64) },
    },
    payoutScript: Uint8Array.from([0x00, 0x14, ...bytes(3, 20)]),
    closing: {
      kind: 'remote-revoked',
      txid: TXID_C,
      tx: bytes(0x61, 120),
      commitmentNumber: 3n,
      confirmedHeight: 812,
      pending: [{ purpose: 'penalty', outpoint: { txid: TXID_C, vout: 0 }, valueSat: 90_000n, validFromHeight: 812 }],
      resolutions: [
        { purpose: 'to-remote-sweep', txid: TXID_A, tx: bytes(0x66, 120), spends: [{ txid: TXID_C, vout: 1 }], valueSat: 59_000n, confirmedHeight: 813 },
      ],
      directSat: 0n,
    },
    outcome: { kind: 'penalty', closingTxid: TXID_C, blockHeight: 812, localReceivedSat: 149_000n, localBalanceMsat: 150_000_000n },
    failure: { code: 'PEER_ERROR', message: 'peer error 0x0206' },
    stale: true,
    reestablishSent: false,
    reestablishReceived: false,
  };
}

/** Every optional field unset, every list empty. */
function bareRecord(): RsmcRecord {
  return {
    role: 'accepter',
    phase: 'negotiating',
    peer: PEER,
    tempChannelId: bytes(9, 32),
    channelId: undefined,
    keyIndex: 0,
    local: party(0x60),
    remote: undefined,
    fundingSat: 0n,
    localFundingSat: 0n,
    remoteFundingSat: 0n,
    pushMsat: 0n,
    feeratePerKw: 0n,
    minimumDepth: 0,
    fundingOutpoint: undefined,
    fundingTx: undefined,
    localInputs: [],
    localChangeScript: undefined,
    remoteInputs: [],
    remoteChangeScript: undefined,
    remoteWitnessesReceived: false,
    fundingBroadcast: false,
    localCommit: undefined,
    remoteCommit: undefined,
    remoteNext: undefined,
    remoteNextPoint: undefined,
    localCurrentPoint: point(0x70),
    localNextPoint: undefined,
    openingSignature: undefined,
    localChanges: { proposed: [], signed: [], acked: [] },
    remoteChanges: { proposed: [], acked: [], signed: [] },
    localUpdateCount: 0n,
    remoteUpdateCount: 0n,
    remoteSecrets: new PerCommitmentSecretStore().toJSON(),
    readySent: false,
    readyReceived: false,
    sentCount: 0n,
    receivedCount: 0n,
    shutdown: undefined,
    payoutScript: Uint8Array.from([0x00, 0x14, ...bytes(2, 20)]),
    closing: undefined,
    outcome: undefined,
    failure: undefined,
    stale: false,
    reestablishSent: false,
    reestablishReceived: false,
  };
}

/** A shutdown, pending output and resolution with their own optional fields unset. */
function halfRecord(): RsmcRecord {
  const r = fullRecord();
  r.shutdown = { localScript: r.payoutScript, remoteScript: undefined, sent: false, lastProposedFeeSat: undefined, lastProposedSignature: undefined, lastReceived: undefined };
  r.closing = {
    kind: 'local-latest',
    txid: TXID_B,
    tx: bytes(0x62, 90),
    commitmentNumber: undefined,
    confirmedHeight: undefined,
    pending: [{ purpose: 'to-local-sweep', outpoint: { txid: TXID_B, vout: 0 }, valueSat: 140_000n, validFromHeight: undefined }],
    resolutions: [{ purpose: 'commitment', txid: TXID_B, tx: bytes(0x67, 300), spends: [{ txid: TXID_A, vout: 1 }], valueSat: 0n, confirmedHeight: undefined }],
    directSat: 12n,
  };
  return r;
}

function assertCorrupt(raw: Uint8Array, what: string): void {
  assert.throws(
    () => decodeRecord(raw),
    (error: unknown) => error instanceof RsmcError && error.code === 'CORRUPT_RECORD',
    `${what}: expected RsmcError CORRUPT_RECORD`,
  );
}

/** The stored JSON of `record`, changed by `mutate` (on the tagged form) and encoded again. */
function mutated(record: RsmcRecord, mutate: (r: Record<string, any>) => void): Uint8Array {
  const outer = JSON.parse(new TextDecoder().decode(encodeRecord(record)));
  mutate(outer.r);
  return new TextEncoder().encode(JSON.stringify(outer));
}

test('recordKey: by temporary id under rsmc/', () => {
  assert.equal(RECORD_PREFIX, 'rsmc/');
  assert.equal(recordKey(bytes(0xab, 32)), `rsmc/${'ab'.repeat(32)}`);
});

test('a record with every optional field set reads back equal', () => {
  const record = fullRecord();
  assert.deepStrictEqual(decodeRecord(encodeRecord(record)), record);
});

test('a record with every optional field unset reads back equal (undefined fields stay present)', () => {
  const record = bareRecord();
  const decoded = decodeRecord(encodeRecord(record));
  assert.deepStrictEqual(decoded, record);
  assert.ok('channelId' in decoded && decoded.channelId === undefined);
});

test('nested optional fields unset (shutdown, pending output, resolution) read back equal', () => {
  const record = halfRecord();
  assert.deepStrictEqual(decodeRecord(encodeRecord(record)), record);
});

test('a change without a pay() reference reads back without the key', () => {
  const decoded = decodeRecord(encodeRecord(fullRecord()));
  assert.equal(decoded.localChanges.signed[0]!.ref, 11);
  assert.ok(!('ref' in decoded.localChanges.acked[0]!));
});

test('updates not yet in a commitment_signed and the session flags are not written (BOLT 2: forgotten on reconnect)', () => {
  const record = fullRecord();
  record.localChanges.proposed = [{ kind: 'transfer', id: 7n, amountMsat: 1_000n, ref: 12 }];
  record.remoteChanges.proposed = [{ kind: 'transfer', id: 3n, amountMsat: 10n }];
  record.reestablishSent = true;
  record.reestablishReceived = true;
  const decoded = decodeRecord(encodeRecord(record));
  assert.deepEqual(decoded.localChanges.proposed, []);
  assert.deepEqual(decoded.remoteChanges.proposed, []);
  assert.equal(decoded.reestablishSent, false);
  assert.equal(decoded.reestablishReceived, false);
  assert.deepStrictEqual(decoded.localChanges.signed, record.localChanges.signed);
});

test('a full secret store (49 slots in use) reads back equal', () => {
  const record = bareRecord();
  record.remoteSecrets = secretsUpTo(300);
  assert.deepStrictEqual(decodeRecord(encodeRecord(record)), record);
});

test('records fresh from the machine read back equal', async () => {
  const signer = SoftwareSigner.fromSeed(bytes(0x11, 32));
  const keys = async (index: number): Promise<{ basepoints: Basepoints; firstPoint: Uint8Array; secondPoint: Uint8Array }> => ({
    basepoints: {
      fundingPubkey: await signer.getPublicKey({ family: 'funding', index }),
      revocationBasepoint: await signer.getPublicKey({ family: 'revocation', index }),
      paymentBasepoint: await signer.getPublicKey({ family: 'payment', index }),
      delayedPaymentBasepoint: await signer.getPublicKey({ family: 'delayed', index }),
      htlcBasepoint: await signer.getPublicKey({ family: 'htlc', index }),
    },
    firstPoint: await signer.perCommitmentPoint({ family: 'commitment', index }, 0n),
    secondPoint: await signer.perCommitmentPoint({ family: 'commitment', index }, 1n),
  });
  const opener = openerStart(
    { peer: PEER, tempChannelId: bytes(3, 32), keyIndex: 1_000_000, ...(await keys(1_000_000)), fundingSat: 200_000n, requestedRemoteSat: 0n, pushMsat: 0n, feeratePerKw: 1_000n, payoutScript: Uint8Array.from([0x00, 0x14, ...bytes(1, 20)]) },
    DEFAULT_RSMC_POLICY,
  );
  assert.deepStrictEqual(decodeRecord(encodeRecord(opener.record)), opener.record);
  const open = opener.effects.find((e) => e.kind === 'send')!;
  assert.equal(open.kind === 'send' && open.message.type, 'open_channel');
  const accepted = accepterStart(
    (open as { message: OpenChannelMsg }).message,
    { peer: PEER, keyIndex: 1_000_001, ...(await keys(1_000_001)), payoutScript: Uint8Array.from([0x00, 0x14, ...bytes(2, 20)]) },
    { tipHeight: 100, policy: DEFAULT_RSMC_POLICY },
  );
  assert.ok(accepted.ok, 'the accepter takes the open');
  assert.deepStrictEqual(decodeRecord(encodeRecord(accepted.step.record)), accepted.step.record);
});

test('truncated records are CORRUPT_RECORD', () => {
  const raw = encodeRecord(fullRecord());
  for (let length = 0; length < raw.length; length += 7) assertCorrupt(raw.subarray(0, length), `first ${length} bytes`);
  assertCorrupt(raw.subarray(0, raw.length - 1), 'all but the last byte');
});

test('garbage is CORRUPT_RECORD', () => {
  const text = (s: string) => new TextEncoder().encode(s);
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array(0)],
    ['not UTF-8', Uint8Array.from([0xff, 0xfe, 0x7b, 0x7d])],
    ['not JSON', text('{"v":1,"r":')],
    ['JSON null', text('null')],
    ['JSON array', text('[1,2,3]')],
    ['a number', text('42')],
    ['no version', text('{"r":{}}')],
    ['unknown version', text(new TextDecoder().decode(encodeRecord(fullRecord())).replace('{"v":1,', '{"v":2,'))],
    ['record body an array', text('{"v":1,"r":[]}')],
    ['empty record body', text('{"v":1,"r":{}}')],
  ];
  for (const [what, raw] of cases) assertCorrupt(raw, what);
  // Random bytes never get past the codec as anything but CORRUPT_RECORD.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (raw) => {
      assertCorrupt(raw, 'random bytes');
    }),
    { numRuns: 300 },
  );
});

test('single-byte damage decodes to a record or fails as CORRUPT_RECORD, nothing else', () => {
  const raw = encodeRecord(fullRecord());
  fc.assert(
    fc.property(fc.nat({ max: raw.length - 1 }), fc.integer({ min: 0, max: 255 }), (at, value) => {
      const damaged = Uint8Array.from(raw);
      damaged[at] = value;
      try {
        decodeRecord(damaged);
      } catch (error) {
        assert.ok(error instanceof RsmcError && error.code === 'CORRUPT_RECORD', `byte ${at} = ${value}: ${String(error)}`);
      }
    }),
    { numRuns: 2000 },
  );
});

test('oversized records are refused on both sides of the store', () => {
  const record = bareRecord();
  record.fundingTx = new Uint8Array(MAX_RECORD_BYTES / 2 + 1); // hex doubles it
  assert.throws(() => encodeRecord(record), RangeError, 'encodeRecord refuses what decodeRecord would');
  const huge = new Uint8Array(MAX_RECORD_BYTES + 1).fill(0x20);
  assertCorrupt(huge, 'over the size cap (even as whitespace)');
});

test('deep nesting is CORRUPT_RECORD (and cannot exhaust the stack)', () => {
  const deep = '['.repeat(5000) + ']'.repeat(5000);
  assertCorrupt(new TextEncoder().encode(`{"v":1,"r":{"role":"s:opener","x":${deep}}}`), 'deeply nested array');
});

test('wrong-typed or wrong-sized fields are CORRUPT_RECORD', () => {
  const cases: Array<[string, (r: Record<string, any>) => void, () => RsmcRecord]> = [
    ['role unknown', (r) => (r.role = 's:payer'), fullRecord],
    ['phase unknown', (r) => (r.phase = 's:funded'), fullRecord],
    ['phase untagged', (r) => (r.phase = 'open'), fullRecord],
    ['peer not a node id', (r) => (r.peer = 's:02abc'), fullRecord],
    ['tempChannelId 31 bytes', (r) => (r.tempChannelId = `x:${'01'.repeat(31)}`), fullRecord],
    ['channelId 33 bytes', (r) => (r.channelId = `x:${'02'.repeat(33)}`), fullRecord],
    ['keyIndex negative', (r) => (r.keyIndex = -1), fullRecord],
    ['keyIndex fractional', (r) => (r.keyIndex = 1.5), fullRecord],
    ['keyIndex as bigint', (r) => (r.keyIndex = 'n:5'), fullRecord],
    ['local missing', (r) => delete r.local, fullRecord],
    ['local funding pubkey 32 bytes', (r) => (r.local.fundingPubkey = `x:${'02'.repeat(32)}`), fullRecord],
    ['remote basepoint 65 bytes', (r) => (r.remote.htlcBasepoint = `x:${'04'.repeat(65)}`), fullRecord],
    ['toSelfDelay above u16', (r) => (r.local.toSelfDelay = 70_000), fullRecord],
    ['dust limit negative', (r) => (r.local.dustLimitSat = 'n:-546'), fullRecord],
    ['fundingSat as a number', (r) => (r.fundingSat = 300000), fullRecord],
    ['fundingSat negative', (r) => (r.fundingSat = 'n:-1'), fullRecord],
    ['pushMsat as text', (r) => (r.pushMsat = 's:5000'), fullRecord],
    ['bigint with junk', (r) => (r.feeratePerKw = 'n:25x'), fullRecord],
    ['bytes with odd hex', (r) => (r.fundingTx = 'x:abc'), fullRecord],
    ['bytes in upper case', (r) => (r.fundingTx = 'x:ABCD'), fullRecord],
    ['unknown tag', (r) => (r.payoutScript = 'b:0014'), fullRecord],
    ['funding txid in upper case', (r) => (r.fundingOutpoint.txid = `s:${'AA'.repeat(32)}`), fullRecord],
    ['funding vout negative', (r) => (r.fundingOutpoint.vout = -1), fullRecord],
    ['localInputs not an array', (r) => (r.localInputs = {}), fullRecord],
    ['coin key family unknown', (r) => (r.localInputs[0].coin.key.family = 's:cold'), fullRecord],
    ['coin pubkey 20 bytes', (r) => (r.localInputs[0].coin.pubkey = `x:${'02'.repeat(20)}`), fullRecord],
    ['remote input value missing', (r) => delete r.remoteInputs[0].valueSat, fullRecord],
    ['boolean as text', (r) => (r.fundingBroadcast = 's:true'), fullRecord],
    ['boolean missing', (r) => delete r.stale, fullRecord],
    ['transient flag missing', (r) => delete r.reestablishSent, fullRecord],
    ['localCommit signature 63 bytes', (r) => (r.localCommit.remoteSignature = `x:${'44'.repeat(63)}`), fullRecord],
    ['localCommit spec missing', (r) => delete r.localCommit.spec, fullRecord],
    ['remoteCommit point 32 bytes', (r) => (r.remoteCommit.point = `x:${'50'.repeat(32)}`), fullRecord],
    ['remoteNext without signature', (r) => delete r.remoteNext.signature, fullRecord],
    ['remoteNext signing number negative', (r) => (r.remoteNext.localCommitNumberAtSigning = 'n:-5'), fullRecord],
    ['localCurrentPoint missing', (r) => delete r.localCurrentPoint, fullRecord],
    ['openingSignature 65 bytes', (r) => (r.openingSignature = `x:${'46'.repeat(65)}`), fullRecord],
    ['change kind unknown', (r) => (r.localChanges.signed[0].kind = 's:htlc'), fullRecord],
    ['change amount negative', (r) => (r.remoteChanges.acked[0].amountMsat = 'n:-20'), fullRecord],
    ['change ref negative', (r) => (r.localChanges.signed[0].ref = -1), fullRecord],
    ['change list missing', (r) => delete r.remoteChanges.signed, fullRecord],
    ['secret store missing', (r) => delete r.remoteSecrets, fullRecord],
    ['secret store damaged (a secret the one above it derives)', (r) => (r.remoteSecrets.secrets[1].secret = `s:${'00'.repeat(32)}`), fullRecord],
    ['secret store slot missing', (r) => r.remoteSecrets.secrets.pop(), fullRecord],
    ['secret store index not decimal', (r) => (r.remoteSecrets.lastIndex = 's:0x10'), fullRecord],
    ['secret store extra key', (r) => (r.remoteSecrets.extra = 1), fullRecord],
    ['shutdown signature 10 bytes', (r) => (r.shutdown.lastReceived.signature = `x:${'48'.repeat(10)}`), fullRecord],
    ['shutdown sent missing', (r) => delete r.shutdown.sent, fullRecord],
    ['closing kind unknown', (r) => (r.closing.kind = 's:mystery'), fullRecord],
    ['pending purpose unknown', (r) => (r.closing.pending[0].purpose = 's:commitment'), fullRecord],
    ['pending height negative', (r) => (r.closing.pending[0].validFromHeight = -3), fullRecord],
    ['resolution purpose unknown', (r) => (r.closing.resolutions[0].purpose = 's:gift'), fullRecord],
    ['resolution spends not outpoints', (r) => (r.closing.resolutions[0].spends = ['s:x']), fullRecord],
    ['outcome kind unknown', (r) => (r.outcome.kind = 's:refunded'), fullRecord],
    ['failure code unknown', (r) => (r.failure.code = 's:NOT_A_CODE'), fullRecord],
    ['failure message too long', (r) => (r.failure.message = `s:${'m'.repeat(5000)}`), fullRecord],
    ['payoutScript missing', (r) => delete r.payoutScript, bareRecord],
    ['channelId null', (r) => (r.channelId = null), bareRecord],
  ];
  for (const [what, mutate, make] of cases) assertCorrupt(mutated(make(), mutate), what);
});

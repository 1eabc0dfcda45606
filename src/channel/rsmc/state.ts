/**
 * The stored form of a revocable channel's record (./types.ts RsmcRecord) and its codec. The record is
 * rewritten whole on every change and committed before anything that depends on it leaves the process
 * ("persist before you speak"). It is tagged JSON (src/store/tagged-record.ts), like the one-way records.
 *
 * Records read back from disk are untrusted: every field is checked — byte lengths (public keys and
 * points 33, signatures 64, ids 32), bigints non-negative, phases, roles and kinds from their lists, and the
 * peer's per-commitment secrets rebuilt through PerCommitmentSecretStore.fromJSON, which proves they still
 * derive one another (a damaged store would silently lose the ability to punish a revoked commitment).
 * Sums (spec balances against the capacity) are the machine's to check, not the codec's.
 *
 * `Change.ref` (which pay() call asked for an update) is stored with the change; the runtime never
 * reuses a stored ref (./node.ts numbers new calls above the largest one it loaded).
 *
 * @example
 *   await store.commit([{ key: recordKey(record.tempChannelId), value: encodeRecord(record) }]);
 *   const record = decodeRecord((await store.get(recordKey(tempChannelId)))!); // RsmcError CORRUPT_RECORD
 */
import { bytesToHex } from '../../bytes.js';
import type { WalletCoin } from '../../onchain/funding.js';
import { PerCommitmentSecretStore, type PerCommitmentSecretStoreJSON } from '../../onchain/rsmc/shachain.js';
import type { KeyFamily } from '../../signer/port.js';
import { decodeTagged, encodeTagged, fieldReaders } from '../../store/tagged-record.js';
import { RSMC_WIRE_CODES, RsmcError, type RsmcErrorCode } from './errors.js';
import type {
  Change,
  ClosingState,
  FundingInputRecord,
  LocalChanges,
  LocalCommit,
  PartyConfig,
  PendingOutput,
  RemoteChanges,
  RemoteCommit,
  RemoteInputRecord,
  RemoteNextCommit,
  ResolutionPurpose,
  ResolutionTx,
  RsmcOutcome,
  RsmcOutcomeKind,
  RsmcPhase,
  RsmcRecord,
  RsmcRole,
  ShutdownState,
  Spec,
  SpendKind,
} from './types.js';

/** Every RSMC record is stored under this prefix. */
export const RECORD_PREFIX = 'rsmc/';

/** Store key of a channel record: by temporary id, which never changes (the channel id comes later). */
export function recordKey(tempChannelId: Uint8Array): string {
  return `${RECORD_PREFIX}${bytesToHex(tempChannelId)}`;
}

const RECORD_VERSION = 1;
/** Holds the shachain store (at most 49 secrets) and the change lists; far above any sane record. */
export const MAX_RECORD_BYTES = 256 * 1024;
/** The deepest real field is closing.resolutions[i].spends[j].txid, at depth 6. */
const MAX_RECORD_DEPTH = 8;
/** Per change list; the size cap is the real bound. */
const MAX_CHANGES = 4096;

/**
 * The stored bytes of `record`. Throws RangeError if the record would not fit MAX_RECORD_BYTES, so the
 * runtime's commit fails (and nothing is sent) instead of storing what decodeRecord would refuse.
 */
/**
 * Updates not yet covered by a commitment_signed are not durable state (BOLT 2: both sides forget them
 * when the connection drops), nor is the session's reestablish progress: neither is written, so a
 * restarted node never sends a payment its caller did not see through.
 */
export function encodeRecord(record: RsmcRecord): Uint8Array {
  const bytes = encodeTagged(RECORD_VERSION, {
    ...record,
    localChanges: { ...record.localChanges, proposed: [] },
    remoteChanges: { ...record.remoteChanges, proposed: [] },
    reestablishSent: false,
    reestablishReceived: false,
  });
  if (bytes.length > MAX_RECORD_BYTES) throw new RangeError(`"record" encodes to ${bytes.length} bytes, at most ${MAX_RECORD_BYTES}`);
  return bytes;
}

function corrupt(message: string): RsmcError {
  return new RsmcError('CORRUPT_RECORD', `stored rsmc channel record: ${message}`);
}

const { obj, arr, opt, big, int, bool, str, bytes, oneOf, nodeId, txid, outpoint } = fieldReaders(corrupt);

const ROLES: readonly RsmcRole[] = ['opener', 'accepter'];
const PHASES: readonly RsmcPhase[] = ['negotiating', 'contributing', 'funding_signed', 'awaiting_ready', 'open', 'shutting_down', 'closing', 'closed', 'aborted'];
const SPEND_KINDS: readonly SpendKind[] = ['cooperative', 'local-latest', 'local-revoked', 'remote-latest', 'remote-revoked', 'remote-unknown', 'unknown'];
const RESOLUTION_PURPOSES: readonly ResolutionPurpose[] = ['commitment', 'closing', 'to-local-sweep', 'to-remote-sweep', 'penalty'];
const PENDING_PURPOSES: readonly PendingOutput['purpose'][] = ['to-local-sweep', 'to-remote-sweep', 'penalty'];
const OUTCOME_KINDS: readonly RsmcOutcomeKind[] = ['cooperative-close', 'unilateral-close', 'penalty'];
const KEY_FAMILIES: readonly KeyFamily[] = ['funding', 'payment', 'delayed', 'htlc', 'revocation', 'commitment', 'wallet', 'identity'];
const ERROR_CODES = Object.keys(RSMC_WIRE_CODES) as RsmcErrorCode[];
const U16 = 0xffff;

/** Decode and check a stored record; throws RsmcError('CORRUPT_RECORD') on anything unexpected. */
export function decodeRecord(raw: Uint8Array): RsmcRecord {
  const r = decodeTagged(raw, { version: RECORD_VERSION, maxBytes: MAX_RECORD_BYTES, maxDepth: MAX_RECORD_DEPTH, fail: corrupt });
  return {
    role: oneOf(r['role'], ROLES, 'role'),
    phase: oneOf(r['phase'], PHASES, 'phase'),
    peer: nodeId(r['peer'], 'peer'),
    tempChannelId: bytes(r['tempChannelId'], 'tempChannelId', 32),
    channelId: opt(r['channelId'], (v) => bytes(v, 'channelId', 32)),
    keyIndex: int(r['keyIndex'], 'keyIndex'),
    local: partyConfig(r['local'], 'local'),
    remote: opt(r['remote'], (v) => partyConfig(v, 'remote')),
    fundingSat: big(r['fundingSat'], 'fundingSat'),
    localFundingSat: big(r['localFundingSat'], 'localFundingSat'),
    remoteFundingSat: big(r['remoteFundingSat'], 'remoteFundingSat'),
    pushMsat: big(r['pushMsat'], 'pushMsat'),
    feeratePerKw: big(r['feeratePerKw'], 'feeratePerKw'),
    minimumDepth: int(r['minimumDepth'], 'minimumDepth'),
    fundingOutpoint: opt(r['fundingOutpoint'], (v) => outpoint(v, 'fundingOutpoint')),
    fundingTx: opt(r['fundingTx'], (v) => bytes(v, 'fundingTx')),
    localInputs: arr(r['localInputs'], 'localInputs').map((v, i) => fundingInput(v, `localInputs[${i}]`)),
    localChangeScript: opt(r['localChangeScript'], (v) => bytes(v, 'localChangeScript')),
    remoteInputs: arr(r['remoteInputs'], 'remoteInputs').map((v, i) => remoteInput(v, `remoteInputs[${i}]`)),
    remoteChangeScript: opt(r['remoteChangeScript'], (v) => bytes(v, 'remoteChangeScript')),
    remoteWitnessesReceived: bool(r['remoteWitnessesReceived'], 'remoteWitnessesReceived'),
    fundingBroadcast: bool(r['fundingBroadcast'], 'fundingBroadcast'),
    localCommit: opt(r['localCommit'], localCommit),
    remoteCommit: opt(r['remoteCommit'], (v) => remoteCommit(v, 'remoteCommit')),
    remoteNext: opt(r['remoteNext'], remoteNext),
    remoteNextPoint: opt(r['remoteNextPoint'], (v) => bytes(v, 'remoteNextPoint', 33)),
    localCurrentPoint: bytes(r['localCurrentPoint'], 'localCurrentPoint', 33),
    localNextPoint: opt(r['localNextPoint'], (v) => bytes(v, 'localNextPoint', 33)),
    openingSignature: opt(r['openingSignature'], (v) => bytes(v, 'openingSignature', 64)),
    localChanges: localChanges(r['localChanges']),
    remoteChanges: remoteChanges(r['remoteChanges']),
    localUpdateCount: big(r['localUpdateCount'], 'localUpdateCount'),
    remoteUpdateCount: big(r['remoteUpdateCount'], 'remoteUpdateCount'),
    remoteSecrets: secretStore(r['remoteSecrets']),
    readySent: bool(r['readySent'], 'readySent'),
    readyReceived: bool(r['readyReceived'], 'readyReceived'),
    sentCount: big(r['sentCount'], 'sentCount'),
    receivedCount: big(r['receivedCount'], 'receivedCount'),
    shutdown: opt(r['shutdown'], shutdownState),
    payoutScript: bytes(r['payoutScript'], 'payoutScript'),
    closing: opt(r['closing'], closingState),
    outcome: opt(r['outcome'], outcome),
    failure: opt(r['failure'], failure),
    stale: bool(r['stale'], 'stale'),
    reestablishSent: bool(r['reestablishSent'], 'reestablishSent'),
    reestablishReceived: bool(r['reestablishReceived'], 'reestablishReceived'),
  };
}

function partyConfig(v: unknown, field: string): PartyConfig {
  const o = obj(v, field);
  return {
    fundingPubkey: bytes(o['fundingPubkey'], `${field}.fundingPubkey`, 33),
    revocationBasepoint: bytes(o['revocationBasepoint'], `${field}.revocationBasepoint`, 33),
    paymentBasepoint: bytes(o['paymentBasepoint'], `${field}.paymentBasepoint`, 33),
    delayedPaymentBasepoint: bytes(o['delayedPaymentBasepoint'], `${field}.delayedPaymentBasepoint`, 33),
    htlcBasepoint: bytes(o['htlcBasepoint'], `${field}.htlcBasepoint`, 33),
    dustLimitSat: big(o['dustLimitSat'], `${field}.dustLimitSat`),
    channelReserveSat: big(o['channelReserveSat'], `${field}.channelReserveSat`),
    toSelfDelay: int(o['toSelfDelay'], `${field}.toSelfDelay`, U16),
    htlcMinimumMsat: big(o['htlcMinimumMsat'], `${field}.htlcMinimumMsat`),
    maxHtlcValueInFlightMsat: big(o['maxHtlcValueInFlightMsat'], `${field}.maxHtlcValueInFlightMsat`),
    maxAcceptedHtlcs: int(o['maxAcceptedHtlcs'], `${field}.maxAcceptedHtlcs`, U16),
  };
}

function walletCoin(v: unknown, field: string): WalletCoin {
  const o = obj(v, field);
  const key = obj(o['key'], `${field}.key`);
  return {
    outpoint: outpoint(o['outpoint'], `${field}.outpoint`),
    valueSat: big(o['valueSat'], `${field}.valueSat`),
    pubkey: bytes(o['pubkey'], `${field}.pubkey`, 33),
    key: { family: oneOf(key['family'], KEY_FAMILIES, `${field}.key.family`), index: int(key['index'], `${field}.key.index`) },
  };
}

function fundingInput(v: unknown, field: string): FundingInputRecord {
  return { coin: walletCoin(obj(v, field)['coin'], `${field}.coin`) };
}

function remoteInput(v: unknown, field: string): RemoteInputRecord {
  const o = obj(v, field);
  return {
    outpoint: outpoint(o['outpoint'], `${field}.outpoint`),
    valueSat: big(o['valueSat'], `${field}.valueSat`),
    script: bytes(o['script'], `${field}.script`),
  };
}

function spec(v: unknown, field: string): Spec {
  const o = obj(v, field);
  return { localMsat: big(o['localMsat'], `${field}.localMsat`), remoteMsat: big(o['remoteMsat'], `${field}.remoteMsat`) };
}

function localCommit(v: unknown): LocalCommit {
  const o = obj(v, 'localCommit');
  return {
    number: big(o['number'], 'localCommit.number'),
    spec: spec(o['spec'], 'localCommit.spec'),
    remoteSignature: bytes(o['remoteSignature'], 'localCommit.remoteSignature', 64),
    txid: txid(o['txid'], 'localCommit.txid'),
  };
}

function remoteCommit(v: unknown, field: string): RemoteCommit {
  const o = obj(v, field);
  return {
    number: big(o['number'], `${field}.number`),
    spec: spec(o['spec'], `${field}.spec`),
    point: bytes(o['point'], `${field}.point`, 33),
    txid: txid(o['txid'], `${field}.txid`),
  };
}

function remoteNext(v: unknown): RemoteNextCommit {
  const o = obj(v, 'remoteNext');
  return {
    ...remoteCommit(o, 'remoteNext'),
    signature: bytes(o['signature'], 'remoteNext.signature', 64),
    localCommitNumberAtSigning: big(o['localCommitNumberAtSigning'], 'remoteNext.localCommitNumberAtSigning'),
  };
}

function change(v: unknown, field: string): Change {
  const o = obj(v, field);
  const c: Change = {
    kind: oneOf(o['kind'], ['transfer'] as const, `${field}.kind`),
    id: big(o['id'], `${field}.id`),
    amountMsat: big(o['amountMsat'], `${field}.amountMsat`),
  };
  // Optional in the type: only present when it was (records compare equal after a round trip).
  if (o['ref'] !== undefined) c.ref = int(o['ref'], `${field}.ref`);
  return c;
}

function changeList(v: unknown, field: string): Change[] {
  return arr(v, field, MAX_CHANGES).map((c, i) => change(c, `${field}[${i}]`));
}

function localChanges(v: unknown): LocalChanges {
  const o = obj(v, 'localChanges');
  return {
    proposed: changeList(o['proposed'], 'localChanges.proposed'),
    signed: changeList(o['signed'], 'localChanges.signed'),
    acked: changeList(o['acked'], 'localChanges.acked'),
  };
}

/** The same three lists as ours, in the peer's life-cycle order (./types.ts). */
function remoteChanges(v: unknown): RemoteChanges {
  const o = obj(v, 'remoteChanges');
  return {
    proposed: changeList(o['proposed'], 'remoteChanges.proposed'),
    acked: changeList(o['acked'], 'remoteChanges.acked'),
    signed: changeList(o['signed'], 'remoteChanges.signed'),
  };
}

function secretStore(v: unknown): PerCommitmentSecretStoreJSON {
  try {
    return PerCommitmentSecretStore.fromJSON(v).toJSON();
  } catch (error) {
    throw corrupt(`remoteSecrets: ${(error as Error).message}`);
  }
}

function shutdownState(v: unknown): ShutdownState {
  const o = obj(v, 'shutdown');
  return {
    localScript: bytes(o['localScript'], 'shutdown.localScript'),
    remoteScript: opt(o['remoteScript'], (s) => bytes(s, 'shutdown.remoteScript')),
    sent: bool(o['sent'], 'shutdown.sent'),
    lastProposedFeeSat: opt(o['lastProposedFeeSat'], (f) => big(f, 'shutdown.lastProposedFeeSat')),
    lastProposedSignature: opt(o['lastProposedSignature'], (s) => bytes(s, 'shutdown.lastProposedSignature', 64)),
    lastReceived: opt(o['lastReceived'], (l) => {
      const r = obj(l, 'shutdown.lastReceived');
      return {
        feeSat: big(r['feeSat'], 'shutdown.lastReceived.feeSat'),
        signature: bytes(r['signature'], 'shutdown.lastReceived.signature', 64),
      };
    }),
  };
}

function pendingOutput(v: unknown, field: string): PendingOutput {
  const o = obj(v, field);
  return {
    purpose: oneOf(o['purpose'], PENDING_PURPOSES, `${field}.purpose`),
    outpoint: outpoint(o['outpoint'], `${field}.outpoint`),
    valueSat: big(o['valueSat'], `${field}.valueSat`),
    validFromHeight: opt(o['validFromHeight'], (h) => int(h, `${field}.validFromHeight`)),
  };
}

function resolutionTx(v: unknown, field: string): ResolutionTx {
  const o = obj(v, field);
  return {
    purpose: oneOf(o['purpose'], RESOLUTION_PURPOSES, `${field}.purpose`),
    txid: txid(o['txid'], `${field}.txid`),
    tx: bytes(o['tx'], `${field}.tx`),
    spends: arr(o['spends'], `${field}.spends`).map((s, i) => outpoint(s, `${field}.spends[${i}]`)),
    valueSat: big(o['valueSat'], `${field}.valueSat`),
    confirmedHeight: opt(o['confirmedHeight'], (h) => int(h, `${field}.confirmedHeight`)),
  };
}

function closingState(v: unknown): ClosingState {
  const o = obj(v, 'closing');
  return {
    kind: oneOf(o['kind'], SPEND_KINDS, 'closing.kind'),
    txid: txid(o['txid'], 'closing.txid'),
    tx: bytes(o['tx'], 'closing.tx'),
    commitmentNumber: opt(o['commitmentNumber'], (n) => big(n, 'closing.commitmentNumber')),
    confirmedHeight: opt(o['confirmedHeight'], (h) => int(h, 'closing.confirmedHeight')),
    pending: arr(o['pending'], 'closing.pending').map((p, i) => pendingOutput(p, `closing.pending[${i}]`)),
    resolutions: arr(o['resolutions'], 'closing.resolutions').map((t, i) => resolutionTx(t, `closing.resolutions[${i}]`)),
    directSat: big(o['directSat'], 'closing.directSat'),
  };
}

function outcome(v: unknown): RsmcOutcome {
  const o = obj(v, 'outcome');
  return {
    kind: oneOf(o['kind'], OUTCOME_KINDS, 'outcome.kind'),
    closingTxid: txid(o['closingTxid'], 'outcome.closingTxid'),
    blockHeight: int(o['blockHeight'], 'outcome.blockHeight'),
    localReceivedSat: big(o['localReceivedSat'], 'outcome.localReceivedSat'),
    localBalanceMsat: big(o['localBalanceMsat'], 'outcome.localBalanceMsat'),
  };
}

function failure(v: unknown): { code: RsmcErrorCode; message: string } {
  const o = obj(v, 'failure');
  return { code: oneOf(o['code'], ERROR_CODES, 'failure.code'), message: str(o['message'], 'failure.message') };
}

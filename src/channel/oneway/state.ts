/**
 * The durable state of one one-way channel, as each side stores it, and its codec. A record is rewritten
 * whole on every change (it is a few hundred bytes) and committed before anything that depends on it is
 * sent ("persist before you speak"). Records read back from disk are untrusted: every field is checked.
 */
import { bytesToHex } from '../../bytes.js';
import type { OutPoint } from '../../chain/port.js';
import type { KeyFamily } from '../../signer/port.js';
import type { NodeId } from '../../transport/port.js';
import { decodeTagged, encodeTagged, fieldReaders } from '../../store/tagged-record.js';
import { CHANNEL_WIRE_CODES, ChannelError, type ChannelErrorCode } from './errors.js';

export type PayerPhase =
  /** oneway_propose sent. */
  | 'proposed'
  /** Accepted; funding built (unsigned) and refund requested. */
  | 'accepted'
  /** Payee's refund signature verified and stored; funding signed (not yet known to be broadcast). */
  | 'refund_held'
  /** Funding broadcast, oneway_funded sent; waiting for depth and oneway_ready. */
  | 'funded'
  | 'open'
  /** Close requested or refund broadcast; waiting for the funding output's spend to confirm. */
  | 'closing'
  | 'closed'
  /** Abandoned before any money was committed (nothing on chain). */
  | 'aborted';

export type PayeePhase = 'accepted' | 'refund_signed' | 'funded' | 'open' | 'closing' | 'closed' | 'aborted';

export interface ServiceTerms {
  serviceId: string;
  unit: string;
  tariffMsatPerUnit: bigint;
  creditWindowUnits: bigint;
}

/** A wallet coin the payer's funding transaction spends (P2WPKH). */
export interface FundingInputRecord {
  outpoint: OutPoint;
  valueSat: bigint;
  pubkey: Uint8Array;
  keyFamily: KeyFamily;
  keyIndex: number;
}

export interface PaymentRecord {
  number: bigint;
  /** Cumulative. */
  amountMsat: bigint;
  /** The payer's 64-byte compact signature on payment transaction `number` (absent for number 0). */
  signature: Uint8Array | undefined;
}

export interface ChannelOutcome {
  kind: 'settled' | 'refunded';
  txid: string;
  blockHeight: number;
  /** What the payee received on chain (0 for a refund). */
  payeeValueSat: bigint;
  /** What went back to the payer on chain. */
  payerValueSat: bigint;
  feeSat: bigint;
}

interface CommonRecord {
  peer: NodeId;
  tempChannelId: Uint8Array;
  channelId: Uint8Array | undefined;
  /** Index of our own funding key (family 'funding'). */
  fundingKeyIndex: number;
  capacitySat: bigint;
  expiryHeight: number;
  feeratePerKw: bigint;
  service: ServiceTerms;
  payerFundingPubkey: Uint8Array;
  payerRefundScript: Uint8Array;
  payeeFundingPubkey: Uint8Array | undefined;
  payeePayoutScript: Uint8Array | undefined;
  minimumDepth: number | undefined;
  fundingOutpoint: OutPoint | undefined;
  /** The payee's signature on the refund transaction (compact). */
  refundSignature: Uint8Array | undefined;
  /** Payer: the latest payment it signed. Payee: the latest it accepted and stored. */
  payment: PaymentRecord;
  /** The transaction this side broadcast to close (payer: refund, payee: settlement). */
  closingTx: Uint8Array | undefined;
  outcome: ChannelOutcome | undefined;
  /** Why the channel stopped taking payments, if it did. */
  failure: { code: ChannelErrorCode; message: string } | undefined;
}

export interface PayerRecord extends CommonRecord {
  role: 'payer';
  phase: PayerPhase;
  /** The funding transaction: unsigned until the refund is held, then signed. */
  fundingTx: Uint8Array | undefined;
  fundingInputs: FundingInputRecord[] | undefined;
  /** The latest payment the payee acknowledged. */
  acked: { number: bigint; amountMsat: bigint };
  /** oneway_ready arrived (the payer still waits for its own view of the depth). */
  readyReceived: boolean;
  closeRequested: boolean;
}

export interface PayeeRecord extends CommonRecord {
  role: 'payee';
  phase: PayeePhase;
}

export type OnewayRecord = PayerRecord | PayeeRecord;

/** Store key of a channel record: by role and temporary id, which never changes. */
export function recordKey(role: 'payer' | 'payee', tempChannelId: Uint8Array): string {
  return `oneway/${role}/${bytesToHex(tempChannelId)}`;
}
export const RECORD_PREFIX = 'oneway/';

// ---- codec: tagged JSON (src/store/tagged-record.ts), so text, numbers, bigints and bytes cannot be confused ----

const RECORD_VERSION = 1;
const MAX_RECORD_BYTES = 64 * 1024;
/** A real record nests three levels deep; anything far deeper is corrupt (and must not blow the stack). */
const MAX_RECORD_DEPTH = 8;

export function encodeRecord(record: OnewayRecord): Uint8Array {
  return encodeTagged(RECORD_VERSION, record);
}

function corrupt(message: string): ChannelError {
  return new ChannelError('CORRUPT_RECORD', `stored channel record: ${message}`);
}

const { obj, arr, opt, big, int, bool, str, bytes, oneOf, nodeId, txid, outpoint } = fieldReaders(corrupt);

/** Decode and check a stored record; throws ChannelError('CORRUPT_RECORD') on anything unexpected. */
export function decodeRecord(raw: Uint8Array): OnewayRecord {
  const r = decodeTagged(raw, { version: RECORD_VERSION, maxBytes: MAX_RECORD_BYTES, maxDepth: MAX_RECORD_DEPTH, fail: corrupt });
  const role = r['role'];
  if (role !== 'payer' && role !== 'payee') throw corrupt('role');
  const common: CommonRecord = {
    peer: nodeId(r['peer'], 'peer'),
    tempChannelId: bytes(r['tempChannelId'], 'tempChannelId', 32),
    channelId: opt(r['channelId'], (v) => bytes(v, 'channelId', 32)),
    fundingKeyIndex: int(r['fundingKeyIndex'], 'fundingKeyIndex'),
    capacitySat: big(r['capacitySat'], 'capacitySat'),
    expiryHeight: int(r['expiryHeight'], 'expiryHeight'),
    feeratePerKw: big(r['feeratePerKw'], 'feeratePerKw'),
    service: service(r['service']),
    payerFundingPubkey: bytes(r['payerFundingPubkey'], 'payerFundingPubkey', 33),
    payerRefundScript: bytes(r['payerRefundScript'], 'payerRefundScript'),
    payeeFundingPubkey: opt(r['payeeFundingPubkey'], (v) => bytes(v, 'payeeFundingPubkey', 33)),
    payeePayoutScript: opt(r['payeePayoutScript'], (v) => bytes(v, 'payeePayoutScript')),
    minimumDepth: opt(r['minimumDepth'], (v) => int(v, 'minimumDepth')),
    fundingOutpoint: opt(r['fundingOutpoint'], outpoint),
    refundSignature: opt(r['refundSignature'], (v) => bytes(v, 'refundSignature', 64)),
    payment: payment(r['payment']),
    closingTx: opt(r['closingTx'], (v) => bytes(v, 'closingTx')),
    outcome: opt(r['outcome'], outcome),
    failure: opt(r['failure'], failure),
  };
  if (role === 'payee') {
    return { ...common, role, phase: oneOf(r['phase'], PAYEE_PHASES, 'phase') };
  }
  const acked = obj(r['acked'], 'acked');
  return {
    ...common,
    role,
    phase: oneOf(r['phase'], PAYER_PHASES, 'phase'),
    fundingTx: opt(r['fundingTx'], (v) => bytes(v, 'fundingTx')),
    fundingInputs: opt(r['fundingInputs'], (v) => arr(v, 'fundingInputs').map(fundingInput)),
    acked: { number: big(acked['number'], 'acked.number'), amountMsat: big(acked['amountMsat'], 'acked.amountMsat') },
    readyReceived: bool(r['readyReceived'], 'readyReceived'),
    closeRequested: bool(r['closeRequested'], 'closeRequested'),
  };
}

const PAYER_PHASES: readonly PayerPhase[] = ['proposed', 'accepted', 'refund_held', 'funded', 'open', 'closing', 'closed', 'aborted'];
const PAYEE_PHASES: readonly PayeePhase[] = ['accepted', 'refund_signed', 'funded', 'open', 'closing', 'closed', 'aborted'];
const KEY_FAMILIES: readonly KeyFamily[] = ['funding', 'payment', 'delayed', 'htlc', 'revocation', 'wallet', 'identity'];

function service(v: unknown): ServiceTerms {
  const o = obj(v, 'service');
  return {
    serviceId: str(o['serviceId'], 'service.serviceId'),
    unit: str(o['unit'], 'service.unit'),
    tariffMsatPerUnit: big(o['tariffMsatPerUnit'], 'service.tariffMsatPerUnit'),
    creditWindowUnits: big(o['creditWindowUnits'], 'service.creditWindowUnits'),
  };
}
function payment(v: unknown): PaymentRecord {
  const o = obj(v, 'payment');
  return {
    number: big(o['number'], 'payment.number'),
    amountMsat: big(o['amountMsat'], 'payment.amountMsat'),
    signature: opt(o['signature'], (s) => bytes(s, 'payment.signature', 64)),
  };
}
function outcome(v: unknown): ChannelOutcome {
  const o = obj(v, 'outcome');
  return {
    kind: oneOf(o['kind'], ['settled', 'refunded'] as const, 'outcome.kind'),
    txid: txid(o['txid'], 'outcome.txid'),
    blockHeight: int(o['blockHeight'], 'outcome.blockHeight'),
    payeeValueSat: big(o['payeeValueSat'], 'outcome.payeeValueSat'),
    payerValueSat: big(o['payerValueSat'], 'outcome.payerValueSat'),
    feeSat: big(o['feeSat'], 'outcome.feeSat'),
  };
}
function failure(v: unknown): { code: ChannelErrorCode; message: string } {
  const o = obj(v, 'failure');
  return { code: oneOf(o['code'], Object.keys(CHANNEL_WIRE_CODES) as ChannelErrorCode[], 'failure.code'), message: str(o['message'], 'failure.message') };
}
function fundingInput(v: unknown): FundingInputRecord {
  const o = obj(v, 'fundingInput');
  return {
    outpoint: outpoint(o['outpoint']),
    valueSat: big(o['valueSat'], 'fundingInput.valueSat'),
    pubkey: bytes(o['pubkey'], 'fundingInput.pubkey', 33),
    keyFamily: oneOf(o['keyFamily'], KEY_FAMILIES, 'fundingInput.keyFamily'),
    keyIndex: int(o['keyIndex'], 'fundingInput.keyIndex'),
  };
}

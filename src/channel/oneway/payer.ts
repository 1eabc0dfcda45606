/**
 * The payer's side of a one-way channel as a pure state machine (docs/protocol.md §3.2–§3.3). The order
 * that protects the payer's money: the funding transaction is built unsigned, the payee signs the refund,
 * the payer verifies that signature and stores it durably, and only then signs and broadcasts the funding.
 * Each payment is a new signature on a transaction paying the payee the new cumulative amount; the payer
 * stores it before sending it, so after a crash it re-sends the very same payment and never a second one.
 */
import { Transaction } from 'bitcoinjs-lib';
import { equalBytes } from '../../bytes.js';
import type { SpendInfo } from '../../chain/port.js';
import { buildFundingTransaction, fundingWitness, type WalletCoin } from '../../onchain/funding.js';
import { maxPaymentMsat } from '../../onchain/oneway.js';
import { hashToTxid, txidToHash } from '../../onchain/tx.js';
import type { NodeId } from '../../transport/port.js';
import type {
  ErrorMsg,
  OnewayAcceptMsg,
  OnewayPayAckMsg,
  OnewayProposeMsg,
  OnewayReadyMsg,
  OnewayRefundSignedMsg,
  OnewayResumeMsg,
  OnewaySettledMsg,
  WarningMsg,
  WireMessage,
} from '../../wire/index.js';
import { rejection, unchanged, broadcastSucceeded, type ChainInput, type Effect, type SignPurpose, type Step } from './core.js';
import { CHANNEL_WIRE_CODES, ChannelError, channelErrorCodeOf, type ChannelErrorCode } from './errors.js';
import { outcomeOfSpend } from './outcome.js';
import type { PayerRecord, ServiceTerms } from './state.js';
import {
  channelTerms,
  deriveChannelId,
  fundingOutputScriptOf,
  isStandardPayoutScript,
  paymentTransaction,
  refundTransaction,
  satPerVbFromPerKw,
  scriptSignatureFromCompact,
  verifyFundingSpend,
} from './terms.js';

export interface PayerPolicy {
  /** The deepest confirmation requirement the payer accepts from a payee. */
  maxMinimumDepth: number;
}

export const DEFAULT_PAYER_POLICY: PayerPolicy = { maxMinimumDepth: 6 };

export type PayerMessage =
  | OnewayAcceptMsg
  | OnewayRefundSignedMsg
  | OnewayReadyMsg
  | OnewayPayAckMsg
  | OnewayResumeMsg
  | OnewaySettledMsg
  | ErrorMsg
  | WarningMsg;

export type PayerInput =
  | { kind: 'message'; message: PayerMessage }
  | { kind: 'coins'; coins: WalletCoin[]; changeScript: Uint8Array }
  | { kind: 'coins-failed'; message: string }
  | { kind: 'funding-signed'; tx: Uint8Array }
  | { kind: 'signed'; purpose: SignPurpose; signature: Uint8Array; amountMsat?: bigint }
  | { kind: 'pay'; incrementMsat: bigint }
  | { kind: 'close' }
  | { kind: 'resync' }
  /** The payee left the open unanswered for the node's openTimeoutMs: abandon it if not funded yet. */
  | { kind: 'open-timeout'; afterMs: number }
  | ChainInput;

export interface ProposalParams {
  peer: NodeId;
  tempChannelId: Uint8Array;
  capacitySat: bigint;
  expiryHeight: number;
  feeratePerKw: bigint;
  service: ServiceTerms;
  fundingKeyIndex: number;
  payerFundingPubkey: Uint8Array;
  refundScript: Uint8Array;
}

/** Start an open: the new record and the proposal to send once it is stored. */
export function payerPropose(p: ProposalParams): Step<PayerRecord> {
  if (!isStandardPayoutScript(p.refundScript)) throw new RangeError('"refundScript" is not a standard output script');
  const record: PayerRecord = {
    role: 'payer',
    phase: 'proposed',
    peer: p.peer,
    tempChannelId: p.tempChannelId,
    channelId: undefined,
    fundingKeyIndex: p.fundingKeyIndex,
    capacitySat: p.capacitySat,
    expiryHeight: p.expiryHeight,
    feeratePerKw: p.feeratePerKw,
    service: p.service,
    payerFundingPubkey: p.payerFundingPubkey,
    payerRefundScript: p.refundScript,
    payeeFundingPubkey: undefined,
    payeePayoutScript: undefined,
    minimumDepth: undefined,
    fundingOutpoint: undefined,
    refundSignature: undefined,
    payment: { number: 0n, amountMsat: 0n, signature: undefined },
    closingTx: undefined,
    outcome: undefined,
    failure: undefined,
    fundingTx: undefined,
    fundingInputs: undefined,
    acked: { number: 0n, amountMsat: 0n },
    readyReceived: false,
    closeRequested: false,
  };
  return { record, effects: [{ kind: 'persist', reason: 'proposed' }, send(proposeMessage(record)), phaseEvent(record)] };
}

export function proposeMessage(record: PayerRecord): OnewayProposeMsg {
  return {
    type: 'oneway_propose',
    tempChannelId: record.tempChannelId,
    capacitySat: record.capacitySat,
    expiryHeight: record.expiryHeight,
    payerFundingPubkey: record.payerFundingPubkey,
    payerRefundScript: record.payerRefundScript,
    serviceId: record.service.serviceId,
    unit: record.service.unit,
    tariffMsatPerUnit: record.service.tariffMsatPerUnit,
    creditWindowUnits: record.service.creditWindowUnits,
    feeratePerKw: record.feeratePerKw,
  };
}

/** The most the channel can carry in total (capacity less the fee of a payee-only payment). */
export function payerHeadroomMsat(record: PayerRecord): bigint {
  return maxPaymentMsat(channelTerms(record)) - record.payment.amountMsat;
}

export function payerStep(record: PayerRecord, input: PayerInput, ctx: { tipHeight: number; policy: PayerPolicy }): Step<PayerRecord> {
  switch (input.kind) {
    case 'message':
      return onMessage(record, input.message, ctx);
    case 'coins':
      return onCoins(record, input.coins, input.changeScript);
    case 'coins-failed':
      return abort(record, 'INSUFFICIENT_FUNDS', input.message);
    case 'funding-signed':
      return onFundingSigned(record, input.tx);
    case 'signed':
      return onSigned(record, input);
    case 'pay':
      return onPay(record, input.incrementMsat);
    case 'close':
      return onClose(record);
    case 'open-timeout':
      return record.phase === 'proposed' || record.phase === 'accepted'
        ? abort(record, 'TIMEOUT', `the payee did not complete the open within ${Math.round(input.afterMs / 1000)} s; abandoned`)
        : unchanged(record);
    case 'resync':
      return onResync(record);
    case 'block':
      return onBlock(record, input.height);
    case 'funding-status':
      return onFundingStatus(record, input);
    case 'funding-spent':
      return onFundingSpent(record, input.spend, input.tx);
    case 'broadcast-result':
      return onBroadcastResult(record, input);
  }
}

function send(message: WireMessage): Effect {
  return { kind: 'send', message };
}

function phaseEvent(record: PayerRecord): Effect {
  return { kind: 'event', event: { type: 'phase', phase: record.phase } };
}

function onMessage(record: PayerRecord, msg: PayerMessage, ctx: { tipHeight: number; policy: PayerPolicy }): Step<PayerRecord> {
  switch (msg.type) {
    case 'oneway_accept':
      return onAccept(record, msg, ctx.policy);
    case 'oneway_refund_signed':
      return onRefundSigned(record, msg);
    case 'oneway_ready':
      return onReady(record);
    case 'oneway_pay_ack':
      return onAck(record, msg);
    case 'oneway_resume':
      return onResume(record, msg);
    case 'oneway_settled':
      // A hint only: the chain tells us what happened (funding-spent).
      return { record, effects: record.fundingOutpoint ? [{ kind: 'watch', outpoint: record.fundingOutpoint }] : [] };
    case 'error':
      return onPeerError(record, msg);
    case 'warning':
      return { record, effects: [{ kind: 'event', event: { type: 'rejected', code: channelErrorCodeOf(msg.code) ?? 'PEER_ERROR', message: 'peer warning' } }] };
  }
}

function onAccept(record: PayerRecord, msg: OnewayAcceptMsg, policy: PayerPolicy): Step<PayerRecord> {
  if (record.phase === 'accepted' && record.payeeFundingPubkey && equalBytes(record.payeeFundingPubkey, msg.payeeFundingPubkey) &&
      record.payeePayoutScript && equalBytes(record.payeePayoutScript, msg.payeePayoutScript)) {
    return { record, effects: [send(refundRequestMessage(record))] };
  }
  if (record.phase !== 'proposed') return rejection(record, 'BAD_STATE', 'not waiting for an accept');
  if (equalBytes(msg.payeeFundingPubkey, record.payerFundingPubkey)) return abort(record, 'TERMS_REJECTED', 'funding keys must differ');
  if (!isStandardPayoutScript(msg.payeePayoutScript)) return abort(record, 'TERMS_REJECTED', 'payout script is not standard');
  if (msg.minimumDepth < 1 || msg.minimumDepth > policy.maxMinimumDepth) return abort(record, 'TERMS_REJECTED', 'minimum depth not acceptable');
  // Not stored yet: the wallet picks coins first, then the whole accepted state is stored at once.
  const next: PayerRecord = {
    ...record,
    payeeFundingPubkey: msg.payeeFundingPubkey,
    payeePayoutScript: msg.payeePayoutScript,
    minimumDepth: msg.minimumDepth,
  };
  return { record: next, effects: [{ kind: 'select-coins', amountSat: record.capacitySat }] };
}

function onCoins(record: PayerRecord, coins: WalletCoin[], changeScript: Uint8Array): Step<PayerRecord> {
  if (record.phase !== 'proposed' || !record.payeeFundingPubkey) return unchanged(record);
  let funding;
  try {
    funding = buildFundingTransaction({
      fundingPubkeys: [record.payerFundingPubkey, record.payeeFundingPubkey],
      contributions: [{ coins, amountSat: record.capacitySat, changeScript }],
      feerateSatPerVb: satPerVbFromPerKw(record.feeratePerKw),
    });
  } catch (error) {
    return abort(record, 'INSUFFICIENT_FUNDS', (error as Error).message);
  }
  const next: PayerRecord = {
    ...record,
    phase: 'accepted',
    fundingTx: Uint8Array.from(funding.tx.toBuffer()),
    fundingInputs: funding.inputs.map((i) => ({
      outpoint: i.coin.outpoint,
      valueSat: i.coin.valueSat,
      pubkey: i.coin.pubkey,
      keyFamily: i.coin.key.family,
      keyIndex: i.coin.key.index,
    })),
    fundingOutpoint: funding.fundingOutpoint,
  };
  try {
    refundTransaction(next);
  } catch (error) {
    return abort(record, 'TERMS_REJECTED', `refund cannot be built: ${(error as Error).message}`);
  }
  return { record: next, effects: [{ kind: 'persist', reason: 'accepted' }, send(refundRequestMessage(next)), phaseEvent(next)] };
}

function refundRequestMessage(record: PayerRecord): WireMessage {
  return {
    type: 'oneway_refund_request',
    tempChannelId: record.tempChannelId,
    fundingTxid: txidToHash(record.fundingOutpoint!.txid),
    fundingVout: record.fundingOutpoint!.vout,
    fundingValueSat: record.capacitySat,
  };
}

function onRefundSigned(record: PayerRecord, msg: OnewayRefundSignedMsg): Step<PayerRecord> {
  if (record.phase !== 'accepted') return unchanged(record); // a duplicate after we moved on
  const refund = refundTransaction(record);
  if (!verifyFundingSpend(record, refund, record.payeeFundingPubkey!, msg.refundSignature)) {
    // Without a valid refund we must never sign the funding: give up while nothing is committed.
    return abort(record, 'BAD_SIGNATURE', 'refund signature does not verify');
  }
  const next: PayerRecord = { ...record, phase: 'refund_held', refundSignature: msg.refundSignature };
  // Stored durably first; only then may the funding be signed (the runtime executes effects in order).
  return { record: next, effects: [{ kind: 'persist', reason: 'refund-held' }, phaseEvent(next), { kind: 'sign-funding' }] };
}

function onFundingSigned(record: PayerRecord, tx: Uint8Array): Step<PayerRecord> {
  if (record.phase !== 'refund_held' || !record.refundSignature) return unchanged(record);
  const next: PayerRecord = { ...record, fundingTx: tx };
  return { record: next, effects: [{ kind: 'persist', reason: 'funding-signed' }, { kind: 'broadcast', purpose: 'funding', tx }] };
}

function fundingIsSigned(record: PayerRecord): boolean {
  if (!record.fundingTx) return false;
  return Transaction.fromBuffer(Buffer.from(record.fundingTx)).ins.every((i) => i.witness.length > 0);
}

function fundedMessage(record: PayerRecord): WireMessage {
  return {
    type: 'oneway_funded',
    tempChannelId: record.tempChannelId,
    channelId: record.channelId!,
    fundingTxid: txidToHash(record.fundingOutpoint!.txid),
    fundingVout: record.fundingOutpoint!.vout,
  };
}

function onBroadcastResult(record: PayerRecord, input: Extract<ChainInput, { kind: 'broadcast-result' }>): Step<PayerRecord> {
  if (input.purpose !== 'funding') return unchanged(record); // refunds are retried on the next block
  if (record.phase !== 'refund_held') return unchanged(record);
  if (!broadcastSucceeded(input.result)) {
    // Never went out (e.g. a coin was spent elsewhere): nothing is locked, so the channel is abandoned.
    const reason = input.result.accepted ? '' : input.result.reason;
    return abort(record, 'FUNDING_REJECTED', `funding rejected by the chain: ${reason}`);
  }
  const next: PayerRecord = { ...record, phase: 'funded', channelId: deriveChannelId(record.fundingOutpoint!) };
  return {
    record: next,
    effects: [
      { kind: 'persist', reason: 'funded' },
      { kind: 'watch', outpoint: record.fundingOutpoint! },
      send(fundedMessage(next)),
      phaseEvent(next),
      { kind: 'check-funding' },
    ],
  };
}

function onReady(record: PayerRecord): Step<PayerRecord> {
  if (record.phase !== 'funded') return unchanged(record);
  return { record: { ...record, readyReceived: true }, effects: [{ kind: 'check-funding' }] };
}

function onFundingStatus(record: PayerRecord, input: Extract<ChainInput, { kind: 'funding-status' }>): Step<PayerRecord> {
  if (record.phase !== 'funded' || !record.readyReceived || !input.utxo) return unchanged(record);
  if (!equalBytes(input.utxo.output.script, fundingOutputScriptOf(record))) return unchanged(record);
  if (input.utxo.confirmations < record.minimumDepth!) return unchanged(record);
  const next: PayerRecord = { ...record, phase: 'open' };
  return { record: next, effects: [{ kind: 'persist', reason: 'open' }, phaseEvent(next)] };
}

function onPay(record: PayerRecord, incrementMsat: bigint): Step<PayerRecord> {
  if (record.phase !== 'open') throw new ChannelError('BAD_STATE', `channel is ${record.phase}, not open`);
  if (record.failure) throw new ChannelError(record.failure.code, `channel failed: ${record.failure.message}`);
  if (record.closeRequested) throw new ChannelError('CHANNEL_CLOSING', 'channel is closing');
  if (typeof incrementMsat !== 'bigint' || incrementMsat <= 0n) throw new RangeError('"incrementMsat" expected a positive bigint');
  const amountMsat = record.payment.amountMsat + incrementMsat;
  if (amountMsat > maxPaymentMsat(channelTerms(record))) {
    throw new ChannelError('CAPACITY_EXCEEDED', `cumulative ${amountMsat} msat exceeds what the channel can carry`);
  }
  const tx = paymentTransaction(record, amountMsat);
  return { record, effects: [{ kind: 'sign', purpose: 'payment', tx: tx.toBuffer(), amountMsat }] };
}

function payMessage(record: PayerRecord): WireMessage {
  return {
    type: 'oneway_pay',
    channelId: record.channelId!,
    paymentNumber: record.payment.number,
    amountMsat: record.payment.amountMsat,
    signature: record.payment.signature!,
  };
}

function onSigned(record: PayerRecord, input: Extract<PayerInput, { kind: 'signed' }>): Step<PayerRecord> {
  if (input.purpose === 'payment' && input.amountMsat !== undefined) {
    if (record.phase !== 'open' || input.amountMsat <= record.payment.amountMsat) return unchanged(record);
    const next: PayerRecord = {
      ...record,
      payment: { number: record.payment.number + 1n, amountMsat: input.amountMsat, signature: input.signature },
    };
    // Stored before it is sent: after a crash we resend exactly this payment, never sign another for it.
    return { record: next, effects: [{ kind: 'persist', reason: 'payment-signed' }, send(payMessage(next))] };
  }
  if (input.purpose === 'refund-spend' && record.refundSignature && !record.outcome) {
    const tx = refundTransaction(record);
    tx.setWitness(0, fundingWitness(
      record.payerFundingPubkey,
      scriptSignatureFromCompact(input.signature),
      record.payeeFundingPubkey!,
      scriptSignatureFromCompact(record.refundSignature),
    ));
    const raw = Uint8Array.from(tx.toBuffer());
    const next: PayerRecord = { ...record, phase: 'closing', closingTx: raw };
    return {
      record: next,
      effects: [
        { kind: 'persist', reason: 'closing' },
        { kind: 'broadcast', purpose: 'refund', tx: raw },
        ...(record.phase !== 'closing' ? [phaseEvent(next)] : []),
      ],
    };
  }
  return unchanged(record);
}

function onAck(record: PayerRecord, msg: OnewayPayAckMsg): Step<PayerRecord> {
  if (record.phase !== 'open' && record.phase !== 'closing') return unchanged(record);
  if (msg.paymentNumber < record.payment.number) {
    // An ack for a payment before our latest (payments are pipelined). It is a receipt only: the payee
    // holds signatures for what we signed, so all it can get wrong here is our count between two acks of
    // our latest payment, which must match exactly. Taken when it moves forward and stays below our latest.
    if (msg.paymentNumber <= record.acked.number || msg.amountMsat <= record.acked.amountMsat || msg.amountMsat >= record.payment.amountMsat) {
      return unchanged(record);
    }
    return acknowledge(record, msg.paymentNumber, msg.amountMsat);
  }
  if (msg.paymentNumber > record.payment.number || msg.amountMsat !== record.payment.amountMsat) {
    return fail(record, 'PEER_STATE_MISMATCH', 'acknowledgement for a payment we never signed');
  }
  return acknowledge(record, msg.paymentNumber, msg.amountMsat);
}

function acknowledge(record: PayerRecord, number: bigint, amountMsat: bigint): Step<PayerRecord> {
  if (number <= record.acked.number) return unchanged(record);
  // Not persisted on its own: an ack loses nothing if forgotten (the resume exchange restores it), and
  // the payment it acknowledges is already stored. The next commit carries it.
  const next: PayerRecord = { ...record, acked: { number, amountMsat } };
  return {
    record: next,
    effects: [{ kind: 'event', event: { type: 'payment', number, amountMsat, incrementMsat: amountMsat - record.acked.amountMsat } }],
  };
}

function resumeMessage(record: PayerRecord): WireMessage {
  return {
    type: 'oneway_resume',
    channelId: record.channelId!,
    latestPaymentNumber: record.payment.number,
    latestAmountMsat: record.payment.amountMsat,
  };
}

/** §3.3 `oneway_resume`: the payee reports the latest payment it stored. */
function onResume(record: PayerRecord, msg: OnewayResumeMsg): Step<PayerRecord> {
  if (record.phase !== 'open' && record.phase !== 'closing' && record.phase !== 'closed') return unchanged(record);
  const mine = record.payment;
  if (msg.latestPaymentNumber > mine.number || (msg.latestPaymentNumber === mine.number && msg.latestAmountMsat !== mine.amountMsat)) {
    return fail(record, 'PEER_STATE_MISMATCH', 'peer reports a payment we never signed');
  }
  if (msg.latestPaymentNumber === mine.number) return acknowledge(record, mine.number, mine.amountMsat);
  if (msg.latestAmountMsat >= mine.amountMsat) return fail(record, 'PEER_STATE_MISMATCH', 'peer reports an amount we never signed');
  // The payee is behind: send our latest payment again, byte for byte (it covers every earlier one).
  if (!mine.signature || record.phase !== 'open') return unchanged(record);
  return { record, effects: [send(payMessage(record))] };
}

function onPeerError(record: PayerRecord, msg: ErrorMsg): Step<PayerRecord> {
  const code = channelErrorCodeOf(msg.code) ?? 'PEER_ERROR';
  if (record.phase === 'proposed' || record.phase === 'accepted') return abort(record, code, 'peer failed the channel', false);
  if (record.phase === 'closed' || record.phase === 'aborted') return unchanged(record);
  // Money may be committed: stop paying and wait for the payee's settlement or our refund at expiry.
  const next: PayerRecord = { ...record, failure: { code, message: `peer error ${msg.code}` } };
  return { record: next, effects: [{ kind: 'persist', reason: 'failed' }, { kind: 'event', event: { type: 'failed', code, message: 'peer failed the channel' } }] };
}

function fail(record: PayerRecord, code: ChannelErrorCode, message: string): Step<PayerRecord> {
  const next: PayerRecord = { ...record, failure: { code, message } };
  return {
    record: next,
    effects: [
      { kind: 'persist', reason: 'failed' },
      send({ type: 'error', channelId: record.channelId ?? record.tempChannelId, code: CHANNEL_WIRE_CODES[code], message }),
      { kind: 'event', event: { type: 'failed', code, message } },
    ],
  };
}

/** Give up on a channel before any money is committed (nothing signed that could reach the chain). */
function abort(record: PayerRecord, code: ChannelErrorCode, message: string, tellPeer = true): Step<PayerRecord> {
  const next: PayerRecord = { ...record, phase: 'aborted', failure: { code, message } };
  const effects: Effect[] = [{ kind: 'persist', reason: 'aborted' }];
  // Before refund_held the funding was never broadcast: its coins (reserved since 'accepted') are free again.
  if ((record.phase === 'proposed' || record.phase === 'accepted') && record.fundingInputs?.length) effects.push({ kind: 'release-coins' });
  if (tellPeer) effects.push(send({ type: 'error', channelId: record.tempChannelId, code: CHANNEL_WIRE_CODES[code], message }));
  effects.push({ kind: 'event', event: { type: 'failed', code, message } }, phaseEvent(next));
  return { record: next, effects };
}

function onClose(record: PayerRecord): Step<PayerRecord> {
  switch (record.phase) {
    case 'proposed':
    case 'accepted':
      return abort(record, 'STOPPED', 'closed by the payer before funding');
    case 'funded':
    case 'open': {
      const next: PayerRecord = { ...record, phase: 'closing', closeRequested: true };
      return {
        record: next,
        effects: [{ kind: 'persist', reason: 'closing' }, ...latestPaymentAgain(record), send({ type: 'oneway_close_request', channelId: record.channelId! }), phaseEvent(next)],
      };
    }
    default:
      return unchanged(record);
  }
}

/**
 * Our latest signed payment again, ahead of a close request (found by the crash harness: a payer restarted
 * after signing and storing its last payment, with nothing left to pay, asked to close before the resume
 * exchange resent it, and the payee settled one payment short). The session delivers in order, so the payee
 * stores it (or acknowledges a duplicate) before it settles. `always`: even if it looks acknowledged.
 */
function latestPaymentAgain(record: PayerRecord, always = false): Effect[] {
  const { payment } = record;
  if (!payment.signature || payment.number === 0n || !record.channelId) return [];
  if (!always && record.acked.number >= payment.number) return [];
  return [send(payMessage(record))];
}

function onResync(record: PayerRecord): Step<PayerRecord> {
  switch (record.phase) {
    case 'proposed':
      return { record, effects: [send(proposeMessage(record))] };
    case 'accepted':
      return { record, effects: [send(refundRequestMessage(record))] };
    case 'refund_held':
      // We may have crashed between signing and broadcasting: the same bytes again, or sign first.
      return fundingIsSigned(record)
        ? { record, effects: [{ kind: 'broadcast', purpose: 'funding', tx: record.fundingTx! }] }
        : { record, effects: [{ kind: 'sign-funding' }] };
    case 'funded':
      return { record, effects: [{ kind: 'watch', outpoint: record.fundingOutpoint! }, send(fundedMessage(record)), { kind: 'check-funding' }] };
    case 'open':
      return { record, effects: [{ kind: 'watch', outpoint: record.fundingOutpoint! }, send(resumeMessage(record))] };
    case 'closing': {
      const effects: Effect[] = [{ kind: 'watch', outpoint: record.fundingOutpoint! }];
      if (record.channelId) effects.push(send(resumeMessage(record)));
      // After a restart we do not know whether our latest payment arrived (acks are not stored): send it
      // again ahead of the close request, or the payee may settle without it.
      if (record.closeRequested && record.channelId) effects.push(...latestPaymentAgain(record, true), send({ type: 'oneway_close_request', channelId: record.channelId }));
      return { record, effects };
    }
    default:
      return unchanged(record);
  }
}

/** The refund is final for the next block once the tip reaches its lock height (nLockTime < next height). */
export function refundIsFinal(record: PayerRecord, tipHeight: number): boolean {
  return tipHeight >= record.expiryHeight;
}

function onBlock(record: PayerRecord, height: number): Step<PayerRecord> {
  if (record.phase === 'refund_held' && fundingIsSigned(record)) {
    // The broadcast did not get an answer (chain unreachable): try the same bytes again.
    return { record, effects: [{ kind: 'broadcast', purpose: 'funding', tx: record.fundingTx! }] };
  }
  if (record.phase === 'funded') {
    if (refundIsFinal(record, height)) return { record, effects: [{ kind: 'sign', purpose: 'refund-spend', tx: refundTransaction(record).toBuffer() }] };
    return { record, effects: [{ kind: 'check-funding' }] };
  }
  if ((record.phase === 'open' || record.phase === 'closing') && refundIsFinal(record, height)) {
    if (record.closingTx) return { record, effects: [{ kind: 'broadcast', purpose: 'refund', tx: record.closingTx }] };
    return { record, effects: [{ kind: 'sign', purpose: 'refund-spend', tx: refundTransaction(record).toBuffer() }] };
  }
  return unchanged(record);
}

function onFundingSpent(record: PayerRecord, spend: SpendInfo, tx: Uint8Array): Step<PayerRecord> {
  if (record.phase === 'closed' || spend.blockHeight === undefined || !record.fundingOutpoint) return unchanged(record);
  const outcome = outcomeOfSpend(record, spend, tx);
  const next: PayerRecord = { ...record, phase: 'closed', outcome };
  return { record: next, effects: [{ kind: 'persist', reason: 'closed' }, phaseEvent(next), { kind: 'event', event: { type: 'closed', outcome } }] };
}

/** The funding txid of a record, for logs and summaries. */
export function fundingTxidOf(record: PayerRecord): string | undefined {
  return record.fundingTx ? hashToTxid(Transaction.fromBuffer(Buffer.from(record.fundingTx)).getHash()) : undefined;
}

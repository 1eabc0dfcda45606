/**
 * The payee's side of a one-way channel as a pure state machine (docs/protocol.md §3.2–§3.3): accept a
 * proposal, sign the refund, wait for the funding to be deep enough, then check, store and acknowledge
 * every payment, and settle with the latest one before the refund unlocks. The payee never takes a
 * transaction from the wire: it rebuilds each payment from the agreed terms and only checks the payer's
 * signature against it, so a changed output, amount or funding outpoint cannot verify.
 */
import { equalBytes } from '../../bytes.js';
import type { NodeId } from '../../transport/port.js';
import type { SpendInfo } from '../../chain/port.js';
import { fundingWitness } from '../../onchain/funding.js';
import { maxPaymentMsat } from '../../onchain/oneway.js';
import type {
  OnewayCloseRequestMsg,
  OnewayFundedMsg,
  OnewayPayMsg,
  OnewayProposeMsg,
  OnewayRefundRequestMsg,
  OnewayResumeMsg,
  ErrorMsg,
} from '../../wire/index.js';
import { hashToTxid as txidFromInternal } from '../../onchain/tx.js';
import { rejection, unchanged, type ChainInput, type Effect, type SignPurpose, type Step } from './core.js';
import { CHANNEL_WIRE_CODES, channelErrorCodeOf, type ChannelErrorCode } from './errors.js';
import { outcomeOfSpend } from './outcome.js';
import type { PayeeRecord } from './state.js';
import {
  channelTerms,
  deriveChannelId,
  fundingOutputScriptOf,
  isStandardPayoutScript,
  paymentTransaction,
  refundTransaction,
  scriptSignatureFromCompact,
  verifyFundingSpend,
} from './terms.js';

/** A metered service this payee sells (the channel-relevant part of its ServiceOffer). */
export interface PayeeOffer {
  serviceId: string;
  unit: string;
  tariffMsatPerUnit: bigint;
  creditWindowUnits: bigint;
  minCapacitySat: bigint;
  maxCapacitySat: bigint;
}

export interface PayeePolicy {
  /** Confirmations of the funding before payments start. */
  minimumDepth: number;
  /** Settle this many blocks before the refund unlocks (and refuse payments from then on). */
  settleMarginBlocks: number;
  /** A proposal must leave at least this many blocks of service after depth and margin. */
  minChannelBlocks: number;
  /** Longest the payee lets its side be locked: expiry at most this far ahead. */
  maxExpiryBlocks: number;
  minFeeratePerKw: bigint;
  maxFeeratePerKw: bigint;
}

export const DEFAULT_PAYEE_POLICY: PayeePolicy = {
  minimumDepth: 1,
  settleMarginBlocks: 6,
  minChannelBlocks: 6,
  maxExpiryBlocks: 4032,
  minFeeratePerKw: 253n,
  maxFeeratePerKw: 250_000n,
};

export type PayeeInput =
  | { kind: 'message'; message: OnewayRefundRequestMsg | OnewayFundedMsg | OnewayPayMsg | OnewayResumeMsg | OnewayCloseRequestMsg | ErrorMsg }
  | { kind: 'signed'; purpose: SignPurpose; signature: Uint8Array }
  | { kind: 'settle' }
  /** Send our view after a reconnect or restart. */
  | { kind: 'resync' }
  | ChainInput;

export interface ProposalContext {
  peer: NodeId;
  tipHeight: number;
  offers: readonly PayeeOffer[];
  policy: PayeePolicy;
  fundingKeyIndex: number;
  payeeFundingPubkey: Uint8Array;
  payoutScript: Uint8Array;
}

export type ProposalResult =
  | { ok: true; step: Step<PayeeRecord> }
  | { ok: false; code: ChannelErrorCode; message: string };

/** Check a proposal against our offers and policy (§3.2 `oneway_propose`) and create the channel record. */
export function payeeOnPropose(msg: OnewayProposeMsg, ctx: ProposalContext): ProposalResult {
  const reject = (message: string): ProposalResult => ({ ok: false, code: 'TERMS_REJECTED', message });
  const offer = ctx.offers.find((o) => o.serviceId === msg.serviceId);
  if (!offer) return { ok: false, code: 'NO_OFFER', message: 'service not offered' };
  if (offer.unit !== msg.unit || offer.tariffMsatPerUnit !== msg.tariffMsatPerUnit || offer.creditWindowUnits !== msg.creditWindowUnits) {
    return reject('unit, tariff or credit window differ from the offer');
  }
  if (msg.capacitySat < offer.minCapacitySat || msg.capacitySat > offer.maxCapacitySat) return reject('capacity outside the offer');
  const p = ctx.policy;
  const earliest = ctx.tipHeight + p.minimumDepth + p.settleMarginBlocks + p.minChannelBlocks;
  if (msg.expiryHeight < earliest) return reject(`expiry must be at least height ${earliest}`);
  if (msg.expiryHeight > ctx.tipHeight + p.maxExpiryBlocks) return reject('expiry too far ahead');
  if (!isStandardPayoutScript(msg.payerRefundScript)) return reject('refund script is not standard');
  if (msg.feeratePerKw < p.minFeeratePerKw || msg.feeratePerKw > p.maxFeeratePerKw) return reject('fee rate out of range');
  if (equalBytes(msg.payerFundingPubkey, ctx.payeeFundingPubkey)) return reject('funding keys must differ');

  const record: PayeeRecord = {
    role: 'payee',
    phase: 'accepted',
    peer: ctx.peer,
    tempChannelId: msg.tempChannelId,
    channelId: undefined,
    fundingKeyIndex: ctx.fundingKeyIndex,
    capacitySat: msg.capacitySat,
    expiryHeight: msg.expiryHeight,
    feeratePerKw: msg.feeratePerKw,
    service: {
      serviceId: msg.serviceId,
      unit: msg.unit,
      tariffMsatPerUnit: msg.tariffMsatPerUnit,
      creditWindowUnits: msg.creditWindowUnits,
    },
    payerFundingPubkey: msg.payerFundingPubkey,
    payerRefundScript: msg.payerRefundScript,
    payeeFundingPubkey: ctx.payeeFundingPubkey,
    payeePayoutScript: ctx.payoutScript,
    minimumDepth: p.minimumDepth,
    fundingOutpoint: undefined,
    refundSignature: undefined,
    payment: { number: 0n, amountMsat: 0n, signature: undefined },
    closingTx: undefined,
    outcome: undefined,
    failure: undefined,
  };
  return { ok: true, step: { record, effects: [{ kind: 'persist', reason: 'accepted' }, acceptMessage(record), phaseEvent(record)] } };
}

/** A repeated proposal (the payer resends after a reconnect) is answered with the same accept. */
export function isSameProposal(record: PayeeRecord, msg: OnewayProposeMsg): boolean {
  return (
    record.capacitySat === msg.capacitySat &&
    record.expiryHeight === msg.expiryHeight &&
    record.feeratePerKw === msg.feeratePerKw &&
    record.service.serviceId === msg.serviceId &&
    record.service.unit === msg.unit &&
    record.service.tariffMsatPerUnit === msg.tariffMsatPerUnit &&
    record.service.creditWindowUnits === msg.creditWindowUnits &&
    equalBytes(record.payerFundingPubkey, msg.payerFundingPubkey) &&
    equalBytes(record.payerRefundScript, msg.payerRefundScript)
  );
}

export function acceptMessage(record: PayeeRecord): Effect {
  return {
    kind: 'send',
    message: {
      type: 'oneway_accept',
      tempChannelId: record.tempChannelId,
      payeeFundingPubkey: record.payeeFundingPubkey!,
      payeePayoutScript: record.payeePayoutScript!,
      minimumDepth: record.minimumDepth!,
    },
  };
}

function phaseEvent(record: PayeeRecord): Effect {
  return { kind: 'event', event: { type: 'phase', phase: record.phase } };
}

/** Settling is due once the tip is within the margin of the refund's lock height. */
export function settlementDue(record: PayeeRecord, tipHeight: number, policy: PayeePolicy): boolean {
  return tipHeight + policy.settleMarginBlocks >= record.expiryHeight;
}

export function payeeStep(record: PayeeRecord, input: PayeeInput, ctx: { tipHeight: number; policy: PayeePolicy }): Step<PayeeRecord> {
  switch (input.kind) {
    case 'message':
      return onMessage(record, input.message, ctx);
    case 'signed':
      return onSigned(record, input.purpose, input.signature);
    case 'settle':
      return settle(record);
    case 'resync':
      if (record.phase === 'open' || record.phase === 'closing') {
        return { record, effects: [{ kind: 'send', message: resumeMessage(record) }] };
      }
      return unchanged(record);
    case 'block':
      return onBlock(record, input.height, ctx);
    case 'funding-status':
      return onFundingStatus(record, input);
    case 'funding-spent':
      return onFundingSpent(record, input.spend, input.tx);
    case 'broadcast-result':
      // A settlement that did not go out is retried on the next block (onBlock); nothing to store.
      return unchanged(record);
  }
}

function onMessage(record: PayeeRecord, msg: Extract<PayeeInput, { kind: 'message' }>['message'], ctx: { tipHeight: number; policy: PayeePolicy }): Step<PayeeRecord> {
  switch (msg.type) {
    case 'oneway_refund_request':
      return onRefundRequest(record, msg);
    case 'oneway_funded':
      return onFunded(record, msg);
    case 'oneway_pay':
      return onPay(record, msg, ctx);
    case 'oneway_resume':
      return onResume(record, msg);
    case 'oneway_close_request':
      if (record.phase !== 'open') return unchanged(record);
      return settle(record);
    case 'error':
      return onPeerError(record, msg);
  }
}

function onRefundRequest(record: PayeeRecord, msg: OnewayRefundRequestMsg): Step<PayeeRecord> {
  const outpoint = { txid: txidFromInternal(msg.fundingTxid), vout: msg.fundingVout };
  if (record.phase === 'refund_signed' && record.refundSignature && record.fundingOutpoint &&
      record.fundingOutpoint.txid === outpoint.txid && record.fundingOutpoint.vout === outpoint.vout) {
    // Duplicate after a reconnect: the same signature again (RFC 6979 makes it identical anyway).
    return { record, effects: [refundSignedMessage(record)] };
  }
  if (record.phase !== 'accepted') return rejection(record, 'BAD_STATE', 'refund already signed for another outpoint');
  if (msg.fundingValueSat !== record.capacitySat) return rejection(record, 'FUNDING_MISMATCH', 'funding value differs from the proposed capacity');
  if (msg.fundingVout > 0xffff) return rejection(record, 'FUNDING_MISMATCH', 'funding output index must be below 65536');
  // Signing the refund is safe without seeing the funding: it only returns the payer's money after expiry.
  const pending: PayeeRecord = { ...record, fundingOutpoint: outpoint };
  let tx;
  try {
    tx = refundTransaction(pending);
  } catch (error) {
    return rejection(record, 'TERMS_REJECTED', `refund cannot be built: ${(error as Error).message}`);
  }
  return { record: pending, effects: [{ kind: 'sign', purpose: 'refund', tx: tx.toBuffer() }] };
}

function refundSignedMessage(record: PayeeRecord): Effect {
  return { kind: 'send', message: { type: 'oneway_refund_signed', tempChannelId: record.tempChannelId, refundSignature: record.refundSignature! } };
}

function onSigned(record: PayeeRecord, purpose: SignPurpose, signature: Uint8Array): Step<PayeeRecord> {
  if (purpose === 'refund' && record.phase === 'accepted' && record.fundingOutpoint) {
    const next: PayeeRecord = { ...record, phase: 'refund_signed', refundSignature: signature };
    return { record: next, effects: [{ kind: 'persist', reason: 'refund-signed' }, refundSignedMessage(next), phaseEvent(next)] };
  }
  if (purpose === 'settlement' && (record.phase === 'open' || record.phase === 'closing') && record.payment.signature) {
    const tx = paymentTransaction(record, record.payment.amountMsat);
    tx.setWitness(0, fundingWitness(
      record.payerFundingPubkey,
      scriptSignatureFromCompact(record.payment.signature),
      record.payeeFundingPubkey!,
      scriptSignatureFromCompact(signature),
    ));
    const raw = Uint8Array.from(tx.toBuffer());
    const next: PayeeRecord = { ...record, phase: 'closing', closingTx: raw };
    return {
      record: next,
      effects: [
        { kind: 'persist', reason: 'closing' },
        { kind: 'broadcast', purpose: 'settlement', tx: raw },
        { kind: 'send', message: { type: 'oneway_settled', channelId: record.channelId!, txid: tx.getHash() } },
        ...(record.phase !== 'closing' ? [phaseEvent(next)] : []),
      ],
    };
  }
  return unchanged(record);
}

function onFunded(record: PayeeRecord, msg: OnewayFundedMsg): Step<PayeeRecord> {
  if (record.phase === 'funded' || record.phase === 'open') {
    if (!record.channelId || !equalBytes(record.channelId, msg.channelId)) return rejection(record, 'FUNDING_MISMATCH', 'different channel id');
    return record.phase === 'open' ? { record, effects: [readyMessage(record)] } : { record, effects: [{ kind: 'check-funding' }] };
  }
  if (record.phase !== 'refund_signed' || !record.fundingOutpoint) return rejection(record, 'BAD_STATE', 'funded before the refund was signed');
  const expected = record.fundingOutpoint;
  if (txidFromInternal(msg.fundingTxid) !== expected.txid || msg.fundingVout !== expected.vout) {
    return rejection(record, 'FUNDING_MISMATCH', 'funding outpoint differs from the refund request');
  }
  if (!equalBytes(msg.channelId, deriveChannelId(expected))) return rejection(record, 'FUNDING_MISMATCH', 'channel id is not derived from the funding outpoint');
  const next: PayeeRecord = { ...record, phase: 'funded', channelId: msg.channelId };
  return {
    record: next,
    effects: [{ kind: 'persist', reason: 'funded' }, { kind: 'watch', outpoint: expected }, { kind: 'check-funding' }, phaseEvent(next)],
  };
}

function readyMessage(record: PayeeRecord): Effect {
  return { kind: 'send', message: { type: 'oneway_ready', channelId: record.channelId! } };
}

function onFundingStatus(record: PayeeRecord, input: Extract<ChainInput, { kind: 'funding-status' }>): Step<PayeeRecord> {
  if (record.phase !== 'funded' || !input.utxo) return unchanged(record);
  // The output must be exactly the agreed 2-of-2 with exactly the agreed value.
  if (!equalBytes(input.utxo.output.script, fundingOutputScriptOf(record)) || input.utxo.output.valueSat !== record.capacitySat) {
    const next: PayeeRecord = { ...record, phase: 'aborted', failure: { code: 'FUNDING_MISMATCH', message: 'funding output script or value differs' } };
    return {
      record: next,
      effects: [
        { kind: 'persist', reason: 'aborted' },
        { kind: 'send', message: { type: 'error', channelId: record.channelId!, code: CHANNEL_WIRE_CODES.FUNDING_MISMATCH, message: 'funding output does not match the terms' } },
        { kind: 'event', event: { type: 'failed', code: 'FUNDING_MISMATCH', message: 'funding output does not match the terms' } },
      ],
    };
  }
  if (input.utxo.confirmations < record.minimumDepth!) return unchanged(record);
  const next: PayeeRecord = { ...record, phase: 'open' };
  return { record: next, effects: [{ kind: 'persist', reason: 'open' }, readyMessage(next), phaseEvent(next)] };
}

function onPay(record: PayeeRecord, msg: OnewayPayMsg, ctx: { tipHeight: number; policy: PayeePolicy }): Step<PayeeRecord> {
  const last = record.payment;
  if (msg.paymentNumber === last.number && msg.amountMsat === last.amountMsat && last.signature && equalBytes(msg.signature, last.signature)) {
    // A duplicate (QoS 1 redelivery or a resend after reconnect): acknowledge again, change nothing.
    return { record, effects: [ackMessage(record)] };
  }
  if (record.phase === 'closing' || record.phase === 'closed') return rejection(record, 'CHANNEL_CLOSING', 'channel is settling');
  if (record.phase !== 'open') return rejection(record, 'BAD_STATE', 'channel is not open');
  if (record.failure) return rejection(record, 'CHANNEL_CLOSING', 'channel has failed');
  if (msg.paymentNumber <= last.number) return rejection(record, 'PAYMENT_REPLAYED', `payment number ${msg.paymentNumber} is not above ${last.number}`);
  if (msg.amountMsat <= last.amountMsat) return rejection(record, 'AMOUNT_NOT_INCREASING', 'amount must exceed the last accepted amount');
  const terms = channelTerms(record);
  if (msg.amountMsat > maxPaymentMsat(terms)) return rejection(record, 'CAPACITY_EXCEEDED', 'amount exceeds capacity minus fee');
  if (settlementDue(record, ctx.tipHeight, ctx.policy)) return rejection(record, 'CHANNEL_CLOSING', 'too close to expiry: settling');
  let tx;
  try {
    tx = paymentTransaction(record, msg.amountMsat);
  } catch (error) {
    return rejection(record, 'CAPACITY_EXCEEDED', (error as Error).message);
  }
  if (!verifyFundingSpend(record, tx, record.payerFundingPubkey, msg.signature)) {
    return rejection(record, 'BAD_SIGNATURE', 'signature does not verify over the payment transaction');
  }
  const next: PayeeRecord = { ...record, payment: { number: msg.paymentNumber, amountMsat: msg.amountMsat, signature: msg.signature } };
  return {
    record: next,
    effects: [
      { kind: 'persist', reason: 'payment-accepted' },
      { kind: 'event', event: { type: 'payment', number: msg.paymentNumber, amountMsat: msg.amountMsat, incrementMsat: msg.amountMsat - last.amountMsat } },
      ackMessage(next),
    ],
  };
}

function ackMessage(record: PayeeRecord): Effect {
  return {
    kind: 'send',
    message: { type: 'oneway_pay_ack', channelId: record.channelId!, paymentNumber: record.payment.number, amountMsat: record.payment.amountMsat },
  };
}

function resumeMessage(record: PayeeRecord): OnewayResumeMsg {
  return {
    type: 'oneway_resume',
    channelId: record.channelId!,
    latestPaymentNumber: record.payment.number,
    latestAmountMsat: record.payment.amountMsat,
  };
}

function onResume(record: PayeeRecord, msg: OnewayResumeMsg): Step<PayeeRecord> {
  if (record.phase !== 'open' && record.phase !== 'closing' && record.phase !== 'closed') return unchanged(record);
  const effects: Effect[] = [];
  if (msg.latestPaymentNumber === record.payment.number && msg.latestAmountMsat === record.payment.amountMsat && record.payment.number > 0n) {
    // The payer may have lost our ack with the old session.
    effects.push(ackMessage(record));
  }
  // Otherwise: a payer ahead of us resends its latest payment when it sees our resume; a payer behind us
  // learns our number from our resume. Either way our state does not change here.
  effects.push({ kind: 'send', message: resumeMessage(record) });
  return { record, effects };
}

function onPeerError(record: PayeeRecord, msg: ErrorMsg): Step<PayeeRecord> {
  const code = channelErrorCodeOf(msg.code) ?? 'PEER_ERROR';
  if (record.phase === 'accepted' || record.phase === 'refund_signed') {
    // Nothing of ours is on chain: forget the channel.
    const next: PayeeRecord = { ...record, phase: 'aborted', failure: { code: 'PEER_ERROR', message: `peer error ${msg.code}` } };
    return { record: next, effects: [{ kind: 'persist', reason: 'aborted' }, { kind: 'event', event: { type: 'failed', code, message: 'peer failed the channel' } }] };
  }
  if (record.phase === 'open') {
    // The payer gave up: take what we have been paid now.
    const next: PayeeRecord = { ...record, failure: { code: 'PEER_ERROR', message: `peer error ${msg.code}` } };
    const step = settle(next);
    return { record: step.record, effects: [{ kind: 'persist', reason: 'failed' }, { kind: 'event', event: { type: 'failed', code, message: 'peer failed the channel' } }, ...step.effects] };
  }
  return unchanged(record);
}

/** Settle with the latest payment (§3.3 `oneway_close_request`): ask for our signature, then broadcast. */
function settle(record: PayeeRecord): Step<PayeeRecord> {
  if (record.phase !== 'open' && record.phase !== 'closing') return unchanged(record);
  if (!record.payment.signature) {
    // Nothing was paid: there is nothing to settle; the payer takes its refund after expiry.
    if (record.phase === 'closing') return unchanged(record);
    const next: PayeeRecord = { ...record, phase: 'closing' };
    return { record: next, effects: [{ kind: 'persist', reason: 'closing' }, phaseEvent(next)] };
  }
  const tx = paymentTransaction(record, record.payment.amountMsat);
  return { record, effects: [{ kind: 'sign', purpose: 'settlement', tx: tx.toBuffer() }] };
}

function onBlock(record: PayeeRecord, height: number, ctx: { tipHeight: number; policy: PayeePolicy }): Step<PayeeRecord> {
  if (record.phase === 'funded') return { record, effects: [{ kind: 'check-funding' }] };
  if (record.phase === 'open' && settlementDue(record, height, ctx.policy)) return settle(record);
  if (record.phase === 'closing' && record.closingTx) {
    // Not confirmed yet (or dropped): broadcast the same transaction again.
    return { record, effects: [{ kind: 'broadcast', purpose: 'settlement', tx: record.closingTx }] };
  }
  return unchanged(record);
}

function onFundingSpent(record: PayeeRecord, spend: SpendInfo, tx: Uint8Array): Step<PayeeRecord> {
  if (record.phase === 'closed' || spend.blockHeight === undefined || !record.fundingOutpoint) return unchanged(record);
  const outcome = outcomeOfSpend(record, spend, tx);
  const next: PayeeRecord = { ...record, phase: 'closed', outcome };
  return { record: next, effects: [{ kind: 'persist', reason: 'closed' }, phaseEvent(next), { kind: 'event', event: { type: 'closed', outcome } }] };
}

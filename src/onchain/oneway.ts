/**
 * One-way (Spillman) micropayment channel transactions. The payer funds a 2-of-2 output; before it
 * broadcasts the funding it holds a refund transaction signed by the payee, locked by nLockTime to the
 * channel expiry (BIP 65 semantics are enforced by consensus through nLockTime + a non-final nSequence).
 * Each payment is a transaction spending the funding output to the payee's cumulative amount and the
 * payer's change, signed by the payer; the payee adds its signature only to settle.
 */
import { Transaction } from 'bitcoinjs-lib';
import { msatToSat, sat } from '../amounts.js';
import { TxBuildError } from '../errors.js';
import { dustThresholdSat } from './script.js';
import { assertOutPoint, feeForWeightAtSatPerVb, txidToHash, weightWithWitnesses } from './tx.js';
import { fundingScript, fundingWitnessPlaceholder } from './funding.js';
import type { OutPoint } from '../chain/port.js';

/** nLockTime values below this are block heights (BIP 65 / Core's LOCKTIME_THRESHOLD). */
export const LOCKTIME_THRESHOLD = 500_000_000;
/** Non-final sequence: makes nLockTime enforced, leaves BIP 68 disabled (bit 31 set), no RBF signal. */
export const REFUND_SEQUENCE = 0xfffffffe;

export interface OneWayChannelTerms {
  fundingOutpoint: OutPoint;
  fundingValueSat: bigint;
  payerFundingPubkey: Uint8Array;
  payeeFundingPubkey: Uint8Array;
  /** Where the refund and the payer's change go. */
  payerScript: Uint8Array;
  /** Where payments go. */
  payeeScript: Uint8Array;
  /** Block height from which the refund is valid (its nLockTime). */
  expiryHeight: number;
  /** Fee rate both refund and payment transactions pay, in sat/vB. */
  feerateSatPerVb: bigint;
}

export interface RefundTransaction {
  tx: Transaction;
  refundValueSat: bigint;
  feeSat: bigint;
}

export interface PaymentTransaction {
  tx: Transaction;
  /** On-chain value of the payee output: floor(amountMsat / 1000); 0 when below dust (not created). */
  payeeValueSat: bigint;
  /** Payer change; 0 when below dust (not created). */
  payerValueSat: bigint;
  feeSat: bigint;
  /** Index of the payee output, or -1 when none. */
  payeeOutputIndex: number;
}

/** Validate the terms; returns the worst-case funding witness used for every fee estimate of this call. */
/** Frozen terms objects already checked, with their witness placeholder (the pubkey checks cost a square root each). */
const checkedTerms = new WeakMap<OneWayChannelTerms, Uint8Array[]>();

function checkTerms(terms: OneWayChannelTerms): Uint8Array[] {
  const known = checkedTerms.get(terms);
  if (known) return known;
  const witness = checkTermsOnce(terms);
  if (Object.isFrozen(terms) && Object.isFrozen(terms.fundingOutpoint)) checkedTerms.set(terms, witness);
  return witness;
}

function checkTermsOnce(terms: OneWayChannelTerms): Uint8Array[] {
  assertOutPoint(terms.fundingOutpoint, 'fundingOutpoint');
  sat(terms.fundingValueSat, 'fundingValueSat');
  sat(terms.feerateSatPerVb, 'feerateSatPerVb');
  if (!Number.isInteger(terms.expiryHeight) || terms.expiryHeight <= 0 || terms.expiryHeight >= LOCKTIME_THRESHOLD) {
    throw new TxBuildError('BAD_PARAMETER', 'expiryHeight', 'expected a block height in 1..499999999');
  }
  return fundingWitnessPlaceholder(fundingScript(terms.payerFundingPubkey, terms.payeeFundingPubkey));
}

function fundingSpendSkeleton(terms: OneWayChannelTerms, sequence: number, locktime: number): Transaction {
  const tx = new Transaction();
  tx.version = 2;
  tx.locktime = locktime;
  tx.addInput(txidToHash(terms.fundingOutpoint.txid), terms.fundingOutpoint.vout, sequence);
  return tx;
}

function feeFor(tx: Transaction, witness: Uint8Array[], terms: OneWayChannelTerms): bigint {
  return feeForWeightAtSatPerVb(weightWithWitnesses(tx, [witness]), terms.feerateSatPerVb);
}

/**
 * The refund: funding → payer, nLockTime = expiryHeight, nSequence non-final so the lock is enforced.
 * The payee signs it first; only then may the payer sign and broadcast the funding transaction.
 */
export function buildRefundTransaction(terms: OneWayChannelTerms): RefundTransaction {
  const witness = checkTerms(terms);
  const tx = fundingSpendSkeleton(terms, REFUND_SEQUENCE, terms.expiryHeight);
  tx.addOutput(terms.payerScript, 0n);
  const feeSat = feeFor(tx, witness, terms);
  const refundValueSat = terms.fundingValueSat - feeSat;
  if (refundValueSat < dustThresholdSat(terms.payerScript)) {
    throw new TxBuildError('FEE_EXCEEDS_VALUE', 'fundingValueSat', 'refund would be dust after fee');
  }
  tx.outs[0]!.value = refundValueSat;
  return { tx, refundValueSat, feeSat };
}

/** Largest cumulative payment (msat) the channel can carry: capacity minus the fee of a payee-only payment. */
export function maxPaymentMsat(terms: OneWayChannelTerms): bigint {
  const witness = checkTerms(terms);
  const tx = fundingSpendSkeleton(terms, 0xffffffff, 0);
  tx.addOutput(terms.payeeScript, 0n);
  const fee = feeFor(tx, witness, terms);
  const max = terms.fundingValueSat - fee;
  return max > 0n ? max * 1000n : 0n;
}

/**
 * A payment of the cumulative `amountMsat` to the payee. The payee output is floor(amountMsat/1000) sat
 * (the msat remainder cannot go on chain); the payer pays the fee from its change. An output below the
 * dust threshold is not created and its value goes to the fee.
 */
export function buildPaymentTransaction(terms: OneWayChannelTerms, amountMsat: bigint): PaymentTransaction {
  const witness = checkTerms(terms);
  const { valueSat: payeeSat } = msatToSat(amountMsat, 'amountMsat');
  const payeeOut = payeeSat >= dustThresholdSat(terms.payeeScript);

  const probe = fundingSpendSkeleton(terms, 0xffffffff, 0);
  if (payeeOut) probe.addOutput(terms.payeeScript, payeeSat);
  probe.addOutput(terms.payerScript, 0n);
  const feeWithChange = feeFor(probe, witness, terms);
  if (payeeSat + feeWithChange > terms.fundingValueSat) {
    const onlyPayee = fundingSpendSkeleton(terms, 0xffffffff, 0);
    onlyPayee.addOutput(terms.payeeScript, payeeSat);
    if (!payeeOut || payeeSat + feeFor(onlyPayee, witness, terms) > terms.fundingValueSat) {
      throw new TxBuildError('FEE_EXCEEDS_VALUE', 'amountMsat', 'payment plus fee exceeds the channel capacity');
    }
  }
  let payerSat = terms.fundingValueSat - payeeSat - feeWithChange;
  if (payerSat < dustThresholdSat(terms.payerScript)) payerSat = 0n;

  const tx = fundingSpendSkeleton(terms, 0xffffffff, 0);
  // Payee first, then change: a fixed order the payee can check without sorting rules.
  if (payeeOut) tx.addOutput(terms.payeeScript, payeeSat);
  if (payerSat > 0n) tx.addOutput(terms.payerScript, payerSat);
  if (tx.outs.length === 0) throw new TxBuildError('DUST_OUTPUT', 'amountMsat', 'payment would create no output');
  const paid = (payeeOut ? payeeSat : 0n) + payerSat;
  return {
    tx,
    payeeValueSat: payeeOut ? payeeSat : 0n,
    payerValueSat: payerSat,
    feeSat: terms.fundingValueSat - paid,
    payeeOutputIndex: payeeOut ? 0 : -1,
  };
}

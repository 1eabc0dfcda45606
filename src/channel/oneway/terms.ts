/**
 * What both ends of a one-way channel derive identically from the agreed fields: the on-chain terms
 * (src/onchain/oneway.ts), the channel id (BOLT 2 derivation, docs/protocol.md §3) and fee-rate units.
 */
import { Transaction } from 'bitcoinjs-lib';
import type { OutPoint } from '../../chain/port.js';
import { decodeScriptSignature, encodeScriptSignature, p2wshOutput, SIGHASH_ALL } from '../../onchain/script.js';
import { txidToHash } from '../../onchain/tx.js';
import { fundingScript } from '../../onchain/funding.js';
import { buildPaymentTransaction, buildRefundTransaction, type OneWayChannelTerms } from '../../onchain/oneway.js';
import { segwitV0Sighash } from '../../onchain/sighash.js';
import { verifyDigest } from '../../crypto/secp256k1.js';
import { ChannelError } from './errors.js';
import type { OnewayRecord } from './state.js';

/**
 * sat/vB from BOLT's sat per 1000 weight units: 1 vB = 4 WU, so perKw / 250, rounded up so neither side
 * underpays. Both ends use this one conversion, so they build identical transactions.
 */
import { satPerVbFromPerKw } from '../../onchain/funding.js';
export { satPerVbFromPerKw };

/** BOLT 2: the funding txid in internal byte order with its last two bytes XORed with the output index. */
export function deriveChannelId(fundingOutpoint: OutPoint): Uint8Array {
  if (!Number.isInteger(fundingOutpoint.vout) || fundingOutpoint.vout < 0 || fundingOutpoint.vout > 0xffff) {
    throw new RangeError('"vout" must be below 65536 to derive a channel id');
  }
  const id = Uint8Array.from(txidToHash(fundingOutpoint.txid));
  id[30]! ^= fundingOutpoint.vout >> 8;
  id[31]! ^= fundingOutpoint.vout & 0xff;
  return id;
}

/**
 * What a record's fixed fields derive to, kept per channel: every payment rebuilds its transaction from
 * these, and deriving them checks both funding keys (a square root each). Keyed by the payer's funding key
 * array and used only while every field it came from is the same object or value (records are replaced,
 * never mutated, so a changed field is a new object).
 */
interface Derived {
  from: readonly unknown[];
  terms: OneWayChannelTerms | undefined;
  fundingScript: Uint8Array | undefined;
}
const derivedCache = new WeakMap<Uint8Array, Derived>();

function derivedOf(record: OnewayRecord): Derived {
  const from = [record.payeeFundingPubkey, record.payeePayoutScript, record.fundingOutpoint, record.capacitySat,
    record.payerRefundScript, record.expiryHeight, record.feeratePerKw];
  const cached = derivedCache.get(record.payerFundingPubkey);
  if (cached && cached.from.every((v, i) => v === from[i])) return cached;
  const derived: Derived = { from, terms: undefined, fundingScript: undefined };
  derivedCache.set(record.payerFundingPubkey, derived);
  return derived;
}

/** The on-chain terms; throws if the record has not reached the point where they are all known. */
export function channelTerms(record: OnewayRecord): OneWayChannelTerms {
  if (!record.payeeFundingPubkey || !record.payeePayoutScript || !record.fundingOutpoint) {
    throw new ChannelError('BAD_STATE', 'channel terms are not complete yet');
  }
  const derived = derivedOf(record);
  derived.terms ??= Object.freeze({
    fundingOutpoint: Object.freeze({ ...record.fundingOutpoint }),
    fundingValueSat: record.capacitySat,
    payerFundingPubkey: record.payerFundingPubkey,
    payeeFundingPubkey: record.payeeFundingPubkey,
    payerScript: record.payerRefundScript,
    payeeScript: record.payeePayoutScript,
    expiryHeight: record.expiryHeight,
    feerateSatPerVb: satPerVbFromPerKw(record.feeratePerKw),
  });
  return derived.terms;
}

export function fundingScriptOf(record: OnewayRecord): Uint8Array {
  if (!record.payeeFundingPubkey) throw new ChannelError('BAD_STATE', 'payee funding key not known yet');
  const derived = derivedOf(record);
  derived.fundingScript ??= fundingScript(record.payerFundingPubkey, record.payeeFundingPubkey);
  return derived.fundingScript;
}

export function fundingOutputScriptOf(record: OnewayRecord): Uint8Array {
  return p2wshOutput(fundingScriptOf(record));
}

export function refundTransaction(record: OnewayRecord): Transaction {
  return buildRefundTransaction(channelTerms(record)).tx;
}

export function paymentTransaction(record: OnewayRecord, amountMsat: bigint): Transaction {
  return buildPaymentTransaction(channelTerms(record), amountMsat).tx;
}

/** BIP 143 digest of input 0 (the funding output) of a spend. */
export function fundingSpendDigest(record: OnewayRecord, tx: Transaction): Uint8Array {
  return segwitV0Sighash(tx.toBuffer(), 0, fundingScriptOf(record), record.capacitySat, SIGHASH_ALL);
}

/** Verify a peer's 64-byte compact signature (SIGHASH_ALL implied, as in BOLT 2) on a funding spend. */
export function verifyFundingSpend(record: OnewayRecord, tx: Transaction, pubkey: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return verifyDigest(signature, fundingSpendDigest(record, tx), pubkey);
  } catch {
    return false;
  }
}

/** Wire signatures are compact; in-script ones DER + sighash byte. */
export function compactFromScriptSignature(scriptSignature: Uint8Array): Uint8Array {
  const { signature, sighashType } = decodeScriptSignature(scriptSignature);
  if (sighashType !== SIGHASH_ALL) throw new ChannelError('BAD_SIGNATURE', 'expected SIGHASH_ALL');
  return signature;
}

export function scriptSignatureFromCompact(signature: Uint8Array): Uint8Array {
  return encodeScriptSignature(signature, SIGHASH_ALL);
}

/**
 * Output scripts we accept as payout/refund destinations: the standard forms Bitcoin Core relays
 * (P2WPKH, P2WSH, P2TR, P2PKH, P2SH). Anything else could make the refund or a payment unrelayable.
 */
export function isStandardPayoutScript(s: Uint8Array): boolean {
  if (s.length === 22 && s[0] === 0x00 && s[1] === 0x14) return true;
  if (s.length === 34 && s[0] === 0x00 && s[1] === 0x20) return true;
  if (s.length === 34 && s[0] === 0x51 && s[1] === 0x20) return true;
  if (s.length === 25 && s[0] === 0x76 && s[1] === 0xa9 && s[2] === 0x14 && s[23] === 0x88 && s[24] === 0xac) return true;
  if (s.length === 23 && s[0] === 0xa9 && s[1] === 0x14 && s[22] === 0x87) return true;
  return false;
}

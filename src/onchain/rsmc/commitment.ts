/**
 * BOLT 3 commitment transaction (option_static_remotekey, no anchors) and its HTLC-timeout /
 * HTLC-success transactions, built from explicit parameters so they can be checked against the spec's
 * Appendix C vectors. "local" is the owner of the commitment (who may broadcast it).
 *
 * Steps follow BOLT 3 §Commitment Transaction Construction: obscured number in locktime/sequence,
 * trim HTLCs below dust + second-stage fee, base fee from weight taken from the opener, outputs below
 * the dust limit omitted, outputs sorted by value, script, then cltv_expiry.
 */
import { Transaction } from 'bitcoinjs-lib';
import { sha256 } from '../../crypto/hash.js';
import { bytesToBigInt, concatBytes } from '../../bytes.js';
import { msat, sat, msatToSatFloor } from '../../amounts.js';
import { TxBuildError } from '../../errors.js';
import type { OutPoint } from '../../chain/port.js';
import { assertPubkey, p2wpkhOutput, p2wshOutput } from '../script.js';
import { assertOutPoint, compareOutputs, txidToHash, hashToTxid } from '../tx.js';
import { fundingScript } from '../funding.js';
import { derivePublicKey, deriveRevocationPublicKey } from './keys.js';
import {
  assertCltvExpiry,
  assertToSelfDelay,
  offeredHtlcScript,
  receivedHtlcScript,
  toLocalScript,
} from './scripts.js';
import { MAX_COMMITMENT_NUMBER } from './shachain.js';
import { commitmentBaseFeeSat, commitmentWeight, htlcSuccessFeeSat, htlcTimeoutFeeSat } from './fees.js';

/** The keys that appear in one commitment's scripts. */
export interface CommitmentKeys {
  revocationPubkey: Uint8Array;
  localDelayedPubkey: Uint8Array;
  localHtlcPubkey: Uint8Array;
  remoteHtlcPubkey: Uint8Array;
  /** to_remote key: the remote's payment_basepoint, untweaked (option_static_remotekey). */
  remotePaymentPubkey: Uint8Array;
}

export interface CommitmentBasepoints {
  /** The commitment owner's per-commitment point for this commitment number. */
  perCommitmentPoint: Uint8Array;
  localDelayedPaymentBasepoint: Uint8Array;
  localHtlcBasepoint: Uint8Array;
  remoteHtlcBasepoint: Uint8Array;
  remoteRevocationBasepoint: Uint8Array;
  remotePaymentBasepoint: Uint8Array;
}

/** Derive a commitment's keys from both sides' basepoints and the owner's per-commitment point (BOLT 3 §Key Derivation). */
export function deriveCommitmentKeys(b: CommitmentBasepoints): CommitmentKeys {
  assertPubkey(b.remotePaymentBasepoint, 'remotePaymentBasepoint');
  return {
    revocationPubkey: deriveRevocationPublicKey(b.remoteRevocationBasepoint, b.perCommitmentPoint),
    localDelayedPubkey: derivePublicKey(b.localDelayedPaymentBasepoint, b.perCommitmentPoint),
    localHtlcPubkey: derivePublicKey(b.localHtlcBasepoint, b.perCommitmentPoint),
    remoteHtlcPubkey: derivePublicKey(b.remoteHtlcBasepoint, b.perCommitmentPoint),
    remotePaymentPubkey: b.remotePaymentBasepoint,
  };
}

/** Lower 48 bits of SHA256(opener payment_basepoint || accepter payment_basepoint). */
export function obscuringFactor(openerPaymentBasepoint: Uint8Array, accepterPaymentBasepoint: Uint8Array): bigint {
  assertPubkey(openerPaymentBasepoint, 'openerPaymentBasepoint');
  assertPubkey(accepterPaymentBasepoint, 'accepterPaymentBasepoint');
  return bytesToBigInt(sha256(concatBytes(openerPaymentBasepoint, accepterPaymentBasepoint)).subarray(26));
}


/** locktime = 0x20 << 24 | lower 24 bits; sequence = 0x80 << 24 | upper 24 bits of the obscured number. */
export function encodeCommitmentNumber(commitmentNumber: bigint, factor: bigint): { locktime: number; sequence: number } {
  if (typeof commitmentNumber !== 'bigint' || commitmentNumber < 0n || commitmentNumber > MAX_COMMITMENT_NUMBER) {
    throw new TxBuildError('BAD_PARAMETER', 'commitmentNumber', 'expected a 48-bit bigint');
  }
  const obscured = commitmentNumber ^ factor;
  return {
    locktime: Number(0x20000000n | (obscured & 0xffffffn)),
    sequence: Number(0x80000000n | ((obscured >> 24n) & 0xffffffn)),
  };
}

/**
 * The commitment number of a transaction seen on chain, or undefined when its locktime/sequence do not
 * have the commitment markers (0x20 / 0x80 in the top byte). Used by a watcher to spot our channel's states.
 */
export function decodeCommitmentNumber(locktime: number, sequence: number, factor: bigint): bigint | undefined {
  if (locktime >>> 24 !== 0x20 || sequence >>> 24 !== 0x80) return undefined;
  const obscured = (BigInt(sequence & 0xffffff) << 24n) | BigInt(locktime & 0xffffff);
  return obscured ^ factor;
}

export type HtlcDirection = 'offered' | 'received';

/** An HTLC as seen from the commitment owner: 'offered' by local or 'received' from remote. */
export interface Htlc {
  id: bigint;
  direction: HtlcDirection;
  amountMsat: bigint;
  paymentHash: Uint8Array;
  cltvExpiry: number;
}

export interface CommitmentParams {
  fundingOutpoint: OutPoint;
  fundingValueSat: bigint;
  localFundingPubkey: Uint8Array;
  remoteFundingPubkey: Uint8Array;
  keys: CommitmentKeys;
  commitmentNumber: bigint;
  openerPaymentBasepoint: Uint8Array;
  accepterPaymentBasepoint: Uint8Array;
  /** The opener (funder) pays the commitment fee. */
  localIsOpener: boolean;
  /** The delay the remote imposed on local's outputs. */
  toSelfDelay: number;
  /** Local's dust limit: applies to this commitment (its to_local, to_remote and HTLC trimming). */
  dustLimitSat: bigint;
  feeratePerKw: bigint;
  toLocalMsat: bigint;
  toRemoteMsat: bigint;
  htlcs: Htlc[];
}

export type CommitmentOutputKind = 'to_local' | 'to_remote' | 'offered_htlc' | 'received_htlc';

export interface CommitmentOutput {
  kind: CommitmentOutputKind;
  valueSat: bigint;
  /** scriptPubKey. */
  script: Uint8Array;
  /** P2WSH witness script (absent for to_remote, which is P2WPKH). */
  witnessScript?: Uint8Array;
  htlc?: Htlc;
}

export interface HtlcTransaction {
  kind: 'htlc-timeout' | 'htlc-success';
  htlc: Htlc;
  /** Index of the HTLC output it spends in the commitment. */
  commitmentOutputIndex: number;
  /** Unsigned: witness is set by htlcTimeoutWitness / htlcSuccessWitness. */
  tx: Transaction;
  feeSat: bigint;
  /** The HTLC output's witness script (what both HTLC signatures sign). */
  htlcWitnessScript: Uint8Array;
  /** Value of the HTLC output being spent. */
  htlcValueSat: bigint;
  /** Output: to_local-style script (revocation or CSV-delayed). */
  outputWitnessScript: Uint8Array;
  outputValueSat: bigint;
}

export interface CommitmentTransaction {
  /** Unsigned: set the funding witness to broadcast. */
  tx: Transaction;
  txid: string;
  outputs: CommitmentOutput[];
  /** Untrimmed HTLCs' second-stage transactions, in commitment output order (the order of htlc_signatures). */
  htlcTransactions: HtlcTransaction[];
  trimmedHtlcs: Htlc[];
  /** feerate_per_kw * expected weight / 1000. */
  baseFeeSat: bigint;
  /** What miners actually get: base fee + trimmed HTLCs + omitted dust outputs + msat remainders. */
  actualFeeSat: bigint;
  /** BOLT 3 expected weight: 724 + 172 per untrimmed HTLC. */
  expectedWeight: number;
  fundingScript: Uint8Array;
}

function isTrimmed(h: Htlc, dustLimitSat: bigint, feeratePerKw: bigint): boolean {
  const secondStageFee = h.direction === 'offered' ? htlcTimeoutFeeSat(feeratePerKw) : htlcSuccessFeeSat(feeratePerKw);
  return msatToSatFloor(h.amountMsat, 'htlc.amountMsat') < dustLimitSat + secondStageFee;
}

function checkParams(p: CommitmentParams): void {
  assertOutPoint(p.fundingOutpoint, 'fundingOutpoint');
  sat(p.fundingValueSat, 'fundingValueSat');
  sat(p.dustLimitSat, 'dustLimitSat');
  sat(p.feeratePerKw, 'feeratePerKw');
  msat(p.toLocalMsat, 'toLocalMsat');
  msat(p.toRemoteMsat, 'toRemoteMsat');
  assertToSelfDelay(p.toSelfDelay);
  for (const [name, key] of Object.entries(p.keys)) assertPubkey(key as Uint8Array, `keys.${name}`);
  const ids = new Set<bigint>();
  let totalMsat = p.toLocalMsat + p.toRemoteMsat;
  p.htlcs.forEach((h, i) => {
    msat(h.amountMsat, `htlcs[${i}].amountMsat`);
    assertCltvExpiry(h.cltvExpiry, `htlcs[${i}].cltvExpiry`);
    if (h.direction !== 'offered' && h.direction !== 'received') {
      throw new TxBuildError('BAD_PARAMETER', `htlcs[${i}].direction`, "expected 'offered' or 'received'");
    }
    if (typeof h.id !== 'bigint' || h.id < 0n || h.id >= 1n << 64n) {
      throw new TxBuildError('BAD_PARAMETER', `htlcs[${i}].id`, 'expected a uint64 bigint');
    }
    const key = (h.direction === 'offered' ? 1n : -1n) * (h.id + 1n);
    if (ids.has(key)) throw new TxBuildError('BAD_PARAMETER', `htlcs[${i}].id`, 'duplicate HTLC id');
    ids.add(key);
    totalMsat += h.amountMsat;
  });
  // Channel invariant: balances and HTLCs account for exactly the funding value.
  if (totalMsat !== p.fundingValueSat * 1000n) {
    throw new TxBuildError(
      'BAD_PARAMETER',
      'toLocalMsat',
      `balances + HTLCs = ${totalMsat} msat, funding is ${p.fundingValueSat * 1000n} msat`,
    );
  }
}

/** Build a commitment transaction and its HTLC transactions (BOLT 3). */
export function buildCommitmentTransaction(p: CommitmentParams): CommitmentTransaction {
  checkParams(p);
  const { keys } = p;
  const untrimmed: Htlc[] = [];
  const trimmedHtlcs: Htlc[] = [];
  for (const h of p.htlcs) (isTrimmed(h, p.dustLimitSat, p.feeratePerKw) ? trimmedHtlcs : untrimmed).push(h);
  const baseFeeSat = commitmentBaseFeeSat(p.feeratePerKw, untrimmed.length);

  let toLocalSat = msatToSatFloor(p.toLocalMsat, 'toLocalMsat');
  let toRemoteSat = msatToSatFloor(p.toRemoteMsat, 'toRemoteMsat');
  // The opener pays the fee; if it cannot, its output simply vanishes (BOLT 3 vector "fee greater than funder amount").
  if (p.localIsOpener) toLocalSat = toLocalSat > baseFeeSat ? toLocalSat - baseFeeSat : 0n;
  else toRemoteSat = toRemoteSat > baseFeeSat ? toRemoteSat - baseFeeSat : 0n;

  const outputs: Array<CommitmentOutput & { cltvExpiry?: number }> = [];
  for (const h of untrimmed) {
    const witnessScript =
      h.direction === 'offered'
        ? offeredHtlcScript(keys, h.paymentHash)
        : receivedHtlcScript(keys, h.paymentHash, h.cltvExpiry);
    outputs.push({
      kind: h.direction === 'offered' ? 'offered_htlc' : 'received_htlc',
      valueSat: h.amountMsat / 1000n,
      script: p2wshOutput(witnessScript),
      witnessScript,
      htlc: h,
      cltvExpiry: h.cltvExpiry,
    });
  }
  const localScript = toLocalScript(keys.revocationPubkey, p.toSelfDelay, keys.localDelayedPubkey);
  if (toLocalSat >= p.dustLimitSat && toLocalSat > 0n) {
    outputs.push({ kind: 'to_local', valueSat: toLocalSat, script: p2wshOutput(localScript), witnessScript: localScript });
  }
  if (toRemoteSat >= p.dustLimitSat && toRemoteSat > 0n) {
    outputs.push({ kind: 'to_remote', valueSat: toRemoteSat, script: p2wpkhOutput(keys.remotePaymentPubkey) });
  }
  outputs.sort(compareOutputs);
  if (outputs.length === 0) throw new TxBuildError('DUST_OUTPUT', 'toLocalMsat', 'commitment would have no output');

  const factor = obscuringFactor(p.openerPaymentBasepoint, p.accepterPaymentBasepoint);
  const { locktime, sequence } = encodeCommitmentNumber(p.commitmentNumber, factor);
  const tx = new Transaction();
  tx.version = 2;
  tx.locktime = locktime;
  tx.addInput(txidToHash(p.fundingOutpoint.txid), p.fundingOutpoint.vout, sequence);
  for (const o of outputs) tx.addOutput(o.script, o.valueSat);
  const txid = hashToTxid(tx.getHash());

  const htlcTransactions: HtlcTransaction[] = [];
  outputs.forEach((o, index) => {
    if (!o.htlc || !o.witnessScript) return;
    htlcTransactions.push(
      buildHtlcTransaction({
        commitmentTxid: txid,
        outputIndex: index,
        htlc: o.htlc,
        htlcWitnessScript: o.witnessScript,
        htlcValueSat: o.valueSat,
        revocationPubkey: keys.revocationPubkey,
        localDelayedPubkey: keys.localDelayedPubkey,
        toSelfDelay: p.toSelfDelay,
        feeratePerKw: p.feeratePerKw,
      }),
    );
  });

  const paid = outputs.reduce((sum, o) => sum + o.valueSat, 0n);
  return {
    tx,
    txid,
    outputs: outputs.map(({ cltvExpiry: _c, ...o }) => o),
    htlcTransactions,
    trimmedHtlcs,
    baseFeeSat,
    actualFeeSat: p.fundingValueSat - paid,
    expectedWeight: commitmentWeight(untrimmed.length),
    fundingScript: fundingScript(p.localFundingPubkey, p.remoteFundingPubkey),
  };
}

export interface HtlcTransactionParams {
  commitmentTxid: string;
  outputIndex: number;
  htlc: Htlc;
  htlcWitnessScript: Uint8Array;
  htlcValueSat: bigint;
  revocationPubkey: Uint8Array;
  localDelayedPubkey: Uint8Array;
  toSelfDelay: number;
  feeratePerKw: bigint;
}

/**
 * HTLC-timeout (offered HTLC; locktime = cltv_expiry) or HTLC-success (received HTLC; locktime 0):
 * one input at nSequence 0, one output to the to_local template (BOLT 3 §HTLC-Timeout and HTLC-Success).
 */
export function buildHtlcTransaction(p: HtlcTransactionParams): HtlcTransaction {
  const timeout = p.htlc.direction === 'offered';
  const feeSat = timeout ? htlcTimeoutFeeSat(p.feeratePerKw) : htlcSuccessFeeSat(p.feeratePerKw);
  const outputValueSat = p.htlcValueSat - feeSat;
  if (outputValueSat <= 0n) throw new TxBuildError('FEE_EXCEEDS_VALUE', 'htlc.amountMsat', 'HTLC does not cover its fee');
  const outputWitnessScript = toLocalScript(p.revocationPubkey, p.toSelfDelay, p.localDelayedPubkey);
  const tx = new Transaction();
  tx.version = 2;
  tx.locktime = timeout ? p.htlc.cltvExpiry : 0;
  tx.addInput(txidToHash(p.commitmentTxid), p.outputIndex, 0);
  tx.addOutput(p2wshOutput(outputWitnessScript), outputValueSat);
  return {
    kind: timeout ? 'htlc-timeout' : 'htlc-success',
    htlc: p.htlc,
    commitmentOutputIndex: p.outputIndex,
    tx,
    feeSat,
    htlcWitnessScript: p.htlcWitnessScript,
    htlcValueSat: p.htlcValueSat,
    outputWitnessScript,
    outputValueSat,
  };
}

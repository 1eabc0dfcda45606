/**
 * What both ends of a revocable channel derive identically from the record: each side's commitment for
 * a number, spec and per-commitment point (BOLT 3, via src/onchain/rsmc/commitment.ts), the closing
 * transaction at a fee, the channel id and the signature checks. Pure functions of the record.
 */
import { Transaction } from 'bitcoinjs-lib';
import { feeForWeight } from '../../amounts.js';
import { buildClosingTransaction, closingWeight, type ClosingTransaction } from '../../onchain/rsmc/closing.js';
import { buildCommitmentTransaction, deriveCommitmentKeys, obscuringFactor, type CommitmentBasepoints, type CommitmentKeys, type CommitmentTransaction } from '../../onchain/rsmc/commitment.js';
import { bytesToHex } from '../../bytes.js';
import { commitmentBaseFeeSat } from '../../onchain/rsmc/fees.js';
import { encodeScriptSignature } from '../../onchain/script.js';
import { fundingScript, verifyFundingSpendSignature, fundingWitness } from '../../onchain/funding.js';
import { RsmcError } from './errors.js';
import type { PartyConfig, RsmcRecord, Spec } from './types.js';

export { deriveChannelId } from '../oneway/terms.js';

/**
 * The part of the record the commitments are built from. The hardware key (firmware-bridge/core) builds
 * the same transactions from the terms it stored at setup, so it can compare byte for byte.
 */
export type CommitmentTerms = Pick<RsmcRecord, 'role' | 'local' | 'remote' | 'fundingOutpoint' | 'fundingSat' | 'feeratePerKw'>;

export function remoteConfig(record: Pick<RsmcRecord, 'remote'>): PartyConfig {
  if (!record.remote) throw new RsmcError('BAD_STATE', 'the peer’s channel parameters are not known yet');
  return record.remote;
}

function fundingOutpointOf(record: CommitmentTerms) {
  if (!record.fundingOutpoint) throw new RsmcError('BAD_STATE', 'the funding outpoint is not known yet');
  return record.fundingOutpoint;
}

function openerAndAccepter(record: CommitmentTerms): { opener: PartyConfig; accepter: PartyConfig } {
  const remote = remoteConfig(record);
  return record.role === 'opener' ? { opener: record.local, accepter: remote } : { opener: remote, accepter: record.local };
}

/** The 2-of-2 funding witness script (BOLT 3: keys in lexicographic order). */
export function fundingScriptOf(record: CommitmentTerms): Uint8Array {
  return fundingScript(record.local.fundingPubkey, remoteConfig(record).fundingPubkey);
}

/** BOLT 3 obscuring factor of this channel's commitment numbers. */
export function obscuringFactorOf(record: CommitmentTerms): bigint {
  const { opener, accepter } = openerAndAccepter(record);
  return obscuringFactor(opener.paymentBasepoint, accepter.paymentBasepoint);
}

/**
 * deriveCommitmentKeys, remembered for the last few (point, basepoints): each update builds the peer's
 * next commitment twice (to sign it, then to store it) and the runtime rebuilds ours to broadcast, and the
 * key derivation (five point multiplications) is most of that cost. The keys are public.
 */
const KEY_CACHE_SIZE = 16;
const keyCache = new Map<string, CommitmentKeys>();

function commitmentKeys(b: CommitmentBasepoints): CommitmentKeys {
  const id = [b.perCommitmentPoint, b.localDelayedPaymentBasepoint, b.localHtlcBasepoint, b.remoteHtlcBasepoint, b.remoteRevocationBasepoint, b.remotePaymentBasepoint]
    .map(bytesToHex)
    .join('');
  let keys = keyCache.get(id);
  if (!keys) {
    keys = deriveCommitmentKeys(b);
    if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(id, keys);
  }
  return keys;
}

/** Our commitment `number` with balances `spec`, built with our per-commitment point `point`. */
export function localCommitment(record: CommitmentTerms, number: bigint, spec: Spec, point: Uint8Array): CommitmentTransaction {
  const remote = remoteConfig(record);
  const { opener, accepter } = openerAndAccepter(record);
  return buildCommitmentTransaction({
    fundingOutpoint: fundingOutpointOf(record),
    fundingValueSat: record.fundingSat,
    localFundingPubkey: record.local.fundingPubkey,
    remoteFundingPubkey: remote.fundingPubkey,
    keys: commitmentKeys({
      perCommitmentPoint: point,
      localDelayedPaymentBasepoint: record.local.delayedPaymentBasepoint,
      localHtlcBasepoint: record.local.htlcBasepoint,
      remoteHtlcBasepoint: remote.htlcBasepoint,
      remoteRevocationBasepoint: remote.revocationBasepoint,
      remotePaymentBasepoint: remote.paymentBasepoint,
    }),
    commitmentNumber: number,
    openerPaymentBasepoint: opener.paymentBasepoint,
    accepterPaymentBasepoint: accepter.paymentBasepoint,
    localIsOpener: record.role === 'opener',
    // The peer chose the delay on our to_local; our own dust limit applies to our commitment.
    toSelfDelay: remote.toSelfDelay,
    dustLimitSat: record.local.dustLimitSat,
    feeratePerKw: record.feeratePerKw,
    toLocalMsat: spec.localMsat,
    toRemoteMsat: spec.remoteMsat,
    htlcs: [],
  });
}

/** The peer's commitment `number` with balances `spec` (our view), built with the peer's point `point`. */
export function remoteCommitment(record: CommitmentTerms, number: bigint, spec: Spec, point: Uint8Array): CommitmentTransaction {
  const remote = remoteConfig(record);
  const { opener, accepter } = openerAndAccepter(record);
  return buildCommitmentTransaction({
    fundingOutpoint: fundingOutpointOf(record),
    fundingValueSat: record.fundingSat,
    localFundingPubkey: remote.fundingPubkey,
    remoteFundingPubkey: record.local.fundingPubkey,
    keys: commitmentKeys({
      perCommitmentPoint: point,
      localDelayedPaymentBasepoint: remote.delayedPaymentBasepoint,
      localHtlcBasepoint: remote.htlcBasepoint,
      remoteHtlcBasepoint: record.local.htlcBasepoint,
      remoteRevocationBasepoint: record.local.revocationBasepoint,
      remotePaymentBasepoint: record.local.paymentBasepoint,
    }),
    commitmentNumber: number,
    openerPaymentBasepoint: opener.paymentBasepoint,
    accepterPaymentBasepoint: accepter.paymentBasepoint,
    localIsOpener: record.role === 'accepter',
    toSelfDelay: record.local.toSelfDelay,
    dustLimitSat: remote.dustLimitSat,
    feeratePerKw: record.feeratePerKw,
    toLocalMsat: spec.remoteMsat,
    toRemoteMsat: spec.localMsat,
    htlcs: [],
  });
}

/** The commitment fee the opener pays (no HTLC outputs: Trickle's updates are direct transfers). */
export function commitmentFeeSat(record: RsmcRecord): bigint {
  return commitmentBaseFeeSat(record.feeratePerKw, 0);
}

/** Is `signature` (64-byte compact, SIGHASH_ALL) the peer's valid signature on the funding input of `tx`? */
export function verifyRemoteSignature(record: CommitmentTerms, tx: Transaction, signature: Uint8Array): boolean {
  return verifyFundingSpendSignature(
    tx,
    { fundingScript: fundingScriptOf(record), fundingValueSat: record.fundingSat },
    remoteConfig(record).fundingPubkey,
    encodeScriptSignature(signature),
  );
}

/** Put both signatures (compact) on the funding input of a commitment or closing transaction. */
export function withFundingWitness(record: CommitmentTerms, tx: Transaction, localSignature: Uint8Array, remoteSignature: Uint8Array): Transaction {
  const signed = tx.clone();
  signed.setWitness(
    0,
    fundingWitness(
      record.local.fundingPubkey,
      encodeScriptSignature(localSignature),
      remoteConfig(record).fundingPubkey,
      encodeScriptSignature(remoteSignature),
    ),
  );
  return signed;
}

/** Scripts of the cooperative close (both shutdown scripts known). */
function closingScripts(record: RsmcRecord): { localScript: Uint8Array; remoteScript: Uint8Array } {
  const s = record.shutdown;
  if (!s?.remoteScript) throw new RsmcError('BAD_STATE', 'both shutdown scripts are needed');
  return { localScript: s.localScript, remoteScript: s.remoteScript };
}

/** BOLT 3 closing transaction at `feeSat`, from the latest (fully committed) balances. */
export function closingTransaction(record: RsmcRecord, feeSat: bigint): ClosingTransaction {
  const spec = record.localCommit!.spec;
  const { localScript, remoteScript } = closingScripts(record);
  return buildClosingTransaction({
    fundingOutpoint: fundingOutpointOf(record),
    fundingValueSat: record.fundingSat,
    localFundingPubkey: record.local.fundingPubkey,
    remoteFundingPubkey: remoteConfig(record).fundingPubkey,
    localScript,
    remoteScript,
    toLocalMsat: spec.localMsat,
    toRemoteMsat: spec.remoteMsat,
    feeSat,
    localIsOpener: record.role === 'opener',
    // The larger of the two dust limits, so neither side's policy is broken.
    dustLimitSat: record.local.dustLimitSat > remoteConfig(record).dustLimitSat ? record.local.dustLimitSat : remoteConfig(record).dustLimitSat,
  });
}

/** The fee we would propose for the closing transaction at the channel's fee rate. */
export function idealClosingFeeSat(record: RsmcRecord): bigint {
  const { localScript, remoteScript } = closingScripts(record);
  const weight = closingWeight({
    fundingOutpoint: fundingOutpointOf(record),
    localFundingPubkey: record.local.fundingPubkey,
    remoteFundingPubkey: remoteConfig(record).fundingPubkey,
    localScript,
    remoteScript,
  });
  return feeForWeight(record.feeratePerKw, weight);
}

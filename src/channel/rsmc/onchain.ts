/**
 * What a revocable channel does once its funding output is spent: tell which transaction spent it
 * (cooperative close, one of our commitments, one of the peer's — current or revoked), list the outputs
 * that are ours to sweep, and build and sign the transaction that sweeps each one (BOLT 5 §Unilateral
 * Close Handling / §Revoked Transaction Close Handling, with the scripts of BOLT 3). Also the watchtower
 * export: a signed penalty for a revoked peer commitment, built before it is ever broadcast.
 *
 * Pure functions of the record and the transaction; the only I/O is the Signer port. Trickle channels
 * carry no HTLC outputs (updates are direct transfers), so a commitment has at most to_local (P2WSH) and
 * to_remote (P2WPKH, option_static_remotekey); any other output is ignored.
 *
 * @example
 *   const spend = classifyFundingSpend(record, Transaction.fromBuffer(raw));
 *   for (const output of spend.pending) await buildResolution(record, closing, output, signer, feeratePerKw, tx);
 */
import { Transaction } from 'bitcoinjs-lib';
import type { OutPoint } from '../../chain/port.js';
import { bytesToHex, equalBytes } from '../../bytes.js';
import { decodeCommitmentNumber } from '../../onchain/rsmc/commitment.js';
import { derivePublicKey, deriveRevocationPublicKey, perCommitmentPoint } from '../../onchain/rsmc/keys.js';
import { buildPenaltyTransaction, signPenaltyTransaction } from '../../onchain/rsmc/penalty.js';
import { toLocalScript } from '../../onchain/rsmc/scripts.js';
import { commitmentIndex, PerCommitmentSecretStore } from '../../onchain/rsmc/shachain.js';
import { buildDelayedSweep, buildSweepTransaction, signDelayedSweep } from '../../onchain/rsmc/sweep.js';
import { p2wpkhOutput, p2wpkhScriptCode, p2wshOutput } from '../../onchain/script.js';
import { DUMMY_SIGNATURE, hashToTxid, signInput } from '../../onchain/tx.js';
import type { KeyLocator, Signer } from '../../signer/port.js';
import { obscuringFactorOf, remoteCommitment, remoteConfig } from './commitments.js';
import { RsmcError } from './errors.js';
import type { ClosingState, PendingOutput, RemoteCommit, ResolutionTx, RsmcRecord, SpendKind } from './types.js';

export interface FundingSpendClass {
  kind: SpendKind;
  /** The decoded commitment number (BOLT 3 obscured locktime/sequence); undefined for a non-commitment. */
  commitmentNumber: bigint | undefined;
  /** Outputs of the spend that are ours to sweep, validFromHeight left for the caller to fill. */
  pending: PendingOutput[];
  /** Paid straight to our payout or shutdown script (a cooperative close). */
  directSat: bigint;
}

/** A signed penalty a watchtower can broadcast if the revoked commitment `commitmentTxid` appears. */
export interface WatchtowerEntry {
  /** Hex. */
  channelId: string;
  commitmentNumber: bigint;
  commitmentTxid: string;
  penaltyTx: Uint8Array;
}

const UNKNOWN: FundingSpendClass = { kind: 'unknown', commitmentNumber: undefined, pending: [], directSat: 0n };

function key(record: RsmcRecord, family: KeyLocator['family']): KeyLocator {
  return { family, index: record.keyIndex };
}

function spendsFunding(record: RsmcRecord, tx: Transaction): boolean {
  const funding = record.fundingOutpoint;
  const input = tx.ins[0];
  return (
    funding !== undefined &&
    tx.ins.length === 1 &&
    input !== undefined &&
    hashToTxid(input.hash) === funding.txid &&
    input.index === funding.vout
  );
}

/** The peer's per-commitment secret for commitment `n`, if it revealed it (BOLT 3 shachain). */
function remoteSecret(record: RsmcRecord, n: bigint): Uint8Array | undefined {
  return PerCommitmentSecretStore.fromJSON(record.remoteSecrets).get(commitmentIndex(n));
}

/** Every per-commitment point of the peer we know for commitment `n`. */
function remotePointsFor(record: RsmcRecord, n: bigint, secret: Uint8Array | undefined): Uint8Array[] {
  const points: Uint8Array[] = [];
  if (secret) points.push(perCommitmentPoint(secret));
  if (record.remoteCommit?.number === n) points.push(record.remoteCommit.point);
  if (record.remoteNext?.number === n) points.push(record.remoteNext.point);
  if (record.remoteNextPoint && record.remoteCommit && record.remoteCommit.number + 1n === n) points.push(record.remoteNextPoint);
  return points;
}

/** The peer's to_local witness script for its commitment built on `point` (BOLT 3 §to_local Output). */
function remoteToLocalScript(record: RsmcRecord, point: Uint8Array): Uint8Array {
  const remote = remoteConfig(record);
  return toLocalScript(
    deriveRevocationPublicKey(record.local.revocationBasepoint, point),
    record.local.toSelfDelay,
    derivePublicKey(remote.delayedPaymentBasepoint, point),
  );
}

/** Our to_local witness script for our commitment built on our `point`. */
function localToLocalScript(record: RsmcRecord, point: Uint8Array): Uint8Array {
  const remote = remoteConfig(record);
  return toLocalScript(
    deriveRevocationPublicKey(remote.revocationBasepoint, point),
    remote.toSelfDelay,
    derivePublicKey(record.local.delayedPaymentBasepoint, point),
  );
}

function outputsPaying(tx: Transaction, txid: string, script: Uint8Array, purpose: PendingOutput['purpose']): PendingOutput[] {
  const found: PendingOutput[] = [];
  tx.outs.forEach((out, vout) => {
    if (equalBytes(out.script, script)) found.push({ purpose, outpoint: { txid, vout }, valueSat: out.value, validFromHeight: undefined });
  });
  return found;
}

function isP2wsh(script: Uint8Array): boolean {
  return script.length === 34 && script[0] === 0x00 && script[1] === 0x20;
}

/**
 * What spent the funding output, and which of its outputs are ours to sweep.
 *
 * A commitment is recognised by its obscured number (BOLT 3 §Commitment Transaction: locktime upper byte
 * 0x20, sequence upper byte 0x80). Whose it is: our latest by txid; the peer's if it pays our static
 * payment key (P2WPKH of our payment basepoint) or has the peer's to_local for a point we know; ours if
 * it pays the peer's static payment key. A commitment with neither (its to_remote below dust, and no
 * point of the peer's to match) is taken as ours when its number is one we have had.
 *
 * Our own to_local cannot be rebuilt without the signer (our per-commitment point), so it is taken to be
 * the commitment's P2WSH output: with no HTLC outputs there is no other. buildResolution checks the
 * rebuilt script against it before signing.
 *
 * Never throws on a transaction it cannot place: `unknown` (also for a record with no peer or funding yet).
 */
export function classifyFundingSpend(record: RsmcRecord, tx: Transaction): FundingSpendClass {
  const remote = record.remote;
  if (!remote || !spendsFunding(record, tx)) return UNKNOWN;
  const txid = hashToTxid(tx.getHash());
  const n = decodeCommitmentNumber(tx.locktime, tx.ins[0]!.sequence, obscuringFactorOf(record));

  if (n === undefined) {
    const ours = [record.payoutScript, ...(record.shutdown ? [record.shutdown.localScript] : [])];
    const directSat = tx.outs.reduce((sum, out) => (ours.some((s) => equalBytes(s, out.script)) ? sum + out.value : sum), 0n);
    return { kind: 'cooperative', commitmentNumber: undefined, pending: [], directSat };
  }

  const localTxidMatch = record.localCommit?.txid === txid;
  const ourToRemote = outputsPaying(tx, txid, p2wpkhOutput(record.local.paymentBasepoint), 'to-remote-sweep');
  const secret = localTxidMatch ? undefined : remoteSecret(record, n);
  let theirToLocal: PendingOutput | undefined;
  if (!localTxidMatch) {
    for (const point of remotePointsFor(record, n, secret)) {
      theirToLocal = outputsPaying(tx, txid, p2wshOutput(remoteToLocalScript(record, point)), 'penalty')[0];
      if (theirToLocal) break;
    }
  }

  if (!localTxidMatch && (ourToRemote.length > 0 || theirToLocal)) {
    const remoteNumber = record.remoteCommit?.number;
    if (remoteNumber !== undefined && n < remoteNumber && secret) {
      // BOLT 5 §Revoked Transaction Close Handling: take to_local with the revocation key at once.
      return { kind: 'remote-revoked', commitmentNumber: n, pending: [...(theirToLocal ? [theirToLocal] : []), ...ourToRemote], directSat: 0n };
    }
    const kind = n === remoteNumber || n === record.remoteNext?.number ? 'remote-latest' : 'remote-unknown';
    return { kind, commitmentNumber: n, pending: ourToRemote, directSat: 0n };
  }

  const theirToRemote = p2wpkhOutput(remote.paymentBasepoint);
  const localNumber = record.localCommit?.number;
  const looksOurs = localTxidMatch || tx.outs.some((out) => equalBytes(out.script, theirToRemote)) || (localNumber !== undefined && n <= localNumber);
  if (!looksOurs) return { kind: 'remote-unknown', commitmentNumber: n, pending: [], directSat: 0n };
  const pending: PendingOutput[] = [];
  tx.outs.forEach((out, vout) => {
    if (isP2wsh(out.script)) pending.push({ purpose: 'to-local-sweep', outpoint: { txid, vout }, valueSat: out.value, validFromHeight: undefined });
  });
  // A number above our latest can only be a commitment of ours our record no longer knows (restored
  // from a backup): it is our newest state, and its to_local is swept the same way.
  const kind = localTxidMatch || localNumber === undefined || n >= localNumber ? 'local-latest' : 'local-revoked';
  return { kind, commitmentNumber: n, pending, directSat: 0n };
}

function checkSpentOutput(spendTx: Transaction | undefined, outpoint: OutPoint, script: Uint8Array, valueSat: bigint): void {
  if (!spendTx) return;
  const out = spendTx.outs[outpoint.vout];
  if (hashToTxid(spendTx.getHash()) !== outpoint.txid || !out) {
    throw new TypeError('"spendTx" expected the transaction that created output.outpoint');
  }
  if (!equalBytes(out.script, script) || out.value !== valueSat) {
    throw new RsmcError('BAD_STATE', `output ${outpoint.txid}:${outpoint.vout} is not the script this channel would sweep`);
  }
}

function commitmentNumberOf(closing: ClosingState): bigint {
  if (closing.commitmentNumber === undefined) throw new RsmcError('BAD_STATE', 'the funding spend is not a commitment');
  return closing.commitmentNumber;
}

function resolution(purpose: ResolutionTx['purpose'], tx: Transaction, spends: OutPoint, valueSat: bigint): ResolutionTx {
  return { purpose, txid: hashToTxid(tx.getHash()), tx: tx.toBuffer(), spends: [spends], valueSat, confirmedHeight: undefined };
}

/**
 * Build and sign the transaction that sweeps `output` of the funding spend to record.payoutScript at
 * `feeratePerKw`:
 *  - 'penalty': the peer's revoked to_local, by the revocation branch (BOLT 3 §Revoked commitment);
 *  - 'to-local-sweep': our to_local by the delayed branch, input nSequence = to_self_delay (BIP 68/112):
 *    broadcastable only once the commitment has that many confirmations;
 *  - 'to-remote-sweep': our static to_remote P2WPKH (option_static_remotekey), at once.
 * `spendTx`, the funding spend, lets it check the output's script before signing (recommended).
 */
export async function buildResolution(
  record: RsmcRecord,
  closing: ClosingState,
  output: PendingOutput,
  signer: Signer,
  feeratePerKw: bigint,
  spendTx?: Transaction,
): Promise<ResolutionTx> {
  const { outpoint, valueSat } = output;
  switch (output.purpose) {
    case 'penalty': {
      const n = commitmentNumberOf(closing);
      const secret = remoteSecret(record, n);
      if (!secret) throw new RsmcError('BAD_STATE', `the peer has not revealed the secret of commitment ${n}`);
      const point = perCommitmentPoint(secret);
      const witnessScript = remoteToLocalScript(record, point);
      checkSpentOutput(spendTx, outpoint, p2wshOutput(witnessScript), valueSat);
      const penalty = buildPenaltyTransaction(
        [{ kind: 'to_local', outpoint, valueSat, witnessScript }],
        deriveRevocationPublicKey(record.local.revocationBasepoint, point),
        record.payoutScript,
        feeratePerKw,
      );
      await signPenaltyTransaction(signer, key(record, 'revocation'), secret, penalty, { kind: 'sweep', sweep: 'penalty', number: n });
      return resolution('penalty', penalty.tx, outpoint, penalty.outputValueSat);
    }
    case 'to-local-sweep': {
      const n = commitmentNumberOf(closing);
      const point = await signer.perCommitmentPoint(key(record, 'commitment'), n);
      const witnessScript = localToLocalScript(record, point);
      checkSpentOutput(spendTx, outpoint, p2wshOutput(witnessScript), valueSat);
      const delayed = { outpoint, valueSat, witnessScript, toSelfDelay: remoteConfig(record).toSelfDelay };
      const sweep = buildDelayedSweep(delayed, record.payoutScript, feeratePerKw);
      await signDelayedSweep(signer, key(record, 'delayed'), point, sweep, delayed, { kind: 'sweep', sweep: 'to-local', number: n });
      return resolution('to-local-sweep', sweep.tx, outpoint, sweep.outputValueSat);
    }
    case 'to-remote-sweep': {
      const pubkey = await signer.getPublicKey(key(record, 'payment'));
      checkSpentOutput(spendTx, outpoint, p2wpkhOutput(pubkey), valueSat);
      const sweep = buildSweepTransaction(
        [{ outpoint, valueSat, sequence: 0xffffffff, witnessPlaceholder: [DUMMY_SIGNATURE, pubkey] }],
        record.payoutScript,
        feeratePerKw,
      );
      const sig = await signInput(signer, sweep.tx, {
        key: key(record, 'payment'),
        context: { kind: 'sweep', sweep: 'to-remote', number: commitmentNumberOf(closing) },
        inputIndex: 0,
        scriptCode: p2wpkhScriptCode(pubkey),
        valueSat,
      });
      sweep.tx.setWitness(0, [sig, pubkey]);
      return resolution('to-remote-sweep', sweep.tx, outpoint, sweep.outputValueSat);
    }
    default:
      throw new TypeError('"output.purpose" expected penalty, to-local-sweep or to-remote-sweep');
  }
}

/**
 * A signed penalty for the peer's revoked commitment `revoked`, for a watchtower to hold: the commitment
 * is rebuilt from the record (its txid must match `revoked.txid`) and its to_local is swept with the
 * revocation key, the secret taken from record.remoteSecrets. undefined when the commitment has no
 * to_local (the peer's balance was below its dust limit): there is nothing to punish.
 */
export async function exportRevokedState(
  record: RsmcRecord,
  revoked: RemoteCommit,
  signer: Signer,
  feeratePerKw: bigint,
): Promise<WatchtowerEntry | undefined> {
  if (!record.channelId) throw new RsmcError('BAD_STATE', 'the channel id is not known yet');
  const commitment = remoteCommitment(record, revoked.number, revoked.spec, revoked.point);
  if (commitment.txid !== revoked.txid) {
    throw new RsmcError('BAD_STATE', `revoked commitment ${revoked.number} does not rebuild to txid ${revoked.txid}`);
  }
  const vout = commitment.outputs.findIndex((o) => o.kind === 'to_local');
  const toLocal = commitment.outputs[vout];
  if (!toLocal?.witnessScript) return undefined;
  const secret = remoteSecret(record, revoked.number);
  if (!secret || !equalBytes(perCommitmentPoint(secret), revoked.point)) {
    throw new RsmcError('BAD_STATE', `no matching revealed secret for commitment ${revoked.number}`);
  }
  const outpoint = { txid: commitment.txid, vout };
  const penalty = buildPenaltyTransaction(
    [{ kind: 'to_local', outpoint, valueSat: toLocal.valueSat, witnessScript: toLocal.witnessScript }],
    deriveRevocationPublicKey(record.local.revocationBasepoint, revoked.point),
    record.payoutScript,
    feeratePerKw,
  );
  await signPenaltyTransaction(signer, key(record, 'revocation'), secret, penalty, { kind: 'sweep', sweep: 'penalty', number: revoked.number });
  return { channelId: bytesToHex(record.channelId), commitmentNumber: revoked.number, commitmentTxid: commitment.txid, penaltyTx: penalty.tx.toBuffer() };
}

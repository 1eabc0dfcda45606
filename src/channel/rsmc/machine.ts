/**
 * The revocable (RSMC) channel as a pure state machine: (record, input) → (record, effects). No I/O: the
 * runtime (./node.ts) executes the effects in order — `persist` before any `send` that depends on it, so
 * no signature or revocation secret leaves before the state that produced it is durable.
 *
 * Protocol: BOLT 2 (open_channel … channel_ready, commitment_signed / revoke_and_ack, channel_reestablish,
 * shutdown / closing_signed) over BOLT 3 transactions, with two Trickle choices (docs/protocol.md §3.5.1):
 * balances move by `update_transfer` (a direct transfer, committed like any BOLT 2 update; no HTLC
 * outputs), and the commitment fee rate is fixed at open (no update_fee). Dual funding exchanges
 * `funding_contribution` and `funding_tx_signatures` around BOLT 2's funding_created / funding_signed.
 *
 * Safety rules enforced here (issue: "safety invariants"):
 *  - a commitment for the peer is signed only as remoteCommit.number + 1 while no other is outstanding,
 *    and stored (remoteNext) before it is sent; a retransmission sends the stored signature;
 *  - our previous commitment is revoked only after the peer's signature on the next one verified and the
 *    next one is durably stored (persist, then release-secret);
 *  - only the secret of localCommit.number − 1 is ever released, never the current one;
 *  - every spec sums to the capacity; a commitment that would not is never built.
 */
import { Transaction } from 'bitcoinjs-lib';
import { bytesToHex, equalBytes } from '../../bytes.js';
import { buildFundingTransaction, satPerVbFromPerKw, type FundingContribution, type WalletCoin } from '../../onchain/funding.js';
import { perCommitmentPoint } from '../../onchain/rsmc/keys.js';
import { commitmentIndex, PerCommitmentSecretStore } from '../../onchain/rsmc/shachain.js';
import { p2wpkhOutput, p2wshOutput } from '../../onchain/script.js';
import { hashToTxid, txidToHash } from '../../onchain/tx.js';
import type { NodeId } from '../../transport/port.js';
import type { WireMessage } from '../../wire/index.js';
import type { ContributedInput, OpenChannelMsg } from '../../wire/rsmc-open.js';
import {
  closingTransaction,
  commitmentFeeSat,
  deriveChannelId,
  fundingScriptOf,
  idealClosingFeeSat,
  localCommitment,
  remoteCommitment,
  verifyRemoteSignature,
  withFundingWitness,
} from './commitments.js';
import { RSMC_WIRE_CODES, RsmcError, rsmcErrorCodeOf, type RsmcErrorCode } from './errors.js';
import { classifyFundingSpend } from './onchain.js';
import type {
  Basepoints,
  Change,
  ClosingState,
  PartyConfig,
  RsmcContext,
  RsmcEffect,
  RsmcEvent,
  RsmcInput,
  RsmcOutcomeKind,
  RsmcPolicy,
  RsmcRecord,
  RsmcStep,
  Spec,
} from './types.js';

export const DEFAULT_RSMC_POLICY: RsmcPolicy = {
  toSelfDelay: 144,
  maxToSelfDelay: 2016,
  dustLimitSat: 546n,
  reservePpm: 10_000,
  minimumDepth: 3,
  maxMinimumDepth: 12,
  minFundingSat: 10_000n,
  maxFundingSat: 100_000_000n,
  minFeeratePerKw: 253n,
  maxFeeratePerKw: 100_000n,
  maxContributionSat: 0n,
};

/** BOLT 2: dust_limit_satoshis below 354 makes outputs non-standard. */
const MIN_DUST_LIMIT_SAT = 354n;
const MAX_DUST_LIMIT_SAT = 20_000n;
const ZERO32 = new Uint8Array(32);

export interface OpenerParams {
  peer: NodeId;
  tempChannelId: Uint8Array;
  keyIndex: number;
  basepoints: Basepoints;
  /** Our per-commitment point for commitment 0. */
  firstPoint: Uint8Array;
  /** Our per-commitment point for commitment 1 (sent in channel_ready). */
  secondPoint: Uint8Array;
  fundingSat: bigint;
  /** Dual funding: how much we ask the peer to add (0: single-funded). */
  requestedRemoteSat: bigint;
  pushMsat: bigint;
  feeratePerKw: bigint;
  payoutScript: Uint8Array;
}

export interface AccepterParams {
  peer: NodeId;
  keyIndex: number;
  basepoints: Basepoints;
  firstPoint: Uint8Array;
  secondPoint: Uint8Array;
  payoutScript: Uint8Array;
}

export function isLive(record: RsmcRecord): boolean {
  return record.phase !== 'closed' && record.phase !== 'aborted';
}

// ---------------------------------------------------------------------------------------------------
// helpers

/** A working copy: lists and nested objects copied so the input record is never modified. */
function copy(r: RsmcRecord): RsmcRecord {
  return {
    ...r,
    localChanges: { proposed: [...r.localChanges.proposed], signed: [...r.localChanges.signed], acked: [...r.localChanges.acked] },
    remoteChanges: { proposed: [...r.remoteChanges.proposed], acked: [...r.remoteChanges.acked], signed: [...r.remoteChanges.signed] },
    shutdown: r.shutdown ? { ...r.shutdown } : undefined,
    closing: r.closing ? { ...r.closing, pending: [...r.closing.pending], resolutions: [...r.closing.resolutions] } : undefined,
  };
}

function channelIdOf(r: RsmcRecord): Uint8Array {
  return r.channelId ?? r.tempChannelId;
}

function ev(event: RsmcEvent): RsmcEffect {
  return { kind: 'event', event };
}

function send(message: WireMessage): RsmcEffect {
  return { kind: 'send', message };
}

function sum(changes: Change[]): bigint {
  let total = 0n;
  for (const c of changes) total += c.amountMsat;
  return total;
}

/** Apply our changes and the peer's to a spec (our view). Throws if a balance would go negative. */
function reduce(spec: Spec, ours: Change[], theirs: Change[]): Spec {
  const out = sum(ours);
  const inc = sum(theirs);
  const next = { localMsat: spec.localMsat - out + inc, remoteMsat: spec.remoteMsat + out - inc };
  if (next.localMsat < 0n || next.remoteMsat < 0n) throw new RsmcError('INSUFFICIENT_BALANCE', 'a balance would go negative');
  return next;
}

function sameSpec(a: Spec, b: Spec): boolean {
  return a.localMsat === b.localMsat && a.remoteMsat === b.remoteMsat;
}

function feeMsat(r: RsmcRecord): bigint {
  return commitmentFeeSat(r) * 1000n;
}

/** Refuse a message: the record is unchanged; the peer gets a warning, we get an event. */
function rejection(record: RsmcRecord, code: RsmcErrorCode, message: string): RsmcStep {
  return {
    record,
    effects: [
      send({ type: 'warning', channelId: channelIdOf(record), code: RSMC_WIRE_CODES[code], message }),
      ev({ type: 'rejected', code, message }),
    ],
  };
}

function unchanged(record: RsmcRecord): RsmcStep {
  return { record, effects: [] };
}

function hasPendingUpdates(r: RsmcRecord): boolean {
  const l = r.localChanges;
  const m = r.remoteChanges;
  return (
    r.remoteNext !== undefined ||
    l.proposed.length + l.signed.length + l.acked.length + m.proposed.length + m.acked.length + m.signed.length > 0
  );
}

/** Can updates and commitments flow (after channel_reestablish in this session)? */
function synced(r: RsmcRecord): boolean {
  return r.reestablishSent && r.reestablishReceived;
}

/**
 * Fail the channel (BOLT 1/2): tell the peer with `error`, record why, and — once a commitment of ours
 * exists and we are not stale — close unilaterally with our latest commitment. Before that, abandon.
 */
function failChannel(record: RsmcRecord, code: RsmcErrorCode, message: string, tellPeer = true): RsmcStep {
  const r = copy(record);
  const effects: RsmcEffect[] = [];
  r.failure = { code, message };
  if (r.phase === 'closing' || r.phase === 'closed' || r.phase === 'aborted') {
    return { record: r, effects: [{ kind: 'persist', reason: 'failed' }, ev({ type: 'failed', code, message })] };
  }
  if (!r.localCommit || (!r.fundingBroadcast && r.role === 'opener' && r.phase !== 'awaiting_ready' && r.phase !== 'open' && r.phase !== 'shutting_down') || unsignedDualAccepter(r)) {
    return abort(r, code, message, tellPeer);
  }
  r.phase = 'closing';
  effects.push({ kind: 'persist', reason: 'failed' });
  if (tellPeer) effects.push(send({ type: 'error', channelId: channelIdOf(r), code: RSMC_WIRE_CODES[code], message }));
  effects.push(ev({ type: 'failed', code, message }), ev({ type: 'phase', phase: 'closing' }));
  if (!r.stale) effects.push({ kind: 'broadcast-commitment' });
  return { record: r, effects };
}

/**
 * A dual-funding accepter that has not signed its funding inputs yet: the funding cannot be valid without
 * them, so nothing can reach the chain and the open may be abandoned, releasing our coins.
 */
function unsignedDualAccepter(r: RsmcRecord): boolean {
  return r.role === 'accepter' && r.localFundingSat > 0n && r.phase === 'funding_signed' && !r.fundingBroadcast && !hasOurWitnesses(r);
}

/** Abandon an open before any money is committed: release our coins. */
function abort(record: RsmcRecord, code: RsmcErrorCode, message: string, tellPeer: boolean): RsmcStep {
  const r = { ...record };
  r.phase = 'aborted';
  r.failure = { code, message };
  const effects: RsmcEffect[] = [{ kind: 'persist', reason: 'aborted' }];
  if (r.localInputs.length > 0) effects.push({ kind: 'release-coins' });
  if (tellPeer) effects.push(send({ type: 'error', channelId: channelIdOf(r), code: RSMC_WIRE_CODES[code], message }));
  effects.push(ev({ type: 'failed', code, message }), ev({ type: 'phase', phase: 'aborted' }));
  return { record: r, effects };
}

function checkPartyParams(
  msg: { dustLimitSat: bigint; channelReserveSat: bigint; toSelfDelay: number; maxAcceptedHtlcs: number },
  policy: RsmcPolicy,
): string | undefined {
  if (msg.dustLimitSat < MIN_DUST_LIMIT_SAT || msg.dustLimitSat > MAX_DUST_LIMIT_SAT) return `dust limit ${msg.dustLimitSat} sat outside ${MIN_DUST_LIMIT_SAT}..${MAX_DUST_LIMIT_SAT}`;
  if (msg.toSelfDelay > policy.maxToSelfDelay) return `to_self_delay ${msg.toSelfDelay} above our maximum ${policy.maxToSelfDelay}`;
  if (msg.toSelfDelay < 1) return 'to_self_delay must be at least 1';
  if (msg.maxAcceptedHtlcs > 483) return 'max_accepted_htlcs above 483';
  return undefined;
}

function reserveFor(totalSat: bigint, policy: RsmcPolicy): bigint {
  const r = (totalSat * BigInt(policy.reservePpm)) / 1_000_000n;
  return r < policy.dustLimitSat ? policy.dustLimitSat : r;
}

function partyFromMessage(msg: {
  fundingPubkey: Uint8Array;
  revocationBasepoint: Uint8Array;
  paymentBasepoint: Uint8Array;
  delayedPaymentBasepoint: Uint8Array;
  htlcBasepoint: Uint8Array;
  dustLimitSat: bigint;
  channelReserveSat: bigint;
  toSelfDelay: number;
  htlcMinimumMsat: bigint;
  maxHtlcValueInFlightMsat: bigint;
  maxAcceptedHtlcs: number;
}): PartyConfig {
  return {
    fundingPubkey: msg.fundingPubkey,
    revocationBasepoint: msg.revocationBasepoint,
    paymentBasepoint: msg.paymentBasepoint,
    delayedPaymentBasepoint: msg.delayedPaymentBasepoint,
    htlcBasepoint: msg.htlcBasepoint,
    dustLimitSat: msg.dustLimitSat,
    channelReserveSat: msg.channelReserveSat,
    toSelfDelay: msg.toSelfDelay,
    htlcMinimumMsat: msg.htlcMinimumMsat,
    maxHtlcValueInFlightMsat: msg.maxHtlcValueInFlightMsat,
    maxAcceptedHtlcs: msg.maxAcceptedHtlcs,
  };
}

function localParty(basepoints: Basepoints, policy: RsmcPolicy, reserveSat: bigint, capacitySat: bigint): PartyConfig {
  return {
    ...basepoints,
    dustLimitSat: policy.dustLimitSat,
    channelReserveSat: reserveSat,
    toSelfDelay: policy.toSelfDelay,
    htlcMinimumMsat: 1n,
    maxHtlcValueInFlightMsat: capacitySat * 1000n,
    // Trickle moves balances by update_transfer and never offers HTLCs on these channels.
    maxAcceptedHtlcs: 0,
  };
}

function emptyRecord(base: Pick<RsmcRecord, 'role' | 'peer' | 'tempChannelId' | 'keyIndex' | 'local' | 'payoutScript' | 'localCurrentPoint' | 'localNextPoint'>): RsmcRecord {
  return {
    ...base,
    phase: 'negotiating',
    channelId: undefined,
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
    closing: undefined,
    outcome: undefined,
    failure: undefined,
    stale: false,
    reestablishSent: false,
    reestablishReceived: false,
  };
}

// ---------------------------------------------------------------------------------------------------
// opening

export function openerStart(p: OpenerParams, policy: RsmcPolicy): RsmcStep {
  if (p.fundingSat < policy.minFundingSat || p.fundingSat > policy.maxFundingSat) {
    throw new RsmcError('TERMS_REJECTED', `funding must be within ${policy.minFundingSat}..${policy.maxFundingSat} sat`);
  }
  if (p.requestedRemoteSat < 0n || p.pushMsat < 0n || p.pushMsat > p.fundingSat * 1000n) throw new RsmcError('BAD_AMOUNT', 'pushMsat must be within 0..fundingSat × 1000');
  if (p.feeratePerKw < policy.minFeeratePerKw || p.feeratePerKw > policy.maxFeeratePerKw) {
    throw new RsmcError('TERMS_REJECTED', `fee rate ${p.feeratePerKw} sat/kW outside ${policy.minFeeratePerKw}..${policy.maxFeeratePerKw}`);
  }
  const total = p.fundingSat + p.requestedRemoteSat;
  const r = emptyRecord({
    role: 'opener',
    peer: p.peer,
    tempChannelId: p.tempChannelId,
    keyIndex: p.keyIndex,
    local: localParty(p.basepoints, policy, reserveFor(total, policy), total),
    payoutScript: p.payoutScript,
    localCurrentPoint: p.firstPoint,
    localNextPoint: p.secondPoint,
  });
  r.fundingSat = p.fundingSat;
  r.localFundingSat = p.fundingSat;
  r.pushMsat = p.pushMsat;
  r.feeratePerKw = p.feeratePerKw;
  const open: OpenChannelMsg = {
    type: 'open_channel',
    temporaryChannelId: p.tempChannelId,
    fundingSat: p.fundingSat,
    pushMsat: p.pushMsat,
    dustLimitSat: r.local.dustLimitSat,
    maxHtlcValueInFlightMsat: r.local.maxHtlcValueInFlightMsat,
    channelReserveSat: r.local.channelReserveSat,
    htlcMinimumMsat: r.local.htlcMinimumMsat,
    feeratePerKw: p.feeratePerKw,
    toSelfDelay: r.local.toSelfDelay,
    maxAcceptedHtlcs: r.local.maxAcceptedHtlcs,
    fundingPubkey: r.local.fundingPubkey,
    revocationBasepoint: r.local.revocationBasepoint,
    paymentBasepoint: r.local.paymentBasepoint,
    delayedPaymentBasepoint: r.local.delayedPaymentBasepoint,
    htlcBasepoint: r.local.htlcBasepoint,
    firstPerCommitmentPoint: p.firstPoint,
  };
  if (p.requestedRemoteSat > 0n) open.requestedAccepterFundingSat = p.requestedRemoteSat;
  return { record: r, effects: [send(open), ev({ type: 'phase', phase: 'negotiating' })] };
}

export function accepterStart(
  msg: OpenChannelMsg,
  p: AccepterParams,
  ctx: RsmcContext,
): { ok: true; step: RsmcStep } | { ok: false; code: RsmcErrorCode; message: string } {
  const policy = ctx.policy;
  const refuse = (message: string) => ({ ok: false as const, code: 'TERMS_REJECTED' as const, message });
  const contribution = (() => {
    const asked = msg.requestedAccepterFundingSat ?? 0n;
    return asked < policy.maxContributionSat ? asked : policy.maxContributionSat;
  })();
  const total = msg.fundingSat + contribution;
  if (total < policy.minFundingSat || total > policy.maxFundingSat) return refuse(`capacity must be within ${policy.minFundingSat}..${policy.maxFundingSat} sat`);
  if (msg.pushMsat > msg.fundingSat * 1000n) return refuse('push_msat above the opener’s funding');
  if (msg.feeratePerKw < policy.minFeeratePerKw || msg.feeratePerKw > policy.maxFeeratePerKw) return refuse(`fee rate ${msg.feeratePerKw} sat/kW outside our range`);
  const bad = checkPartyParams(msg, policy);
  if (bad) return refuse(bad);
  if (msg.channelReserveSat > total / 10n) return refuse('the reserve asked of us is above 10% of the capacity');
  const r = emptyRecord({
    role: 'accepter',
    peer: p.peer,
    tempChannelId: msg.temporaryChannelId,
    keyIndex: p.keyIndex,
    local: localParty(p.basepoints, policy, reserveFor(total, policy), total),
    payoutScript: p.payoutScript,
    localCurrentPoint: p.firstPoint,
    localNextPoint: p.secondPoint,
  });
  if (r.local.channelReserveSat < msg.dustLimitSat || msg.channelReserveSat < r.local.dustLimitSat) return refuse('reserve below a dust limit');
  r.remote = partyFromMessage(msg);
  r.fundingSat = total;
  r.localFundingSat = contribution;
  r.remoteFundingSat = msg.fundingSat;
  r.pushMsat = msg.pushMsat;
  r.feeratePerKw = msg.feeratePerKw;
  r.minimumDepth = policy.minimumDepth;
  r.remoteNextPoint = msg.firstPerCommitmentPoint;
  // BOLT 2: the opener must be able to pay the first commitment's fee.
  if (msg.fundingSat * 1000n - msg.pushMsat < feeMsat(r)) return refuse('the opener cannot pay the commitment fee');
  const accept: WireMessage = {
    type: 'accept_channel',
    temporaryChannelId: msg.temporaryChannelId,
    fundingSat: contribution,
    dustLimitSat: r.local.dustLimitSat,
    maxHtlcValueInFlightMsat: r.local.maxHtlcValueInFlightMsat,
    channelReserveSat: r.local.channelReserveSat,
    htlcMinimumMsat: r.local.htlcMinimumMsat,
    minimumDepth: r.minimumDepth,
    toSelfDelay: r.local.toSelfDelay,
    maxAcceptedHtlcs: r.local.maxAcceptedHtlcs,
    fundingPubkey: r.local.fundingPubkey,
    revocationBasepoint: r.local.revocationBasepoint,
    paymentBasepoint: r.local.paymentBasepoint,
    delayedPaymentBasepoint: r.local.delayedPaymentBasepoint,
    htlcBasepoint: r.local.htlcBasepoint,
    firstPerCommitmentPoint: p.firstPoint,
  };
  const effects: RsmcEffect[] = [];
  // Dual-funded: persist first so a restart releases whatever coins we reserve later.
  if (contribution > 0n) effects.push({ kind: 'persist', reason: 'accepted' });
  effects.push(send(accept), ev({ type: 'phase', phase: 'negotiating' }));
  return { ok: true, step: { record: r, effects } };
}

function initialSpec(r: RsmcRecord): Spec {
  const openerMsat = (r.role === 'opener' ? r.localFundingSat : r.remoteFundingSat) * 1000n - r.pushMsat;
  const accepterMsat = (r.role === 'opener' ? r.remoteFundingSat : r.localFundingSat) * 1000n + r.pushMsat;
  return r.role === 'opener' ? { localMsat: openerMsat, remoteMsat: accepterMsat } : { localMsat: accepterMsat, remoteMsat: openerMsat };
}

function onAcceptChannel(record: RsmcRecord, msg: Extract<WireMessage, { type: 'accept_channel' }>, ctx: RsmcContext): RsmcStep {
  if (record.role !== 'opener' || record.phase !== 'negotiating' || record.remote) return rejection(record, 'BAD_STATE', 'accept_channel not expected');
  const policy = ctx.policy;
  const bad = checkPartyParams(msg, policy);
  const requested = record.local.maxHtlcValueInFlightMsat / 1000n - record.localFundingSat;
  const fail = (message: string) => abort(copy(record), 'TERMS_REJECTED', message, true);
  if (bad) return fail(bad);
  if (msg.minimumDepth > policy.maxMinimumDepth) return fail(`minimum depth ${msg.minimumDepth} above our maximum ${policy.maxMinimumDepth}`);
  if (msg.fundingSat > requested) return fail('the accepter added more than we asked for');
  const r = copy(record);
  r.remote = partyFromMessage(msg);
  r.remoteFundingSat = msg.fundingSat;
  r.fundingSat = r.localFundingSat + msg.fundingSat;
  r.minimumDepth = Math.max(1, msg.minimumDepth);
  r.remoteNextPoint = msg.firstPerCommitmentPoint;
  if (msg.channelReserveSat > r.fundingSat / 10n) return fail('the reserve asked of us is above 10% of the capacity');
  if (r.local.channelReserveSat < msg.dustLimitSat || msg.channelReserveSat < r.local.dustLimitSat) return fail('reserve below a dust limit');
  if (msg.fundingSat > 0n) r.phase = 'contributing';
  return { record: r, effects: [{ kind: 'select-coins', amountSat: r.localFundingSat }] };
}

function contributionMessage(r: RsmcRecord): WireMessage {
  return {
    type: 'funding_contribution',
    temporaryChannelId: r.tempChannelId,
    inputs: r.localInputs.map(({ coin }) => ({
      txid: txidToHash(coin.outpoint.txid),
      vout: coin.outpoint.vout,
      valueSat: coin.valueSat,
      script: p2wpkhOutput(coin.pubkey),
    })),
    ...(r.localChangeScript ? { changeScript: r.localChangeScript } : {}),
  };
}

function onCoins(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'coins' }>): RsmcStep {
  if ((record.phase !== 'negotiating' && record.phase !== 'contributing') || record.localInputs.length > 0) return unchanged(record);
  const r = copy(record);
  r.localInputs = input.coins.map((coin) => ({ coin }));
  r.localChangeScript = input.changeScript;
  const effects: RsmcEffect[] = [{ kind: 'persist', reason: 'contributed' }];
  const dual = r.remoteFundingSat > 0n && r.localFundingSat > 0n;
  if (!dual) return buildFunding(r, effects);
  effects.push(send(contributionMessage(r)));
  // The opener goes first; the accepter answers and both then build the same transaction.
  if (r.role === 'accepter') return buildFunding(r, effects);
  return { record: r, effects };
}

function isP2wpkh(script: Uint8Array): boolean {
  return script.length === 22 && script[0] === 0x00 && script[1] === 0x14;
}

function onFundingContribution(record: RsmcRecord, msg: Extract<WireMessage, { type: 'funding_contribution' }>): RsmcStep {
  if (record.phase !== 'contributing' && !(record.role === 'accepter' && record.phase === 'negotiating' && record.localFundingSat > 0n)) {
    return rejection(record, 'BAD_STATE', 'funding_contribution not expected');
  }
  if (record.remoteInputs.length > 0) return rejection(record, 'BAD_STATE', 'contribution already received');
  if (msg.inputs.length === 0) return abort(copy(record), 'FUNDING_MISMATCH', 'a contribution without inputs', true);
  let total = 0n;
  for (const i of msg.inputs) {
    // Funding weights assume P2WPKH inputs (src/onchain/funding.ts); anything else would misprice the fee.
    if (!isP2wpkh(i.script)) return abort(copy(record), 'FUNDING_MISMATCH', 'contributed inputs must be P2WPKH', true);
    total += i.valueSat;
  }
  if (total < record.remoteFundingSat) return abort(copy(record), 'FUNDING_MISMATCH', 'contributed inputs do not cover the contribution', true);
  if (msg.changeScript && !isStandardChange(msg.changeScript)) return abort(copy(record), 'FUNDING_MISMATCH', 'non-standard change script', true);
  const r = copy(record);
  r.phase = 'contributing';
  r.remoteInputs = msg.inputs.map((i: ContributedInput) => ({ outpoint: { txid: hashToTxid(i.txid), vout: i.vout }, valueSat: i.valueSat, script: i.script }));
  r.remoteChangeScript = msg.changeScript;
  if (r.role === 'accepter') return { record: r, effects: [{ kind: 'select-coins', amountSat: r.localFundingSat }] };
  return buildFunding(r, []);
}

function isStandardChange(script: Uint8Array): boolean {
  return isP2wpkh(script) || (script.length === 34 && script[0] === 0x00 && script[1] === 0x20);
}

/** Both sides build the identical funding transaction from the contributions (BIP 69 order). */
function fundingFor(r: RsmcRecord): ReturnType<typeof buildFundingTransaction> {
  const remote = r.remote!;
  const ours: FundingContribution = {
    coins: r.localInputs.map((i) => i.coin),
    amountSat: r.localFundingSat,
    changeScript: r.localChangeScript ?? r.payoutScript,
  };
  const contributions: FundingContribution[] = [ours];
  if (r.remoteInputs.length > 0) {
    const theirs: FundingContribution = {
      // Only outpoint and value matter for the peer's coins (we never sign them); the pubkey field is
      // a placeholder the builder checks for shape only.
      coins: r.remoteInputs.map((i): WalletCoin => ({ outpoint: i.outpoint, valueSat: i.valueSat, pubkey: remote.fundingPubkey, key: { family: 'wallet', index: 0 } })),
      amountSat: r.remoteFundingSat,
      changeScript: r.remoteChangeScript ?? p2wpkhOutput(remote.paymentBasepoint),
    };
    if (r.role === 'opener') contributions.push(theirs);
    else contributions.unshift(theirs);
  }
  const [openerKey, accepterKey] = r.role === 'opener' ? [r.local.fundingPubkey, remote.fundingPubkey] : [remote.fundingPubkey, r.local.fundingPubkey];
  return buildFundingTransaction({ fundingPubkeys: [openerKey, accepterKey], contributions, feerateSatPerVb: satPerVbFromPerKw(r.feeratePerKw) });
}

function buildFunding(r: RsmcRecord, effects: RsmcEffect[]): RsmcStep {
  let funding;
  try {
    funding = fundingFor(r);
  } catch (error) {
    return abort(r, 'FUNDING_MISMATCH', `cannot build the funding transaction: ${(error as Error).message}`, true);
  }
  if (funding.fundingValueSat !== r.fundingSat) return abort(r, 'FUNDING_MISMATCH', 'funding value differs from the agreed capacity', true);
  r.fundingTx = Uint8Array.from(funding.tx.toBuffer());
  r.fundingOutpoint = funding.fundingOutpoint;
  r.channelId = deriveChannelId(funding.fundingOutpoint);
  if (r.role === 'accepter') return { record: r, effects }; // waits for funding_created
  const spec = initialSpec(r);
  if (spec.localMsat < feeMsat(r)) return abort(r, 'INSUFFICIENT_BALANCE', 'our balance cannot pay the commitment fee', true);
  const theirs = remoteCommitment(r, 0n, spec, r.remoteNextPoint!);
  effects.push({ kind: 'sign-remote-commitment', number: 0n, spec, point: r.remoteNextPoint!, tx: Uint8Array.from(theirs.tx.toBuffer()) });
  return { record: r, effects };
}

function onCoinsFailed(record: RsmcRecord, message: string): RsmcStep {
  if (record.phase !== 'negotiating' && record.phase !== 'contributing') return unchanged(record);
  return abort(copy(record), 'INSUFFICIENT_FUNDS', `wallet: ${message}`, true);
}

/** Our signature on the peer's commitment 0 (opener: for funding_created; accepter: for funding_signed). */
function onOpeningSignature(record: RsmcRecord, signature: Uint8Array): RsmcStep {
  const r = copy(record);
  const spec = initialSpec(r);
  const theirs = remoteCommitment(r, 0n, spec, r.remoteNextPoint!);
  r.remoteCommit = { number: 0n, spec, point: r.remoteNextPoint!, txid: theirs.txid };
  r.remoteNextPoint = undefined;
  r.openingSignature = signature;
  r.phase = 'funding_signed';
  if (r.role === 'opener') {
    return {
      record: r,
      effects: [
        { kind: 'persist', reason: 'funding-created' },
        send({
          type: 'funding_created',
          temporaryChannelId: r.tempChannelId,
          fundingTxid: txidToHash(r.fundingOutpoint!.txid),
          fundingOutputIndex: r.fundingOutpoint!.vout,
          signature,
        }),
        { kind: 'watch', outpoint: r.fundingOutpoint! },
        ev({ type: 'phase', phase: 'funding_signed' }),
      ],
    };
  }
  const dual = r.localFundingSat > 0n;
  if (!dual) r.phase = 'awaiting_ready';
  const effects: RsmcEffect[] = [
    { kind: 'persist', reason: 'funding-signed' },
    send({ type: 'funding_signed', channelId: r.channelId!, signature }),
    { kind: 'watch', outpoint: r.fundingOutpoint! },
    ev({ type: 'phase', phase: r.phase }),
  ];
  if (dual) effects.push({ kind: 'sign-funding-inputs' });
  else effects.push({ kind: 'check-funding' });
  return { record: r, effects };
}

/**
 * A peer resuming an open we abandoned (it restarted and sends funding_created or channel_reestablish
 * again): tell it with an error, so it abandons its side too instead of waiting for an answer (BOLT 1).
 */
function abandonedOpen(record: RsmcRecord): RsmcStep {
  return { record, effects: [send({ type: 'error', channelId: channelIdOf(record), code: RSMC_WIRE_CODES.STOPPED, message: 'this open was abandoned' })] };
}

function onFundingCreated(record: RsmcRecord, msg: Extract<WireMessage, { type: 'funding_created' }>): RsmcStep {
  if (record.role !== 'accepter') return rejection(record, 'BAD_STATE', 'funding_created not expected');
  if (record.phase === 'aborted') return abandonedOpen(record);
  if (record.localCommit) {
    // A retransmission (our funding_signed was lost): answer it again, byte for byte.
    if (record.fundingOutpoint && equalBytes(txidToHash(record.fundingOutpoint.txid), msg.fundingTxid) && record.openingSignature) {
      return { record, effects: retransmitFundingSigned(record) };
    }
    return rejection(record, 'BAD_STATE', 'funding_created not expected');
  }
  const dual = record.localFundingSat > 0n;
  if (record.phase !== (dual ? 'contributing' : 'negotiating') || (dual && !record.fundingOutpoint)) return rejection(record, 'BAD_STATE', 'funding_created not expected');
  const r = copy(record);
  const outpoint = { txid: hashToTxid(msg.fundingTxid), vout: msg.fundingOutputIndex };
  if (dual) {
    if (outpoint.txid !== r.fundingOutpoint!.txid || outpoint.vout !== r.fundingOutpoint!.vout) {
      return abort(r, 'FUNDING_MISMATCH', 'funding outpoint differs from the transaction we built', true);
    }
  } else {
    r.fundingOutpoint = outpoint;
    r.channelId = deriveChannelId(outpoint);
  }
  const spec = initialSpec(r);
  const ours = localCommitment(r, 0n, spec, r.localCurrentPoint);
  if (!verifyRemoteSignature(r, ours.tx, msg.signature)) return abort(r, 'BAD_SIGNATURE', 'the signature on our first commitment does not verify', true);
  r.localCommit = { number: 0n, spec, remoteSignature: msg.signature, txid: ours.txid };
  const theirs = remoteCommitment(r, 0n, spec, r.remoteNextPoint!);
  return { record: r, effects: [{ kind: 'sign-remote-commitment', number: 0n, spec, point: r.remoteNextPoint!, tx: Uint8Array.from(theirs.tx.toBuffer()) }] };
}

function ourWitnesses(r: RsmcRecord): Uint8Array[][] {
  const tx = Transaction.fromBuffer(Buffer.from(r.fundingTx!));
  const mine = new Set(r.localInputs.map((i) => `${i.coin.outpoint.txid}:${i.coin.outpoint.vout}`));
  const out: Uint8Array[][] = [];
  tx.ins.forEach((input) => {
    if (mine.has(`${hashToTxid(input.hash)}:${input.index}`)) out.push(input.witness.map((w) => Uint8Array.from(w)));
  });
  return out;
}

function hasOurWitnesses(r: RsmcRecord): boolean {
  const w = r.fundingTx ? ourWitnesses(r) : [];
  return w.length > 0 && w.every((stack) => stack.length > 0);
}

function retransmitFundingSigned(r: RsmcRecord): RsmcEffect[] {
  const effects: RsmcEffect[] = [send({ type: 'funding_signed', channelId: r.channelId!, signature: r.openingSignature! })];
  if (r.localFundingSat > 0n) effects.push(...ourFundingWitnessesAgain(r));
  return effects;
}

/**
 * Dual funding, accepter or opener: our input witnesses again if we gave them. An accepter that was stopped
 * between storing funding_signed and signing its inputs signs them now (it has nothing else that would make it
 * do so, and the opener waits for them).
 */
function ourFundingWitnessesAgain(r: RsmcRecord): RsmcEffect[] {
  if (hasOurWitnesses(r)) return [send({ type: 'funding_tx_signatures', channelId: r.channelId!, witnesses: ourWitnesses(r) })];
  if (r.role === 'accepter' && r.phase === 'funding_signed' && r.localCommit) return [{ kind: 'sign-funding-inputs' }];
  return [];
}

function onFundingSigned(record: RsmcRecord, msg: Extract<WireMessage, { type: 'funding_signed' }>): RsmcStep {
  if (record.role !== 'opener' || record.phase !== 'funding_signed' || record.localCommit) {
    if (record.localCommit && equalBytes(record.localCommit.remoteSignature, msg.signature)) return unchanged(record);
    return rejection(record, 'BAD_STATE', 'funding_signed not expected');
  }
  const r = copy(record);
  const spec = initialSpec(r);
  const ours = localCommitment(r, 0n, spec, r.localCurrentPoint);
  if (!verifyRemoteSignature(r, ours.tx, msg.signature)) return abort(r, 'BAD_SIGNATURE', 'the signature on our first commitment does not verify', true);
  r.localCommit = { number: 0n, spec, remoteSignature: msg.signature, txid: ours.txid };
  const effects: RsmcEffect[] = [{ kind: 'persist', reason: 'funding-signed' }];
  // A reconnected session in which the accepter sent its channel_reestablish while we had no commitment:
  // now we can send ours, and it waits for it.
  if (r.reestablishReceived && !r.reestablishSent) {
    r.reestablishSent = true;
    effects.push(send(reestablishMessage(r)));
  }
  const dual = r.remoteFundingSat > 0n;
  if (!dual || r.remoteWitnessesReceived) effects.push({ kind: 'sign-funding-inputs' });
  return { record: r, effects };
}

function onFundingTxSignatures(record: RsmcRecord, msg: Extract<WireMessage, { type: 'funding_tx_signatures' }>): RsmcStep {
  // An abandoned open stays abandoned: signing our inputs now would fund a channel we no longer track.
  if (record.phase === 'aborted') return unchanged(record);
  if (record.remoteInputs.length === 0 || !record.fundingTx || !record.remoteCommit) return rejection(record, 'BAD_STATE', 'funding_tx_signatures not expected');
  if (record.remoteWitnessesReceived) return unchanged(record); // a retransmission
  const tx = Transaction.fromBuffer(Buffer.from(record.fundingTx));
  const theirs = new Set(record.remoteInputs.map((i) => `${i.outpoint.txid}:${i.outpoint.vout}`));
  const positions: number[] = [];
  tx.ins.forEach((input, i) => {
    if (theirs.has(`${hashToTxid(input.hash)}:${input.index}`)) positions.push(i);
  });
  if (msg.witnesses.length !== positions.length || msg.witnesses.some((w) => w.length !== 2)) {
    return rejection(record, 'FUNDING_MISMATCH', 'one P2WPKH witness per contributed input expected');
  }
  positions.forEach((index, k) => tx.setWitness(index, msg.witnesses[k]!.map((w) => Buffer.from(w))));
  const r = copy(record);
  r.fundingTx = Uint8Array.from(tx.toBuffer());
  r.remoteWitnessesReceived = true;
  if (r.role === 'opener') {
    // funding_signed first (it holds our refund path), then our inputs.
    if (!r.localCommit) return { record: r, effects: [] };
    return { record: r, effects: [{ kind: 'persist', reason: 'funding-tx-signed' }, { kind: 'sign-funding-inputs' }] };
  }
  // Accepter: we already signed ours; now the transaction is complete and either of us may broadcast it.
  r.phase = 'awaiting_ready';
  return {
    record: r,
    effects: [
      { kind: 'persist', reason: 'funding-tx-signed' },
      { kind: 'broadcast', purpose: 'funding', tx: r.fundingTx },
      ev({ type: 'phase', phase: 'awaiting_ready' }),
      { kind: 'check-funding' },
    ],
  };
}

function onFundingInputsSigned(record: RsmcRecord, tx: Uint8Array): RsmcStep {
  if (record.phase === 'aborted') return unchanged(record);
  if (!record.fundingTx || record.fundingBroadcast && record.role === 'opener') return unchanged(record);
  const r = copy(record);
  // Only witnesses may differ: the transaction (and its txid) was fixed before anyone signed.
  const parsed = Transaction.fromBuffer(Buffer.from(tx));
  if (hashToTxid(parsed.getHash()) !== r.fundingOutpoint!.txid) throw new RsmcError('FUNDING_MISMATCH', 'the signed funding transaction is not the agreed one');
  r.fundingTx = tx;
  const effects: RsmcEffect[] = [{ kind: 'persist', reason: 'funding-tx-signed' }];
  const dual = r.remoteFundingSat > 0n && r.localFundingSat > 0n;
  if (r.role === 'accepter') {
    effects.push(send({ type: 'funding_tx_signatures', channelId: r.channelId!, witnesses: ourWitnesses(r) }));
    return { record: r, effects };
  }
  r.phase = 'awaiting_ready';
  effects.push({ kind: 'broadcast', purpose: 'funding', tx: r.fundingTx });
  if (dual) effects.push(send({ type: 'funding_tx_signatures', channelId: r.channelId!, witnesses: ourWitnesses(r) }));
  effects.push(ev({ type: 'phase', phase: 'awaiting_ready' }), { kind: 'check-funding' });
  return { record: r, effects };
}

function onFundingStatus(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'funding-status' }>): RsmcStep {
  if (record.phase !== 'awaiting_ready' && !(record.phase === 'funding_signed' && record.localCommit)) return unchanged(record);
  const utxo = input.utxo;
  if (!utxo || utxo.blockHeight === undefined) return unchanged(record);
  // The accepter of a single-funded open only learnt an outpoint: it must be our 2-of-2 for the capacity.
  if (utxo.output.valueSat !== record.fundingSat || !equalBytes(utxo.output.script, p2wshOutput(fundingScriptOf(record)))) {
    return failChannel(record, 'FUNDING_MISMATCH', 'the funding output is not the agreed 2-of-2 for the capacity');
  }
  const depth = input.tipHeight - utxo.blockHeight + 1;
  const r = copy(record);
  const effects: RsmcEffect[] = [];
  if (!r.fundingBroadcast) r.fundingBroadcast = true; // it is on chain, whoever broadcast it
  if (r.phase === 'funding_signed') r.phase = 'awaiting_ready';
  if (depth < r.minimumDepth || r.readySent) return { record: r, effects };
  r.readySent = true;
  effects.push({ kind: 'persist', reason: 'ready' }, send({ type: 'channel_ready', channelId: r.channelId!, secondPerCommitmentPoint: r.localNextPoint! }));
  return becomeOpenIfReady(r, effects);
}

function becomeOpenIfReady(r: RsmcRecord, effects: RsmcEffect[]): RsmcStep {
  if (r.readySent && r.readyReceived && r.phase === 'awaiting_ready') {
    r.phase = 'open';
    // The open's own session starts in sync: nothing to reestablish. In a later session the exchange
    // under way is finished first (the peer waits for ours; we must not take its for a second one).
    if (!r.reestablishSent && !r.reestablishReceived) {
      r.reestablishSent = true;
      r.reestablishReceived = true;
    }
    effects.push({ kind: 'persist', reason: 'ready' }, ev({ type: 'phase', phase: 'open' }));
    if (!r.reestablishSent) {
      r.reestablishSent = true;
      effects.push(send(reestablishMessage(r)));
    }
    effects.push(...flushProposals(r));
  }
  return { record: r, effects };
}

function onChannelReady(record: RsmcRecord, msg: Extract<WireMessage, { type: 'channel_ready' }>): RsmcStep {
  if (!record.localCommit || !record.remoteCommit) return rejection(record, 'BAD_STATE', 'channel_ready not expected');
  if (record.readyReceived) {
    // A retransmission after a reconnect: harmless if it names the same point.
    return unchanged(record);
  }
  const r = copy(record);
  r.readyReceived = true;
  r.remoteNextPoint = msg.secondPerCommitmentPoint;
  const effects: RsmcEffect[] = [{ kind: 'persist', reason: 'ready' }];
  if (!r.readySent) effects.push({ kind: 'check-funding' });
  if (r.phase === 'funding_signed') r.phase = 'awaiting_ready';
  return becomeOpenIfReady(r, effects);
}

// ---------------------------------------------------------------------------------------------------
// updates

/** The lowest our balance can be in any commitment still to come, less the fee we pay and the reserve the peer requires. */
function ourAvailableMsat(r: RsmcRecord): bigint {
  const lc = r.localCommit!;
  const outstanding = sum(r.localChanges.proposed) + sum(r.localChanges.signed) + sum(r.localChanges.acked);
  let available = lc.spec.localMsat - outstanding - r.remote!.channelReserveSat * 1000n;
  if (r.role === 'opener') available -= feeMsat(r);
  return available;
}

function onPay(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'pay' }>): RsmcStep {
  if (record.phase === 'shutting_down' || record.phase === 'closing' || record.shutdown) throw new RsmcError('CHANNEL_CLOSING', 'the channel is closing');
  if (record.phase !== 'open') throw new RsmcError('BAD_STATE', `the channel is ${record.phase}`);
  if (typeof input.amountMsat !== 'bigint' || input.amountMsat <= 0n) throw new RsmcError('BAD_AMOUNT', 'amountMsat must be a positive bigint');
  const available = ourAvailableMsat(record);
  if (input.amountMsat > available) {
    throw new RsmcError('INSUFFICIENT_BALANCE', `at most ${available > 0n ? available : 0n} msat can be sent now (balance less reserve${record.role === 'opener' ? ' and commitment fee' : ''}, less payments in flight)`);
  }
  const r = copy(record);
  const change: Change = { kind: 'transfer', id: r.localUpdateCount + BigInt(r.localChanges.proposed.length), amountMsat: input.amountMsat, ref: input.ref };
  r.localChanges.proposed.push(change);
  if (!synced(r)) return { record: r, effects: [] }; // sent after channel_reestablish
  const effects: RsmcEffect[] = [send({ type: 'update_transfer', channelId: r.channelId!, id: change.id, amountMsat: change.amountMsat })];
  effects.push(...maybeSignStep(r));
  return { record: r, effects };
}

/** Withdraw our proposals that no commitment_signed covers; their pay() calls fail. */
function dropProposals(r: RsmcRecord, message: string): RsmcEffect[] {
  const effects: RsmcEffect[] = [];
  for (const c of r.localChanges.proposed) {
    if (c.ref !== undefined) effects.push(ev({ type: 'payment-failed', ref: c.ref, code: 'CHANNEL_CLOSING', message }));
  }
  r.localChanges.proposed = [];
  return effects;
}

/** (Re)send our proposals in order, then sign if we can: after channel_ready or channel_reestablish. */
function flushProposals(r: RsmcRecord): RsmcEffect[] {
  const effects: RsmcEffect[] = r.localChanges.proposed.map((c) => send({ type: 'update_transfer', channelId: r.channelId!, id: c.id, amountMsat: c.amountMsat }));
  effects.push(...maybeSignStep(r));
  return effects;
}

/** A sign-remote-commitment effect if there is something to commit and no commitment is outstanding. */
function maybeSignStep(r: RsmcRecord): RsmcEffect[] {
  if (!synced(r) || r.remoteNext || !r.remoteNextPoint || !r.remoteCommit) return [];
  if (r.phase !== 'open' && r.phase !== 'shutting_down') return [];
  if (r.localChanges.proposed.length === 0 && r.remoteChanges.acked.length === 0) return [];
  const spec = reduce(r.remoteCommit.spec, r.localChanges.proposed, r.remoteChanges.acked);
  const number = r.remoteCommit.number + 1n;
  const theirs = remoteCommitment(r, number, spec, r.remoteNextPoint);
  return [{ kind: 'sign-remote-commitment', number, spec, point: r.remoteNextPoint, tx: Uint8Array.from(theirs.tx.toBuffer()) }];
}

function onCommitmentSignature(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'commitment-signature' }>): RsmcStep {
  if (!record.remoteCommit) {
    if (input.number !== 0n) return unchanged(record);
    return onOpeningSignature(record, input.signature);
  }
  const r = copy(record);
  if (r.remoteNext || input.number !== r.remoteCommit!.number + 1n) throw new RsmcError('BAD_STATE', 'signature for an unexpected commitment');
  const spec = reduce(r.remoteCommit!.spec, r.localChanges.proposed, r.remoteChanges.acked);
  const theirs = remoteCommitment(r, input.number, spec, r.remoteNextPoint!);
  r.remoteNext = {
    number: input.number,
    spec,
    point: r.remoteNextPoint!,
    txid: theirs.txid,
    signature: input.signature,
    localCommitNumberAtSigning: r.localCommit!.number,
  };
  r.localUpdateCount += BigInt(r.localChanges.proposed.length);
  r.localChanges.signed = r.localChanges.proposed;
  r.localChanges.proposed = [];
  r.remoteChanges.signed = r.remoteChanges.acked;
  r.remoteChanges.acked = [];
  return {
    record: r,
    effects: [
      { kind: 'persist', reason: 'commitment-signed' },
      send({ type: 'commitment_signed', channelId: r.channelId!, signature: input.signature, htlcSignatures: [] }),
    ],
  };
}

function onUpdateTransfer(record: RsmcRecord, msg: Extract<WireMessage, { type: 'update_transfer' }>): RsmcStep {
  // An update the peer sent before its own shutdown is fine, even if ours crossed it (BOLT 2).
  if (record.phase !== 'open' && !(record.phase === 'shutting_down' && !record.shutdown?.remoteScript)) {
    if (record.phase === 'shutting_down') return rejection(record, 'CHANNEL_CLOSING', 'no new updates after shutdown');
    return rejection(record, 'BAD_STATE', 'update_transfer not expected');
  }
  if (!synced(record)) return rejection(record, 'BAD_STATE', 'update_transfer before channel_reestablish');
  const expected = record.remoteUpdateCount + BigInt(record.remoteChanges.proposed.length);
  if (msg.id < expected) return unchanged(record); // already have it (a retransmission)
  if (msg.id > expected) return failChannel(record, 'BAD_UPDATE_ID', `update id ${msg.id}, expected ${expected}`);
  if (msg.amountMsat <= 0n) return failChannel(record, 'BAD_AMOUNT', 'a transfer must be positive');
  const change: Change = { kind: 'transfer', id: msg.id, amountMsat: msg.amountMsat };
  const r = copy(record);
  r.remoteChanges.proposed.push(change);
  // The peer's balance in our next commitment, which will hold every one of its changes, must stay
  // above the reserve we require (and the fee, if it is the opener). A sender following the same rule
  // on its own, more pessimistic, view never trips this.
  let next: Spec;
  try {
    next = reduce(r.localCommit!.spec, r.localChanges.acked, r.remoteChanges.proposed);
  } catch {
    return failChannel(record, 'INSUFFICIENT_BALANCE', 'the peer sent more than its balance');
  }
  const floor = r.local.channelReserveSat * 1000n + (r.role === 'accepter' ? feeMsat(r) : 0n);
  if (next.remoteMsat < floor) return failChannel(record, 'INSUFFICIENT_BALANCE', 'the transfer takes the peer below its reserve');
  return { record: r, effects: [] };
}

function onCommitmentSigned(record: RsmcRecord, msg: Extract<WireMessage, { type: 'commitment_signed' }>): RsmcStep {
  if (!record.localCommit || (record.phase !== 'open' && record.phase !== 'shutting_down')) return rejection(record, 'BAD_STATE', 'commitment_signed not expected');
  if (!synced(record)) return rejection(record, 'BAD_STATE', 'commitment_signed before channel_reestablish');
  if (record.remoteChanges.proposed.length === 0 && record.localChanges.acked.length === 0) {
    if (equalBytes(msg.signature, record.localCommit.remoteSignature)) return unchanged(record); // a retransmission
    return failChannel(record, 'BAD_STATE', 'commitment_signed without changes');
  }
  if (msg.htlcSignatures.length !== 0) return failChannel(record, 'BAD_SIGNATURE', 'HTLC signatures for a commitment without HTLC outputs');
  const r = copy(record);
  const number = r.localCommit!.number + 1n;
  const spec = reduce(r.localCommit!.spec, r.localChanges.acked, r.remoteChanges.proposed);
  const ours = localCommitment(r, number, spec, r.localNextPoint!);
  if (!verifyRemoteSignature(r, ours.tx, msg.signature)) return failChannel(record, 'BAD_SIGNATURE', `the signature on our commitment ${number} does not verify`);
  // Done for our acked changes: the peer holds them in its commitment (and revoked the one without), and now so do we.
  const completed = r.localChanges.acked;
  r.localCommit = { number, spec, remoteSignature: msg.signature, txid: ours.txid };
  r.localCurrentPoint = r.localNextPoint!;
  r.remoteUpdateCount += BigInt(r.remoteChanges.proposed.length);
  r.remoteChanges.acked = [...r.remoteChanges.acked, ...r.remoteChanges.proposed];
  r.remoteChanges.proposed = [];
  r.localChanges.acked = [];
  r.sentCount += BigInt(completed.length);
  // Durable first: only then may the previous commitment be revoked (release-secret answers with the secret).
  const effects: RsmcEffect[] = [{ kind: 'persist', reason: 'commitment-received' }, { kind: 'release-secret', number: number - 1n }];
  for (const c of completed) effects.push(ev({ type: 'payment-sent', id: c.id, amountMsat: c.amountMsat, ...(c.ref !== undefined ? { ref: c.ref } : {}) }));
  return { record: r, effects };
}

function onSecretReleased(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'secret-released' }>): RsmcStep {
  const lc = record.localCommit;
  // Never the current commitment's secret: only the one just below it.
  if (!lc || input.number !== lc.number - 1n) throw new RsmcError('BAD_STATE', 'refusing to reveal a secret that is not of the previous commitment');
  const r = copy(record);
  r.localNextPoint = input.nextPoint;
  const effects: RsmcEffect[] = [
    send({ type: 'revoke_and_ack', channelId: r.channelId!, perCommitmentSecret: input.secret, nextPerCommitmentPoint: input.nextPoint }),
  ];
  // Our revocation may be the last step before a requested close can start.
  effects.push(...maybeSignStep(r), ...maybeStartClosing(r));
  return { record: r, effects };
}

function onRevokeAndAck(record: RsmcRecord, msg: Extract<WireMessage, { type: 'revoke_and_ack' }>, ctx: RsmcContext): RsmcStep {
  if (!record.remoteCommit || !record.localCommit) return rejection(record, 'BAD_STATE', 'revoke_and_ack not expected');
  const store = PerCommitmentSecretStore.fromJSON(record.remoteSecrets);
  // A retransmission of a revocation we already hold is harmless (even if we signed again since).
  const known = record.remoteCommit.number > 0n ? store.get(commitmentIndex(record.remoteCommit.number - 1n)) : undefined;
  if (known && equalBytes(known, msg.perCommitmentSecret)) return unchanged(record);
  if (!record.remoteNext) return rejection(record, 'BAD_STATE', 'revoke_and_ack without an outstanding commitment');
  if (!synced(record)) return rejection(record, 'BAD_STATE', 'revoke_and_ack before channel_reestablish');
  let point: Uint8Array;
  try {
    point = perCommitmentPoint(msg.perCommitmentSecret);
  } catch {
    return failChannel(record, 'BAD_REVOCATION', 'the revealed secret is not a valid scalar');
  }
  if (!equalBytes(point, record.remoteCommit.point)) return failChannel(record, 'BAD_REVOCATION', `the secret does not match commitment ${record.remoteCommit.number}`);
  try {
    store.insert(commitmentIndex(record.remoteCommit.number), msg.perCommitmentSecret);
  } catch {
    return failChannel(record, 'BAD_REVOCATION', 'the secret does not derive the earlier ones (BOLT 3 shachain)');
  }
  const r = copy(record);
  const revoked = r.remoteCommit!;
  const next = r.remoteNext!;
  r.remoteSecrets = store.toJSON();
  r.remoteCommit = { number: next.number, spec: next.spec, point: next.point, txid: next.txid };
  r.remoteNext = undefined;
  r.remoteNextPoint = msg.nextPerCommitmentPoint;
  const received = r.remoteChanges.signed;
  r.remoteChanges.signed = [];
  r.localChanges.acked = [...r.localChanges.acked, ...r.localChanges.signed];
  r.localChanges.signed = [];
  r.receivedCount += BigInt(received.length);
  // 'revoked' before the persist: a watchtower gets the state before we store its revocation.
  const effects: RsmcEffect[] = [ev({ type: 'revoked', commitment: revoked }), { kind: 'persist', reason: 'revocation-received' }];
  // The peer broadcast this very commitment before its revocation reached us: now it is a breach.
  if (r.closing && (r.closing.kind === 'remote-latest' || r.closing.kind === 'remote-unknown') && r.closing.commitmentNumber === revoked.number) {
    effects.push(...reclassify(r, ctx.tipHeight));
    return { record: r, effects };
  }
  for (const c of received) effects.push(ev({ type: 'payment-received', id: c.id, amountMsat: c.amountMsat }));
  effects.push(...maybeSignStep(r));
  const closing = maybeStartClosing(r);
  effects.push(...closing);
  return { record: r, effects };
}

// ---------------------------------------------------------------------------------------------------
// reestablish (BOLT 2 channel_reestablish)

function onDisconnected(record: RsmcRecord): RsmcStep {
  const r = copy(record);
  r.reestablishSent = false;
  r.reestablishReceived = false;
  // BOLT 2: the peer's updates not covered by a commitment_signed we received are forgotten; ours not
  // covered by one we sent are forgotten by the peer, so we send them again (same ids) once resynced.
  r.remoteChanges.proposed = [];
  // BOLT 2: fee negotiation restarts after a reconnect — unless it already ended in a signed closing tx.
  if (r.shutdown && r.phase === 'shutting_down') {
    r.shutdown.lastProposedFeeSat = undefined;
    r.shutdown.lastProposedSignature = undefined;
    r.shutdown.lastReceived = undefined;
  }
  if (r.phase === 'negotiating' || r.phase === 'contributing') return abort(r, 'PEER_ERROR', 'disconnected while opening', false);
  // After shutdown no update may be sent again, and the peer forgets the ones it had not seen signed.
  if (r.shutdown) return { record: r, effects: dropProposals(r, 'the channel is closing') };
  return { record: r, effects: [] };
}

function reestablishMessage(r: RsmcRecord): WireMessage {
  const store = PerCommitmentSecretStore.fromJSON(r.remoteSecrets);
  const last = r.remoteCommit!.number > 0n ? store.get(commitmentIndex(r.remoteCommit!.number - 1n)) : undefined;
  return {
    type: 'channel_reestablish',
    channelId: r.channelId!,
    nextCommitmentNumber: r.localCommit!.number + 1n,
    nextRevocationNumber: r.remoteCommit!.number,
    yourLastPerCommitmentSecret: last ?? ZERO32,
    myCurrentPerCommitmentPoint: r.localCurrentPoint,
  };
}

function onConnected(record: RsmcRecord): RsmcStep {
  if (!isLive(record) || record.reestablishSent) return unchanged(record);
  if (!record.localCommit) {
    // Opener waiting for funding_signed: ask again with the same funding_created.
    if (record.role === 'opener' && record.phase === 'funding_signed' && record.openingSignature) {
      return {
        record,
        effects: [
          send({
            type: 'funding_created',
            temporaryChannelId: record.tempChannelId,
            fundingTxid: txidToHash(record.fundingOutpoint!.txid),
            fundingOutputIndex: record.fundingOutpoint!.vout,
            signature: record.openingSignature,
          }),
        ],
      };
    }
    return unchanged(record);
  }
  if (!record.remoteCommit) return unchanged(record);
  const r = copy(record);
  r.reestablishSent = true;
  const effects: RsmcEffect[] = [send(reestablishMessage(r))];
  // A dual-funding exchange cut short: our witnesses again, if we gave them.
  if (r.localFundingSat > 0n && r.remoteFundingSat > 0n && !r.fundingBroadcast) effects.push(...ourFundingWitnessesAgain(r));
  // An opener stopped between storing funding_signed and signing its inputs: nothing else would make it go on.
  if (r.role === 'opener' && r.phase === 'funding_signed' && !r.fundingBroadcast && (r.remoteFundingSat === 0n || r.remoteWitnessesReceived)) {
    effects.push({ kind: 'sign-funding-inputs' });
  }
  return { record: r, effects };
}

function onChannelReestablish(record: RsmcRecord, msg: Extract<WireMessage, { type: 'channel_reestablish' }>): RsmcStep {
  if (record.phase === 'aborted' && !record.fundingBroadcast) return abandonedOpen(record);
  if (!record.localCommit && record.role === 'opener' && record.phase === 'funding_signed' && !record.reestablishReceived) {
    // The accepter's, at commitment 0, while funding_signed is still to come (resent for our
    // funding_created): it asks nothing of us, but it is this session's one; ours follows funding_signed.
    return { record: { ...record, reestablishReceived: true }, effects: [] };
  }
  if (!record.localCommit || !record.remoteCommit || record.phase === 'closed' || record.phase === 'aborted') return unchanged(record);
  if (record.reestablishReceived) return rejection(record, 'BAD_STATE', 'channel_reestablish twice in one session');
  const lc = record.localCommit;
  const rc = record.remoteCommit;
  // 1. Their view of our revocations (BOLT 2: next_revocation_number).
  if (msg.nextRevocationNumber > lc.number) {
    // They hold revocations of commitments we do not know: our state is old (a restored backup?).
    // Our commitment may be revoked, so we must never broadcast it; ask the peer to close instead.
    const r = copy(record);
    r.stale = true;
    r.reestablishReceived = true;
    return failChannel(r, 'LOCAL_STALE', 'the peer has revocations of commitments we do not know: our state is old; waiting for the peer to close');
  }
  if (msg.nextRevocationNumber + 1n < lc.number) {
    return failChannel(record, 'PEER_STALE', `the peer expects revocation ${msg.nextRevocationNumber}, we revoked up to ${lc.number - 1n}: it lost state`);
  }
  const revokeAgain = msg.nextRevocationNumber + 1n === lc.number;
  // 2. Their commitment: did our last commitment_signed arrive?
  const latestRemote = record.remoteNext?.number ?? rc.number;
  let commitAgain = false;
  if (record.remoteNext && msg.nextCommitmentNumber === record.remoteNext.number) commitAgain = true;
  else if (msg.nextCommitmentNumber !== latestRemote + 1n) {
    if (msg.nextCommitmentNumber > latestRemote + 1n) {
      const r = copy(record);
      r.stale = true;
      r.reestablishReceived = true;
      return failChannel(r, 'LOCAL_STALE', 'the peer holds a commitment we never signed: our state is old; waiting for the peer to close');
    }
    return failChannel(record, 'PEER_STALE', `the peer expects commitment ${msg.nextCommitmentNumber}, it has ${latestRemote} from us: it lost state`);
  }
  // 3. Their claim of our last secret must be the one we revealed (checked against the point it revokes
  //    when we have it; our own secrets come from the signer, so only a shape check is possible here).
  const r = copy(record);
  r.reestablishReceived = true;
  const effects: RsmcEffect[] = [];
  const retransmitCommit: RsmcEffect[] = [];
  if (commitAgain) {
    const next = r.remoteNext!;
    for (const c of r.localChanges.signed) retransmitCommit.push(send({ type: 'update_transfer', channelId: r.channelId!, id: c.id, amountMsat: c.amountMsat }));
    retransmitCommit.push(send({ type: 'commitment_signed', channelId: r.channelId!, signature: next.signature, htlcSignatures: [] }));
  }
  const retransmitRevoke: RsmcEffect[] = revokeAgain ? [{ kind: 'release-secret', number: lc.number - 1n }] : [];
  // Our proposals not yet signed go out again; they must precede any commitment_signed that covers them.
  const proposals: RsmcEffect[] = r.localChanges.proposed.map((c) => send({ type: 'update_transfer', channelId: r.channelId!, id: c.id, amountMsat: c.amountMsat }));
  if (commitAgain) {
    // The original order: a commitment signed while localCommit was already the current one went out after its revocation.
    if (revokeAgain && r.remoteNext!.localCommitNumberAtSigning === lc.number) effects.push(...retransmitRevoke, ...retransmitCommit);
    else effects.push(...retransmitCommit, ...retransmitRevoke);
    effects.push(...proposals); // signed once the peer revokes
  } else {
    // release-secret's answer signs what is pending; without it, sign now.
    effects.push(...proposals, ...(revokeAgain ? retransmitRevoke : maybeSignStep(r)));
  }
  // channel_ready again if the peer may have missed it (BOLT 2: both at commitment 1).
  if (r.readySent && msg.nextCommitmentNumber === 1n && lc.number === 0n) {
    effects.unshift(send({ type: 'channel_ready', channelId: r.channelId!, secondPerCommitmentPoint: r.localNextPoint! }));
  }
  if (r.shutdown?.sent) effects.push(send({ type: 'shutdown', channelId: r.channelId!, scriptPubkey: r.shutdown.localScript }));
  effects.push(...maybeStartClosing(r));
  if (r.phase === 'closing' && !r.closing) effects.push(...rebroadcastClose(r));
  return { record: r, effects };
}

/**
 * The peer left an open unfinished for the node's openTimeoutMs (gone, or stuck): abandon it while that
 * loses nothing, as a close command would, and tell the peer. Past that point the open waits for the chain.
 */
function onOpenTimeout(record: RsmcRecord, afterMs: number): RsmcStep {
  if (!isLive(record) || !abandonableOpen(record)) return { record, effects: [] };
  return abort(copy(record), 'TIMEOUT', `the open did not complete within ${Math.round(afterMs / 1000)} s; abandoned`, true);
}

// ---------------------------------------------------------------------------------------------------
// cooperative close (BOLT 2 shutdown / closing_signed)

/**
 * An open that can still be abandoned: nothing of ours can reach the chain, so aborting it releases our
 * coins and loses nothing. That is an open before any commitment, and the opener before it signed its
 * funding inputs (it does so only on leaving funding_signed): nobody can broadcast the funding, even with
 * commitment 0 held (an accepter that lost the open after a crash would otherwise keep them reserved for
 * ever). A single-funded accepter that sent funding_signed is past it: the opener may broadcast.
 */
export function abandonableOpen(record: RsmcRecord): boolean {
  if ((record.role === 'opener' && record.phase === 'funding_signed' && !record.fundingBroadcast) || unsignedDualAccepter(record)) return true;
  return !record.localCommit && (record.phase === 'negotiating' || record.phase === 'contributing' || (record.role === 'opener' && record.phase === 'funding_signed'));
}

function onCloseCommand(record: RsmcRecord, cooperative: boolean): RsmcStep {
  if (!isLive(record)) throw new RsmcError('BAD_STATE', `the channel is ${record.phase}`);
  if (abandonableOpen(record)) return abort(copy(record), 'STOPPED', 'open abandoned', true);
  if (!record.localCommit) throw new RsmcError('BAD_STATE', 'the channel is being funded');
  if (!cooperative) {
    if (record.stale) throw new RsmcError('LOCAL_STALE', 'our state is old: broadcasting our commitment could lose everything; wait for the peer to close');
    if (record.phase === 'closing') return { record, effects: record.closing ? [] : [{ kind: 'broadcast-commitment' }] };
    const r = copy(record);
    r.phase = 'closing';
    return { record: r, effects: [{ kind: 'persist', reason: 'closing' }, ev({ type: 'phase', phase: 'closing' }), { kind: 'broadcast-commitment' }] };
  }
  if (record.phase !== 'open' && record.phase !== 'shutting_down') throw new RsmcError('BAD_STATE', `the channel is ${record.phase}`);
  if (record.shutdown?.sent) return unchanged(record);
  const r = copy(record);
  r.shutdown = r.shutdown ?? { localScript: r.payoutScript, remoteScript: undefined, sent: false, lastProposedFeeSat: undefined, lastProposedSignature: undefined, lastReceived: undefined };
  r.shutdown.sent = true;
  r.phase = 'shutting_down';
  const effects: RsmcEffect[] = [{ kind: 'persist', reason: 'shutdown' }, ev({ type: 'phase', phase: 'shutting_down' })];
  if (synced(r)) effects.push(send({ type: 'shutdown', channelId: r.channelId!, scriptPubkey: r.shutdown.localScript }));
  // Proposals the peer already has go on to be committed (BOLT 2: pending updates complete after
  // shutdown); ones not yet sent (we are between sessions) are withdrawn.
  if (!synced(r)) effects.push(...dropProposals(r, 'the channel is closing'));
  effects.push(...maybeSignStep(r), ...maybeStartClosing(r));
  return { record: r, effects };
}

function onShutdown(record: RsmcRecord, msg: Extract<WireMessage, { type: 'shutdown' }>): RsmcStep {
  if (!record.localCommit || (record.phase !== 'open' && record.phase !== 'shutting_down')) return rejection(record, 'BAD_STATE', 'shutdown not expected');
  if (!isStandardChange(msg.scriptPubkey)) return rejection(record, 'BAD_STATE', 'shutdown script must be P2WPKH or P2WSH');
  if (record.shutdown?.remoteScript) {
    if (equalBytes(record.shutdown.remoteScript, msg.scriptPubkey)) return unchanged(record);
    return rejection(record, 'BAD_STATE', 'shutdown script changed');
  }
  const r = copy(record);
  r.shutdown = r.shutdown ?? { localScript: r.payoutScript, remoteScript: undefined, sent: false, lastProposedFeeSat: undefined, lastProposedSignature: undefined, lastReceived: undefined };
  r.shutdown.remoteScript = msg.scriptPubkey;
  const effects: RsmcEffect[] = [];
  const wasSent = r.shutdown.sent;
  r.shutdown.sent = true;
  if (r.phase !== 'shutting_down') effects.push(ev({ type: 'phase', phase: 'shutting_down' }));
  r.phase = 'shutting_down';
  effects.unshift({ kind: 'persist', reason: 'shutdown' });
  if (!wasSent) effects.push(send({ type: 'shutdown', channelId: r.channelId!, scriptPubkey: r.shutdown.localScript }));
  // Our proposals already sent were sent before this shutdown: the peer commits them with us.
  effects.push(...maybeSignStep(r), ...maybeStartClosing(r));
  return { record: r, effects };
}

/** Opener: once both shutdowns are exchanged and nothing is pending, propose the first closing fee. */
function maybeStartClosing(r: RsmcRecord): RsmcEffect[] {
  const s = r.shutdown;
  if (!s?.sent || !s.remoteScript || r.phase !== 'shutting_down' || !synced(r)) return [];
  if (hasPendingUpdates(r) || !sameSpec(r.localCommit!.spec, r.remoteCommit!.spec)) return [];
  if (r.role !== 'opener' || s.lastProposedFeeSat !== undefined) return [];
  return signClosingAt(r, idealClosingFeeSat(r));
}

function signClosingAt(r: RsmcRecord, feeSat: bigint): RsmcEffect[] {
  const closing = closingTransaction(r, feeSat);
  return [{ kind: 'sign-closing', feeSat, tx: Uint8Array.from(closing.tx.toBuffer()) }];
}

function onClosingSignature(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'closing-signature' }>): RsmcStep {
  if (record.phase !== 'shutting_down' || !record.shutdown) return unchanged(record);
  const r = copy(record);
  const s = r.shutdown!;
  s.lastProposedFeeSat = input.feeSat;
  s.lastProposedSignature = input.signature;
  const effects: RsmcEffect[] = [
    { kind: 'persist', reason: 'closing-signed' },
    send({ type: 'closing_signed', channelId: r.channelId!, feeSat: input.feeSat, signature: input.signature }),
  ];
  if (s.lastReceived && s.lastReceived.feeSat === input.feeSat) return agreeClosing(r, effects);
  return { record: r, effects };
}

/** The fully signed closing transaction, once both sides signed at the same fee. */
function agreedClosingTx(r: RsmcRecord): Uint8Array | undefined {
  const s = r.shutdown;
  if (!s?.lastReceived || !s.lastProposedSignature || s.lastProposedFeeSat !== s.lastReceived.feeSat) return undefined;
  const closing = closingTransaction(r, s.lastReceived.feeSat);
  return Uint8Array.from(withFundingWitness(r, closing.tx, s.lastProposedSignature, s.lastReceived.signature).toBuffer());
}

/**
 * While we wait to see the funding spend: send again what we chose to close with — the agreed closing
 * transaction, or our commitment (never when stale). A cooperative close never falls back to the commitment.
 */
function rebroadcastClose(r: RsmcRecord): RsmcEffect[] {
  const closingTx = agreedClosingTx(r);
  if (closingTx) return [{ kind: 'broadcast', purpose: 'closing', tx: closingTx }];
  return r.stale ? [] : [{ kind: 'broadcast-commitment' }];
}

/** Both signatures at one fee: the closing transaction is final; broadcast it (either side may). */
function agreeClosing(r: RsmcRecord, effects: RsmcEffect[]): RsmcStep {
  r.phase = 'closing';
  effects.push({ kind: 'persist', reason: 'closing' }, ev({ type: 'phase', phase: 'closing' }), { kind: 'broadcast', purpose: 'closing', tx: agreedClosingTx(r)! });
  return { record: r, effects };
}

function onClosingSigned(record: RsmcRecord, msg: Extract<WireMessage, { type: 'closing_signed' }>): RsmcStep {
  if (record.phase !== 'shutting_down' || !record.shutdown?.remoteScript || hasPendingUpdates(record)) {
    if (record.phase === 'closing') return unchanged(record);
    return rejection(record, 'BAD_STATE', 'closing_signed not expected');
  }
  let closing;
  try {
    closing = closingTransaction(record, msg.feeSat);
  } catch (error) {
    return rejection(record, 'BAD_CLOSING_FEE', (error as Error).message);
  }
  if (!verifyRemoteSignature(record, closing.tx, msg.signature)) return rejection(record, 'BAD_SIGNATURE', 'closing signature does not verify');
  const r = copy(record);
  const s = r.shutdown!;
  s.lastReceived = { feeSat: msg.feeSat, signature: msg.signature };
  if (s.lastProposedFeeSat === msg.feeSat) return agreeClosing(r, [{ kind: 'persist', reason: 'closing-signed' }]);
  const ideal = idealClosingFeeSat(r);
  // Accept a fee within [ideal/2, 2 × ideal]; otherwise meet half way (BOLT 2: strictly between).
  let counter: bigint;
  if (msg.feeSat * 2n >= ideal && msg.feeSat <= ideal * 2n) counter = msg.feeSat;
  else {
    const ours = s.lastProposedFeeSat ?? ideal;
    counter = (ours + msg.feeSat) / 2n;
    if (counter === ours || counter === msg.feeSat) counter = msg.feeSat;
  }
  return { record: r, effects: signClosingAt(r, counter) };
}

// ---------------------------------------------------------------------------------------------------
// on chain

function outcomeKindOf(kind: ClosingState['kind']): RsmcOutcomeKind {
  if (kind === 'cooperative') return 'cooperative-close';
  if (kind === 'remote-revoked' || kind === 'local-revoked') return 'penalty';
  return 'unilateral-close';
}

function onFundingSpent(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'funding-spent' }>, ctx: RsmcContext): RsmcStep {
  if (record.phase === 'closed' || record.phase === 'aborted' || !record.remote) return unchanged(record);
  // A confirmed spend is final (the runtime reports confirmations closeDepth deep); a mempool sighting
  // reported after it (a late report, or a double-spend attempt that cannot confirm) changes nothing.
  // Taking it would forget the confirmation height, and with it the to_local sweep's BIP 68 start.
  if (record.closing?.confirmedHeight !== undefined && input.height === undefined) return unchanged(record);
  const tx = Transaction.fromBuffer(Buffer.from(input.tx));
  const txid = hashToTxid(tx.getHash());
  const r = copy(record);
  const effects: RsmcEffect[] = [];
  if (r.closing && r.closing.txid === txid) {
    if (r.closing.confirmedHeight === input.height) return unchanged(record);
    r.closing.confirmedHeight = input.height;
    setValidity(r);
    effects.push({ kind: 'persist', reason: 'closing' });
    effects.push(...resolvePending(r, ctx.tipHeight), ...maybeClosed(r));
    return { record: r, effects };
  }
  const c = classifyFundingSpend(r, tx);
  r.closing = {
    kind: c.kind,
    txid,
    tx: input.tx,
    commitmentNumber: c.commitmentNumber,
    confirmedHeight: input.height,
    pending: c.pending,
    resolutions: [],
    directSat: c.directSat,
  };
  setValidity(r);
  const wasClosing = r.phase === 'closing';
  r.phase = 'closing';
  // Transfers in flight are decided by the commitment that reached the chain; proposals never will be.
  effects.push(...settleByCommitment(r, c.kind, c.commitmentNumber));
  effects.push(...dropProposals(r, 'the channel closed on chain'));
  effects.unshift({ kind: 'persist', reason: 'closing' });
  if (!wasClosing) effects.push(ev({ type: 'phase', phase: 'closing' }));
  effects.push(ev({ type: 'closing', kind: c.kind, txid }));
  for (const p of r.closing.pending) effects.push({ kind: 'watch', outpoint: p.outpoint });
  effects.push(...resolvePending(r, ctx.tipHeight), ...maybeClosed(r));
  return { record: r, effects };
}

/**
 * A commitment with transfers still in flight reached the chain: those it holds happened (our pay() calls
 * complete, the peer's transfers are received), those it does not hold never will. Our commitment holds the
 * peer's changes we received a signature for (acked and signed) and none of our uncompleted ones; the
 * peer's current commitment holds our acked changes; its next one (signed by us, not yet revoked-for) holds
 * our acked and signed ones and the peer's signed ones. A commitment we cannot place (a revoked one, one
 * our record does not know) settles nothing here: the penalty or the lost state decides.
 */
function settleByCommitment(r: RsmcRecord, kind: string, number: bigint | undefined): RsmcEffect[] {
  let sent: Change[];
  let received: Change[];
  if (kind === 'local-latest' && number === r.localCommit?.number) {
    sent = [];
    received = [...r.remoteChanges.acked, ...r.remoteChanges.signed];
  } else if (kind === 'remote-latest' && number === r.remoteCommit?.number) {
    sent = [...r.localChanges.acked];
    received = [];
  } else if (kind === 'remote-latest' && number !== undefined && number === r.remoteNext?.number) {
    sent = [...r.localChanges.acked, ...r.localChanges.signed];
    received = [...r.remoteChanges.signed];
  } else {
    return [];
  }
  const effects: RsmcEffect[] = [];
  const sentIds = new Set(sent.map((c) => c.id));
  for (const c of [...r.localChanges.acked, ...r.localChanges.signed]) {
    if (sentIds.has(c.id)) effects.push(ev({ type: 'payment-sent', id: c.id, amountMsat: c.amountMsat, ...(c.ref !== undefined ? { ref: c.ref } : {}) }));
    else if (c.ref !== undefined) effects.push(ev({ type: 'payment-failed', ref: c.ref, code: 'CHANNEL_CLOSING', message: 'not in the commitment that closed the channel' }));
  }
  for (const c of received) effects.push(ev({ type: 'payment-received', id: c.id, amountMsat: c.amountMsat }));
  r.sentCount += BigInt(sent.length);
  r.receivedCount += BigInt(received.length);
  r.localChanges.acked = [];
  r.localChanges.signed = [];
  r.remoteChanges.acked = [];
  r.remoteChanges.signed = [];
  return effects;
}

/** Classify the recorded funding spend again (with what we now know) and resolve what became ours. */
function reclassify(r: RsmcRecord, tipHeight: number): RsmcEffect[] {
  const closing = r.closing!;
  const c = classifyFundingSpend(r, Transaction.fromBuffer(Buffer.from(closing.tx)));
  const known = new Set(closing.pending.map((p) => outpointKey(p.outpoint)));
  const resolved = new Set(closing.resolutions.flatMap((res) => res.spends.map(outpointKey)));
  const added = c.pending.filter((p) => !known.has(outpointKey(p.outpoint)) && !resolved.has(outpointKey(p.outpoint)));
  r.closing = { ...closing, kind: c.kind, pending: [...closing.pending, ...added] };
  setValidity(r);
  return [
    { kind: 'persist', reason: 'closing' },
    ev({ type: 'closing', kind: c.kind, txid: closing.txid }),
    ...added.map((p): RsmcEffect => ({ kind: 'watch', outpoint: p.outpoint })),
    ...resolvePending(r, tipHeight),
  ];
}

/** to_local sweeps become valid to_self_delay blocks after the commitment confirmed (BIP 68 / BIP 112). */
function setValidity(r: RsmcRecord): void {
  const c = r.closing!;
  c.pending = c.pending.map((p) =>
    p.purpose === 'to-local-sweep'
      ? { ...p, validFromHeight: c.confirmedHeight === undefined ? undefined : c.confirmedHeight + r.remote!.toSelfDelay }
      : p,
  );
}

function outpointKey(o: { txid: string; vout: number }): string {
  return `${o.txid}:${o.vout}`;
}

/** Resolve every pending output that can be resolved at the next block; rebroadcast what is already built. */
function resolvePending(r: RsmcRecord, tipHeight: number): RsmcEffect[] {
  const c = r.closing!;
  const effects: RsmcEffect[] = [];
  for (const p of c.pending) {
    const built = c.resolutions.find((res) => res.spends.some((o) => outpointKey(o) === outpointKey(p.outpoint)));
    if (built) {
      if (built.confirmedHeight === undefined) effects.push({ kind: 'broadcast', purpose: built.purpose, tx: built.tx });
      continue;
    }
    if (p.purpose === 'to-local-sweep' && (p.validFromHeight === undefined || tipHeight + 1 < p.validFromHeight)) continue;
    effects.push({ kind: 'resolve', output: p });
  }
  return effects;
}

function onResolution(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'resolution' }>): RsmcStep {
  if (!record.closing) return unchanged(record);
  const r = copy(record);
  const c = r.closing!;
  const key = input.resolution.spends.map(outpointKey).join(',');
  c.resolutions = c.resolutions.filter((res) => res.spends.map(outpointKey).join(',') !== key);
  c.resolutions.push(input.resolution);
  return { record: r, effects: [{ kind: 'persist', reason: 'resolved' }] };
}

function onOutputSpent(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'output-spent' }>): RsmcStep {
  if (!record.closing) return unchanged(record);
  const key = outpointKey(input.outpoint);
  const pending = record.closing.pending.find((p) => outpointKey(p.outpoint) === key);
  if (!pending || input.height === undefined) return unchanged(record);
  const r = copy(record);
  const c = r.closing!;
  c.pending = c.pending.filter((p) => outpointKey(p.outpoint) !== key);
  c.resolutions = c.resolutions.map((res) => (res.txid === input.txid ? { ...res, confirmedHeight: input.height } : res));
  // Spent by someone else (the peer's penalty on our revoked to_local, say): nothing reaches us from it.
  c.resolutions = c.resolutions.filter((res) => res.txid === input.txid || !res.spends.some((o) => outpointKey(o) === key));
  return { record: r, effects: [{ kind: 'persist', reason: 'resolved' }, ...maybeClosed(r)] };
}

function maybeClosed(r: RsmcRecord): RsmcEffect[] {
  const c = r.closing!;
  if (c.confirmedHeight === undefined || c.pending.length > 0 || r.phase === 'closed') return [];
  const received = c.directSat + c.resolutions.reduce((total, res) => total + (res.confirmedHeight !== undefined ? res.valueSat : 0n), 0n);
  r.phase = 'closed';
  r.outcome = {
    kind: outcomeKindOf(c.kind),
    closingTxid: c.txid,
    blockHeight: c.confirmedHeight,
    localReceivedSat: received,
    localBalanceMsat: r.localCommit?.spec.localMsat ?? 0n,
  };
  return [{ kind: 'persist', reason: 'closed' }, ev({ type: 'phase', phase: 'closed' }), ev({ type: 'closed', outcome: r.outcome })];
}

function onBlock(record: RsmcRecord, height: number): RsmcStep {
  if (record.phase === 'awaiting_ready' || (record.phase === 'funding_signed' && record.localCommit)) {
    const effects: RsmcEffect[] = [{ kind: 'check-funding' }];
    // Our funding transaction may have been dropped from mempools: send it again until it confirms.
    if (record.fundingTx && hasOurWitnesses(record) && (record.remoteInputs.length === 0 || record.remoteWitnessesReceived)) {
      effects.unshift({ kind: 'broadcast', purpose: 'funding', tx: record.fundingTx });
    }
    return { record, effects };
  }
  if (record.phase === 'closing') {
    if (!record.closing) return { record, effects: rebroadcastClose(record) };
    return { record, effects: resolvePending(record, height) };
  }
  return unchanged(record);
}

function onBroadcastResult(record: RsmcRecord, input: Extract<RsmcInput, { kind: 'broadcast-result' }>): RsmcStep {
  if (input.purpose !== 'funding' || record.fundingBroadcast) return unchanged(record);
  const result = input.result;
  if (!result.accepted && result.code !== 'txn-already-in-mempool' && result.code !== 'txn-already-known') {
    return { record, effects: [ev({ type: 'rejected', code: 'FUNDING_REJECTED', message: `the chain refused the funding transaction: ${result.code}` })] };
  }
  const r = copy(record);
  r.fundingBroadcast = true;
  return { record: r, effects: [] };
}

function onPeerError(record: RsmcRecord, msg: Extract<WireMessage, { type: 'error' | 'warning' }>): RsmcStep {
  const code = rsmcErrorCodeOf(msg.code);
  const text = `peer ${msg.type} ${code ?? `0x${msg.code.toString(16)}`}`;
  if (msg.type === 'warning') {
    // The accepter forgot the open (it had not stored it when it stopped) and answers our funding_created
    // with "unknown channel". Before we sign our inputs nobody can broadcast the funding: give it up.
    if (code === 'UNKNOWN_CHANNEL' && record.role === 'opener' && record.phase === 'funding_signed' && !record.fundingBroadcast) {
      return abort(copy(record), 'PEER_ERROR', 'the peer does not know this open (it lost it)', false);
    }
    return { record, effects: [ev({ type: 'rejected', code: code ?? 'PEER_ERROR', message: text })] };
  }
  // BOLT 1: an error fails the channel.
  if (record.phase === 'closing' || !isLive(record)) return unchanged(record);
  return failChannel(record, 'PEER_ERROR', text, false);
}

// ---------------------------------------------------------------------------------------------------

export function rsmcStep(record: RsmcRecord, input: RsmcInput, ctx: RsmcContext): RsmcStep {
  switch (input.kind) {
    case 'message':
      return onMessage(record, input.message, ctx);
    case 'connected':
      return onConnected(record);
    case 'disconnected':
      return onDisconnected(record);
    case 'pay':
      return onPay(record, input);
    case 'close':
      return onCloseCommand(record, input.cooperative);
    case 'open-timeout':
      return onOpenTimeout(record, input.afterMs);
    case 'commitment-signature':
      return onCommitmentSignature(record, input);
    case 'secret-released':
      return onSecretReleased(record, input);
    case 'coins':
      return onCoins(record, input);
    case 'coins-failed':
      return onCoinsFailed(record, input.message);
    case 'funding-inputs-signed':
      return onFundingInputsSigned(record, input.tx);
    case 'closing-signature':
      return onClosingSignature(record, input);
    case 'block':
      return onBlock(record, input.height);
    case 'funding-status':
      return onFundingStatus(record, input);
    case 'funding-spent':
      return onFundingSpent(record, input, ctx);
    case 'output-spent':
      return onOutputSpent(record, input);
    case 'broadcast-result':
      return onBroadcastResult(record, input);
    case 'resolution':
      return onResolution(record, input);
  }
}

function onMessage(record: RsmcRecord, msg: WireMessage, ctx: RsmcContext): RsmcStep {
  switch (msg.type) {
    case 'accept_channel':
      return onAcceptChannel(record, msg, ctx);
    case 'funding_contribution':
      return onFundingContribution(record, msg);
    case 'funding_created':
      return onFundingCreated(record, msg);
    case 'funding_signed':
      return onFundingSigned(record, msg);
    case 'funding_tx_signatures':
      return onFundingTxSignatures(record, msg);
    case 'channel_ready':
      return onChannelReady(record, msg);
    case 'update_transfer':
      return onUpdateTransfer(record, msg);
    case 'commitment_signed':
      return onCommitmentSigned(record, msg);
    case 'revoke_and_ack':
      return onRevokeAndAck(record, msg, ctx);
    case 'channel_reestablish':
      return onChannelReestablish(record, msg);
    case 'shutdown':
      return onShutdown(record, msg);
    case 'closing_signed':
      return onClosingSigned(record, msg);
    case 'error':
    case 'warning':
      return onPeerError(record, msg);
    default:
      return rejection(record, 'BAD_STATE', `${msg.type} is not a revocable-channel message`);
  }
}

/** Hex id for logs. */
export function channelLabel(record: RsmcRecord): string {
  return bytesToHex(channelIdOf(record)).slice(0, 16);
}

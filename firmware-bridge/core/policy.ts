/**
 * The key's policy (firmware-bridge/PROTOCOL.md §5): pure functions from (channel state, request, our
 * public keys) to the channel's next state, or a PolicyRefusal naming the rule. They never sign; key.ts
 * signs only after a rule has passed and the next state is stored.
 *
 * The key does not trust the host's description of a transaction: it rebuilds the transaction from the
 * terms fixed at setup (one-way: src/onchain/oneway.ts; RSMC: BOLT 3 via src/channel/rsmc/commitments.ts)
 * and compares byte for byte, so keys, delays, output set, dust trimming and fee are BOLT 3's or nothing.
 */
import { Transaction } from 'bitcoinjs-lib';
import { buildPaymentTransaction, buildRefundTransaction, maxPaymentMsat, type OneWayChannelTerms } from '../../src/onchain/oneway.js';
import { hashToTxid } from '../../src/onchain/tx.js';
import { localCommitment, remoteCommitment, verifyRemoteSignature, type CommitmentTerms } from '../../src/channel/rsmc/commitments.js';
import { deriveRevocationPublicKey, derivePublicKey, perCommitmentPoint } from '../../src/onchain/rsmc/keys.js';
import { toLocalScript } from '../../src/onchain/rsmc/scripts.js';
import { commitmentBaseFeeSat } from '../../src/onchain/rsmc/fees.js';
import { decodeCommitmentNumber, obscuringFactor } from '../../src/onchain/rsmc/commitment.js';
import { p2wpkhScriptCode } from '../../src/onchain/script.js';
import { commitmentIndex, PerCommitmentSecretStore } from '../../src/onchain/rsmc/shachain.js';
import { equalBytes } from '../../src/bytes.js';
import type { KeyPolicy, SignCounterpartyCommitmentRequest, SignOnewayPaymentRequest, SignSweepRequest, ValidateHolderCommitmentRequest } from '../../src/signer/hid/commands.js';
import type { ChannelState, OnewayChannelState, RsmcChannelState } from './state.js';

/** A rule said no. `reason` is the rule's name (PROTOCOL.md §5), `message` the detail for people. */
export class PolicyRefusal extends Error {
  override readonly name = 'PolicyRefusal';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function refuse(reason: string, message: string): never {
  throw new PolicyRefusal(reason, message);
}

/** The key's own public keys of one channel (`<family>/<keyIndex>`). */
export interface OwnBasepoints {
  fundingPubkey: Uint8Array;
  revocationBasepoint: Uint8Array;
  paymentBasepoint: Uint8Array;
  delayedPaymentBasepoint: Uint8Array;
  htlcBasepoint: Uint8Array;
}

function parseTx(bytes: Uint8Array): Transaction {
  try {
    return Transaction.fromBuffer(Buffer.from(bytes));
  } catch {
    return refuse('policy-tx-malformed', 'the transaction does not parse');
  }
}

function spendsOnlyFunding(tx: Transaction, ch: ChannelState): boolean {
  return tx.ins.length === 1 && equalBytes(tx.ins[0]!.hash, ch.fundingTxid) && tx.ins[0]!.index === ch.fundingVout;
}

function txidBytes(tx: Transaction): Uint8Array {
  return Uint8Array.from(tx.getHash());
}

// ---------------------------------------------------------------------------------------------------
// Spending limits [P-1], [P-2]

export interface SpendingWindow {
  periodStart: number;
  periodSpentMsat: bigint;
}

/** Charge `spentMsat` against the per-signature and per-period limits; the window rolls at `nowSeconds`. */
export function chargeSpending(policy: KeyPolicy, window: SpendingWindow, spentMsat: bigint, nowSeconds: number): SpendingWindow {
  if (spentMsat <= 0n) return window;
  if (spentMsat > policy.maxPaymentMsat) {
    refuse('policy-limit-per-payment', `${spentMsat} msat in one signature, limit ${policy.maxPaymentMsat}`);
  }
  const rolled = nowSeconds >= window.periodStart + policy.periodSeconds || nowSeconds < window.periodStart;
  const start = rolled ? nowSeconds : window.periodStart;
  const spent = (rolled ? 0n : window.periodSpentMsat) + spentMsat;
  if (spent > policy.maxPeriodMsat) {
    refuse('policy-limit-per-period', `${spent} msat in this ${policy.periodSeconds}-second period, limit ${policy.maxPeriodMsat}`);
  }
  return { periodStart: start, periodSpentMsat: spent };
}

// ---------------------------------------------------------------------------------------------------
// One-way payer [P-10]…[P-17]

export function onewayTerms(ch: ChannelState, payerFundingPubkey: Uint8Array): OneWayChannelTerms {
  const setup = ch.oneway;
  if (!setup) return refuse('policy-channel-type', `channel ${ch.keyIndex} is not a one-way channel`);
  return {
    fundingOutpoint: { txid: hashToTxid(ch.fundingTxid), vout: ch.fundingVout },
    fundingValueSat: ch.capacitySat,
    payerFundingPubkey,
    payeeFundingPubkey: setup.payeeFundingPubkey,
    payerScript: setup.payerScript,
    payeeScript: setup.payeeScript,
    expiryHeight: setup.expiryHeight,
    feerateSatPerVb: setup.feerateSatPerVb,
  };
}

export interface OnewayDecision {
  next: OnewayChannelState;
  /** What leaves our balance with this signature (0 for a retry). */
  spentMsat: bigint;
}

export function checkOnewayPayment(
  ch: ChannelState,
  terms: OneWayChannelTerms,
  request: SignOnewayPaymentRequest,
  tipHeight: number,
  policy: KeyPolicy,
): OnewayDecision {
  const state = ch.onewayState ?? { stateNumber: 0n, amountMsat: 0n };
  const tx = parseTx(request.tx);
  // [P-10] only the funding input
  if (!spendsOnlyFunding(tx, ch)) refuse('policy-oneway-input-not-funding', 'a payment spends the funding output and nothing else');
  // [P-11] outputs only to the scripts fixed at setup
  for (const out of tx.outs) {
    if (!equalBytes(out.script, terms.payeeScript) && !equalBytes(out.script, terms.payerScript)) {
      refuse('policy-oneway-output-script', 'an output pays a script that is neither the payee’s nor our change script');
    }
  }
  const txid = txidBytes(tx);
  // [P-12] a byte-identical retry of the last payment is signed again (the signature is deterministic)
  if (request.stateNumber === state.stateNumber && request.amountMsat === state.amountMsat && state.lastTxid && equalBytes(txid, state.lastTxid)) {
    return { next: state, spentMsat: 0n };
  }
  // [P-13] strictly increasing state number and amount
  if (request.stateNumber <= state.stateNumber) {
    refuse('policy-oneway-state-not-increasing', `state ${request.stateNumber} after ${state.stateNumber}`);
  }
  if (request.amountMsat <= state.amountMsat) {
    refuse('policy-oneway-amount-not-increasing', `${request.amountMsat} msat after ${state.amountMsat} msat`);
  }
  // [P-14] never above capacity minus the fee
  const max = maxPaymentMsat(terms);
  if (request.amountMsat > max) refuse('policy-oneway-amount-above-capacity', `${request.amountMsat} msat, at most ${max}`);
  // [P-15] not within the safety margin of the refund's lock: the payer could lose the race with its own refund
  if (tipHeight + policy.expirySafetyBlocks >= terms.expiryHeight) {
    refuse('policy-oneway-expiry-too-close', `tip ${tipHeight} is within ${policy.expirySafetyBlocks} blocks of the refund at ${terms.expiryHeight}`);
  }
  // [P-16] exactly the payment transaction of this amount (values, fee, order, version, lock time)
  let expected: Uint8Array;
  try {
    expected = Uint8Array.from(buildPaymentTransaction(terms, request.amountMsat).tx.toBuffer());
  } catch (error) {
    return refuse('policy-oneway-tx-mismatch', `no payment of this amount can be built: ${(error as Error).message}`);
  }
  if (!equalBytes(expected, request.tx)) refuse('policy-oneway-tx-mismatch', 'the transaction is not the payment of this amount');
  return {
    next: { stateNumber: request.stateNumber, amountMsat: request.amountMsat, lastTxid: txid },
    spentMsat: request.amountMsat - state.amountMsat,
  };
}

/** A one-way setup must describe a channel whose refund can be built (expiry, fee rate, capacity). */
export function checkOnewaySetup(terms: OneWayChannelTerms): void {
  try {
    buildRefundTransaction(terms);
  } catch (error) {
    refuse('policy-setup-invalid', (error as Error).message);
  }
}

/** [P-17] The refund is signed as built at setup: it pays everything back to our script after the expiry. */
export function checkOnewayRefund(terms: OneWayChannelTerms, txBytes: Uint8Array): void {
  parseTx(txBytes);
  const expected = Uint8Array.from(buildRefundTransaction(terms).tx.toBuffer());
  if (!equalBytes(expected, txBytes)) refuse('policy-oneway-refund-mismatch', 'the transaction is not this channel’s refund');
}

// ---------------------------------------------------------------------------------------------------
// RSMC [P-20]…[P-34]

/** The record shape src/channel/rsmc/commitments.ts builds from, out of the setup and our basepoints. */
export function rsmcTerms(ch: ChannelState, ours: OwnBasepoints, feeratePerKw: bigint): CommitmentTerms {
  const setup = ch.rsmc;
  if (!setup) return refuse('policy-channel-type', `channel ${ch.keyIndex} is not a revocable channel`);
  const unused = { channelReserveSat: 0n, htlcMinimumMsat: 0n, maxHtlcValueInFlightMsat: 0n, maxAcceptedHtlcs: 0 };
  return {
    role: setup.opener ? 'opener' : 'accepter',
    fundingOutpoint: { txid: hashToTxid(ch.fundingTxid), vout: ch.fundingVout },
    fundingSat: ch.capacitySat,
    feeratePerKw,
    // PartyConfig.toSelfDelay is the delay a side imposes on the OTHER side.
    local: { ...ours, dustLimitSat: setup.localDustLimitSat, toSelfDelay: setup.remoteDelay, ...unused },
    remote: { ...setup.remote, dustLimitSat: setup.remoteDustLimitSat, toSelfDelay: setup.localDelay, ...unused },
  };
}

function rsmcState(ch: ChannelState): RsmcChannelState {
  return ch.rsmcState ?? { secrets: [] };
}

function checkContent(ch: ChannelState, request: { toLocalMsat: bigint; toRemoteMsat: bigint; feeratePerKw: bigint }): void {
  const setup = ch.rsmc!;
  // [P-20] fee range
  if (request.feeratePerKw < setup.minFeeratePerKw || request.feeratePerKw > setup.maxFeeratePerKw) {
    refuse('policy-rsmc-feerate-out-of-range', `${request.feeratePerKw} sat/kw outside ${setup.minFeeratePerKw}..${setup.maxFeeratePerKw}`);
  }
  if (request.toLocalMsat + request.toRemoteMsat !== ch.capacitySat * 1000n) {
    refuse('policy-rsmc-balances-not-capacity', 'the balances do not add up to the capacity (HTLCs are not supported)');
  }
}

function sameAsBuilt(build: () => { tx: Transaction }, txBytes: Uint8Array): void {
  let expected: Uint8Array;
  try {
    expected = Uint8Array.from(build().tx.toBuffer());
  } catch (error) {
    return refuse('policy-rsmc-commitment-mismatch', `no commitment can be built from these terms: ${(error as Error).message}`);
  }
  // [P-21] keys, delay, output set, dust and fee exactly as BOLT 3 builds them
  if (!equalBytes(expected, txBytes)) refuse('policy-rsmc-commitment-mismatch', 'the transaction is not the BOLT 3 commitment of these terms');
}

export interface RsmcDecision {
  next: RsmcChannelState;
  spentMsat: bigint;
}

export function checkCounterpartyCommitment(ch: ChannelState, ours: OwnBasepoints, request: SignCounterpartyCommitmentRequest): RsmcDecision {
  const terms = rsmcTerms(ch, ours, request.feeratePerKw);
  const state = rsmcState(ch);
  checkContent(ch, request);
  const tx = parseTx(request.tx);
  const txid = txidBytes(tx);
  // [P-22] never a commitment the peer has already revoked
  if (state.counterpartyRevoked !== undefined && request.number <= state.counterpartyRevoked) {
    refuse('policy-rsmc-commitment-revoked', `the peer revoked commitment ${state.counterpartyRevoked}; ${request.number} is not above it`);
  }
  if (state.counterpartyNumber !== undefined && request.number === state.counterpartyNumber) {
    // [P-23] the same commitment again (a retry after a reconnect) is fine; other content under its number is not
    if (!state.counterpartyTxid || !equalBytes(txid, state.counterpartyTxid)) {
      refuse('policy-rsmc-commitment-conflict', `commitment ${request.number} was signed with other content`);
    }
    return { next: state, spentMsat: 0n };
  }
  const expectedNumber = state.counterpartyNumber === undefined ? 0n : state.counterpartyNumber + 1n;
  if (request.number !== expectedNumber) refuse('policy-rsmc-commitment-number', `commitment ${request.number}, expected ${expectedNumber}`);
  // [P-24] at most two unrevoked commitments of the peer's: the next is signed once the one before is revoked
  if (state.counterpartyNumber !== undefined && state.counterpartyNumber > 0n && state.counterpartyRevoked !== state.counterpartyNumber - 1n) {
    refuse('policy-rsmc-counterparty-unrevoked', `commitment ${state.counterpartyNumber - 1n} of the peer is not revoked yet`);
  }
  // Our view: the peer's to_remote is our balance.
  sameAsBuilt(() => remoteCommitment(terms, request.number, { localMsat: request.toRemoteMsat, remoteMsat: request.toLocalMsat }, request.perCommitmentPoint), request.tx);
  const ourMsat = request.toRemoteMsat;
  const before = state.counterpartyLocalMsat;
  return {
    next: {
      ...state,
      counterpartyNumber: request.number,
      counterpartyTxid: txid,
      counterpartyLocalMsat: ourMsat,
      counterpartyPoint: request.perCommitmentPoint,
      previousCounterpartyPoint: state.counterpartyPoint,
    },
    // [P-1] what this signature lets the peer take from our balance
    spentMsat: before !== undefined && before > ourMsat ? before - ourMsat : 0n,
  };
}

export function checkHolderCommitment(ch: ChannelState, ours: OwnBasepoints, ourPoint: Uint8Array, request: ValidateHolderCommitmentRequest): RsmcChannelState {
  const terms = rsmcTerms(ch, ours, request.feeratePerKw);
  const state = rsmcState(ch);
  checkContent(ch, request);
  const tx = parseTx(request.tx);
  const txid = txidBytes(tx);
  if (state.holderRevoked !== undefined && request.number <= state.holderRevoked) {
    refuse('policy-rsmc-commitment-revoked', `we revoked commitment ${state.holderRevoked}; ${request.number} is not above it`);
  }
  if (state.holderNumber !== undefined && request.number === state.holderNumber) {
    if (!state.holderTxid || !equalBytes(txid, state.holderTxid)) refuse('policy-rsmc-commitment-conflict', `commitment ${request.number} was validated with other content`);
    return state;
  }
  const expectedNumber = state.holderNumber === undefined ? 0n : state.holderNumber + 1n;
  if (request.number !== expectedNumber) refuse('policy-rsmc-commitment-number', `commitment ${request.number}, expected ${expectedNumber}`);
  sameAsBuilt(() => localCommitment(terms, request.number, { localMsat: request.toLocalMsat, remoteMsat: request.toRemoteMsat }, ourPoint), request.tx);
  // [P-25] the peer's signature must be valid: only then may the previous commitment be revoked
  if (!verifyRemoteSignature(terms, tx, request.counterpartySignature)) {
    refuse('policy-rsmc-holder-signature-invalid', 'the peer’s signature on our commitment does not verify');
  }
  // [P-26] our balance goes down only as far as a commitment of the peer's we signed (and charged) already
  if (state.holderLocalMsat !== undefined) {
    const floor = state.counterpartyLocalMsat !== undefined && state.counterpartyLocalMsat < state.holderLocalMsat ? state.counterpartyLocalMsat : state.holderLocalMsat;
    if (request.toLocalMsat < floor) refuse('policy-rsmc-holder-balance', `our balance ${request.toLocalMsat} msat is below ${floor} msat we agreed to`);
  }
  return { ...state, holderNumber: request.number, holderTxid: txid, holderLocalMsat: request.toLocalMsat };
}

/** [P-27]/[P-28] What revoking `number` needs; returns the next state (unchanged for a retry). */
export function checkRevoke(ch: ChannelState, number: bigint): RsmcChannelState {
  if (!ch.rsmc) refuse('policy-channel-type', `channel ${ch.keyIndex} is not a revocable channel`);
  const state = rsmcState(ch);
  if (state.holderRevoked !== undefined && number <= state.holderRevoked) return state; // already out: the same secret again
  if (state.holderNumber === undefined || number > state.holderNumber) {
    refuse('policy-rsmc-revoke-without-next-commitment', `no valid commitment ${number + 1n} with the peer’s signature has been seen`);
  }
  if (number === state.holderNumber) refuse('policy-rsmc-revoke-current', `commitment ${number} is our current commitment`);
  const expected = state.holderRevoked === undefined ? 0n : state.holderRevoked + 1n;
  if (number !== expected) refuse('policy-rsmc-revoke-out-of-order', `revoking ${number}, expected ${expected}`);
  return { ...state, holderRevoked: number };
}

/** [P-29] The peer's secret must open the point we signed its commitment with. */
export function checkCounterpartyRevocation(ch: ChannelState, number: bigint, secret: Uint8Array): RsmcChannelState {
  if (!ch.rsmc) refuse('policy-channel-type', `channel ${ch.keyIndex} is not a revocable channel`);
  const state = rsmcState(ch);
  const store = secretStore(state);
  if (state.counterpartyRevoked !== undefined && number <= state.counterpartyRevoked) {
    const known = store.get(commitmentIndex(number));
    if (!known || !equalBytes(known, secret)) refuse('policy-rsmc-revocation-invalid', `the secret of commitment ${number} differs from the one received`);
    return state;
  }
  const expected = state.counterpartyRevoked === undefined ? 0n : state.counterpartyRevoked + 1n;
  if (state.counterpartyNumber === undefined || number !== expected || number !== state.counterpartyNumber - 1n || !state.previousCounterpartyPoint) {
    refuse('policy-rsmc-revocation-unexpected', `a revocation of commitment ${number} is not expected`);
  }
  let point: Uint8Array;
  try {
    point = perCommitmentPoint(secret);
  } catch {
    return refuse('policy-rsmc-revocation-invalid', 'not a valid secret');
  }
  if (!equalBytes(point, state.previousCounterpartyPoint)) refuse('policy-rsmc-revocation-invalid', `the secret does not open commitment ${number}'s point`);
  try {
    store.insert(commitmentIndex(number), secret);
  } catch (error) {
    return refuse('policy-rsmc-revocation-invalid', (error as Error).message);
  }
  const json = store.toJSON();
  const { previousCounterpartyPoint: _dropped, ...rest } = state;
  return {
    ...rest,
    counterpartyRevoked: number,
    secrets: json.secrets.map((s) => ({ index: BigInt(s.index), secret: hexBytes(s.secret) })),
    ...(json.lastIndex !== null ? { secretsLastIndex: BigInt(json.lastIndex) } : {}),
  };
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

export function secretStore(state: RsmcChannelState): PerCommitmentSecretStore {
  return PerCommitmentSecretStore.fromJSON({
    version: 1,
    lastIndex: state.secretsLastIndex === undefined ? null : state.secretsLastIndex.toString(10),
    secrets: state.secrets.map((s) => ({ index: s.index.toString(10), secret: Buffer.from(s.secret).toString('hex') })),
  });
}

/** An upper bound on one sweep input's witness (signature, key or flag, the to_local script). */
const SWEEP_WITNESS_WEIGHT = 160;

function maxFeeSat(maxFeeratePerKw: bigint, weight: number): bigint {
  return (maxFeeratePerKw * BigInt(weight) + 999n) / 1000n;
}

/** [P-30] A cooperative close: our share to the close script fixed at setup, a fee within the range. */
export function checkCooperativeClose(ch: ChannelState, txBytes: Uint8Array): void {
  const setup = ch.rsmc;
  if (!setup) return refuse('policy-channel-type', `channel ${ch.keyIndex} is not a revocable channel`);
  const state = rsmcState(ch);
  const tx = parseTx(txBytes);
  if (!spendsOnlyFunding(tx, ch) || tx.ins[0]!.sequence !== 0xffffffff || tx.locktime !== 0 || tx.outs.length > 2) {
    refuse('policy-rsmc-close-tx', 'a closing transaction spends the funding output alone, final, with at most two outputs');
  }
  if (state.holderLocalMsat === undefined) refuse('policy-rsmc-close-tx', 'no commitment has been validated: nothing to close from');
  const paid = tx.outs.reduce((sum, o) => sum + BigInt(o.value), 0n);
  const feeSat = ch.capacitySat - paid;
  // BOLT 2 closing_signed: the fee is at most the base fee of the final commitment (weight 724, no HTLCs).
  const limit = commitmentBaseFeeSat(setup.maxFeeratePerKw, 0);
  if (feeSat < 0n || feeSat > limit) refuse('policy-rsmc-close-fee', `fee ${feeSat} sat, at most ${limit}`);
  const balanceMsat = state.counterpartyLocalMsat !== undefined && state.counterpartyLocalMsat < state.holderLocalMsat! ? state.counterpartyLocalMsat : state.holderLocalMsat!;
  const dust = setup.localDustLimitSat > setup.remoteDustLimitSat ? setup.localDustLimitSat : setup.remoteDustLimitSat;
  const dueSat = balanceMsat / 1000n - (setup.opener ? feeSat : 0n);
  const ours = tx.outs.find((o) => equalBytes(o.script, setup.closeScript));
  if (dueSat >= dust && !ours) refuse('policy-rsmc-close-output-script', 'our share does not go to the close script fixed at setup');
  if (ours && BigInt(ours.value) < dueSat) refuse('policy-rsmc-close-amount', `our output ${ours.value} sat is below our ${dueSat} sat`);
}

/** [P-31] Broadcasting our own commitment: the latest validated one, never a revoked one. */
export function checkHolderBroadcast(ch: ChannelState, ours: OwnBasepoints, txBytes: Uint8Array): void {
  const setup = ch.rsmc;
  if (!setup) return refuse('policy-channel-type', `channel ${ch.keyIndex} is not a revocable channel`);
  const state = rsmcState(ch);
  const tx = parseTx(txBytes);
  if (tx.ins.length === 1) {
    const [opener, accepter] = setup.opener ? [ours.paymentBasepoint, setup.remote.paymentBasepoint] : [setup.remote.paymentBasepoint, ours.paymentBasepoint];
    const number = decodeCommitmentNumber(tx.locktime, tx.ins[0]!.sequence, obscuringFactor(opener, accepter));
    if (number !== undefined && state.holderRevoked !== undefined && number <= state.holderRevoked) {
      refuse('policy-rsmc-commitment-revoked', `commitment ${number} is revoked`);
    }
  }
  if (!state.holderTxid || !equalBytes(txidBytes(tx), state.holderTxid)) {
    refuse('policy-rsmc-holder-not-latest', 'only our latest validated commitment is signed for broadcast');
  }
  if (state.holderRevoked !== undefined && state.holderNumber! <= state.holderRevoked) {
    refuse('policy-rsmc-commitment-revoked', `commitment ${state.holderNumber} is revoked`);
  }
}

export type SweepKey =
  | { family: 'revocation'; secret: Uint8Array }
  | { family: 'delayed'; point: Uint8Array }
  | { family: 'payment' };

/**
 * [P-32]…[P-34] A sweep: the one output to the sweep script fixed at setup, the spent output exactly the
 * script this key may spend there, and (one input) a fee within the range. Returns how to sign.
 */
export function checkSweep(ch: ChannelState, ours: OwnBasepoints, request: SignSweepRequest, ourPoint: (n: bigint) => Uint8Array): SweepKey {
  const setup = ch.rsmc;
  if (!setup) return refuse('policy-channel-type', `channel ${ch.keyIndex} is not a revocable channel`);
  const state = rsmcState(ch);
  const tx = parseTx(request.tx);
  if (request.inputIndex >= tx.ins.length) refuse('policy-rsmc-sweep-input', 'no such input');
  if (tx.outs.length !== 1 || !equalBytes(tx.outs[0]!.script, setup.sweepScript)) {
    refuse('policy-rsmc-sweep-output-script', 'a sweep pays one output, to the sweep script fixed at setup');
  }
  if (tx.ins.length === 1) {
    const feeSat = request.valueSat - BigInt(tx.outs[0]!.value);
    const limit = maxFeeSat(setup.maxFeeratePerKw, tx.weight() + SWEEP_WITNESS_WEIGHT);
    if (feeSat < 0n || feeSat > limit) refuse('policy-rsmc-sweep-fee', `fee ${feeSat} sat, at most ${limit}`);
  }
  let expectedScriptCode: Uint8Array;
  let key: SweepKey;
  switch (request.kind) {
    case 'penalty': {
      if (state.counterpartyRevoked === undefined || request.number > state.counterpartyRevoked) {
        refuse('policy-rsmc-sweep-not-revoked', `the peer has not revoked commitment ${request.number}`);
      }
      const secret = secretStore(state).get(commitmentIndex(request.number));
      if (!secret) return refuse('policy-rsmc-sweep-not-revoked', `no secret for commitment ${request.number}`);
      const point = perCommitmentPoint(secret);
      expectedScriptCode = toLocalScript(deriveRevocationPublicKey(ours.revocationBasepoint, point), setup.remoteDelay, derivePublicKey(setup.remote.delayedPaymentBasepoint, point));
      key = { family: 'revocation', secret };
      break;
    }
    case 'to-local': {
      if (state.holderNumber === undefined || request.number > state.holderNumber) refuse('policy-rsmc-sweep-input', `commitment ${request.number} is not ours`);
      const point = ourPoint(request.number);
      expectedScriptCode = toLocalScript(deriveRevocationPublicKey(setup.remote.revocationBasepoint, point), setup.localDelay, derivePublicKey(ours.delayedPaymentBasepoint, point));
      key = { family: 'delayed', point };
      break;
    }
    case 'to-remote':
      // option_static_remotekey: our output of the peer's commitment pays our payment basepoint directly.
      expectedScriptCode = p2wpkhScriptCode(ours.paymentBasepoint);
      key = { family: 'payment' };
      break;
  }
  if (!equalBytes(request.scriptCode, expectedScriptCode)) refuse('policy-rsmc-sweep-input', 'the spent output is not one this key may sweep');
  return key;
}

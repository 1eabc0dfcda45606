/**
 * The walk-through's scenarios on the simnet: fund channel outputs, build and broadcast every transaction
 * type, and record what the chain accepted or rejected and why. `npm start` prints them; the simnet
 * scenario tests assert on the same records, so the demo is tested too.
 */
import type { Transaction } from 'bitcoinjs-lib';
import {
  buildClosingTransaction,
  buildCommitmentTransaction,
  buildDelayedSweep,
  buildFundingTransaction,
  buildPaymentTransaction,
  buildPenaltyTransaction,
  buildRefundTransaction,
  commitmentIndex,
  deriveCommitmentKeys,
  fundingWitness,
  generatePerCommitmentSecret,
  htlcSuccessWitness,
  htlcTimeoutWitness,
  p2wpkhOutput,
  perCommitmentPoint,
  sha256,
  signDelayedSweep,
  signFundingInputs,
  signFundingSpend,
  signInput,
  signPenaltyTransaction,
  toLocalRevocationWitness,
  SoftwareSigner,
  verifyFundingSpendSignature,
  type BroadcastResult,
  type CommitmentTransaction,
  type FundingTransaction,
  type Htlc,
  type KeyFamily,
  type KeyLocator,
  type OneWayChannelTerms,
  type OutPoint,
} from '../src/index.js';
import { Simnet } from '../src/chain/simnet/index.js';

export interface StepRecord {
  scenario: string;
  step: string;
  txid?: string;
  result?: BroadcastResult;
  /** What the step expected: accepted, or the Core reject code. */
  expect?: 'accepted' | string;
  note?: string;
}

const key = (family: KeyFamily): KeyLocator => ({ family, index: 0 });

/** A machine with a software signer and the basepoints a channel needs. */
export class Party {
  readonly signer: SoftwareSigner;
  readonly commitmentSeed: Uint8Array;
  funding!: Uint8Array;
  payment!: Uint8Array;
  delayed!: Uint8Array;
  htlc!: Uint8Array;
  revocation!: Uint8Array;
  wallet!: Uint8Array;

  private constructor(readonly name: string, seedByte: number) {
    this.signer = SoftwareSigner.fromSeed(new Uint8Array(32).fill(seedByte));
    this.commitmentSeed = sha256(new Uint8Array(32).fill(seedByte ^ 0xff));
  }

  static async create(name: string, seedByte: number): Promise<Party> {
    const p = new Party(name, seedByte);
    p.funding = await p.signer.getPublicKey(key('funding'));
    p.payment = await p.signer.getPublicKey(key('payment'));
    p.delayed = await p.signer.getPublicKey(key('delayed'));
    p.htlc = await p.signer.getPublicKey(key('htlc'));
    p.revocation = await p.signer.getPublicKey(key('revocation'));
    p.wallet = await p.signer.getPublicKey(key('wallet'));
    return p;
  }

  get walletScript(): Uint8Array {
    return p2wpkhOutput(this.wallet);
  }

  perCommitmentSecret(commitmentNumber: bigint): Uint8Array {
    return generatePerCommitmentSecret(this.commitmentSeed, commitmentIndex(commitmentNumber));
  }

  perCommitmentPoint(commitmentNumber: bigint): Uint8Array {
    return perCommitmentPoint(this.perCommitmentSecret(commitmentNumber));
  }
}

export class Recorder {
  readonly steps: StepRecord[] = [];
  constructor(readonly chain: Simnet) {}

  async broadcast(scenario: string, step: string, tx: Transaction, expect: 'accepted' | string): Promise<BroadcastResult> {
    const result = await this.chain.broadcast(tx.toBuffer());
    this.steps.push({ scenario, step, txid: tx.getId(), result, expect });
    return result;
  }

  note(scenario: string, step: string, note: string): void {
    this.steps.push({ scenario, step, note });
  }

  async mineTo(scenario: string, height: number): Promise<void> {
    const tip = await this.chain.tipHeight();
    if (height > tip) await this.chain.mine(height - tip);
    this.note(scenario, `mine to height ${height}`, `tip is now ${await this.chain.tipHeight()}`);
  }
}

async function fundSingle(chain: Simnet, payer: Party, other: Party, amountSat: bigint): Promise<FundingTransaction> {
  const coin = await chain.faucetToPubkey(payer.wallet, amountSat + 50_000n);
  return buildFundingTransaction({
    fundingPubkeys: [payer.funding, other.funding],
    contributions: [
      {
        coins: [{ outpoint: coin, valueSat: amountSat + 50_000n, pubkey: payer.wallet, key: key('wallet') }],
        amountSat,
        changeScript: payer.walletScript,
      },
    ],
    feerateSatPerVb: 10n,
  });
}

function oneWayTerms(funding: FundingTransaction, payer: Party, payee: Party, expiryHeight: number): OneWayChannelTerms {
  return {
    fundingOutpoint: funding.fundingOutpoint,
    fundingValueSat: funding.fundingValueSat,
    payerFundingPubkey: payer.funding,
    payeeFundingPubkey: payee.funding,
    payerScript: payer.walletScript,
    payeeScript: payee.walletScript,
    expiryHeight,
    feerateSatPerVb: 2n,
  };
}

/** One-way channel: refund early (non-final), settle with the latest payment, old payment and refund as double spends. */
export async function oneWaySettle(r: Recorder, payer: Party, payee: Party): Promise<void> {
  const s = 'one-way: pay and settle';
  const funding = await fundSingle(r.chain, payer, payee, 100_000n);
  const terms = oneWayTerms(funding, payer, payee, (await r.chain.tipHeight()) + 20);
  const context = { fundingScript: funding.fundingScript, fundingValueSat: funding.fundingValueSat };
  // Classic order: the payee signs the refund first; the payer checks it, then signs and broadcasts the funding.
  const refund = buildRefundTransaction(terms);
  const payeeRefundSig = await signFundingSpend(payee.signer, key('funding'), refund.tx, context);
  if (!verifyFundingSpendSignature(refund.tx, context, payee.funding, payeeRefundSig)) throw new Error('bad refund signature');
  const payerRefundSig = await signFundingSpend(payer.signer, key('funding'), refund.tx, context);
  refund.tx.setWitness(0, fundingWitness(payer.funding, payerRefundSig, payee.funding, payeeRefundSig));
  await signFundingInputs(funding, 0, payer.signer);
  await r.broadcast(s, `funding tx (${funding.fundingValueSat} sat into 2-of-2)`, funding.tx, 'accepted');
  await r.chain.mine(1);
  await r.broadcast(s, `refund before its nLockTime ${terms.expiryHeight}`, refund.tx, 'non-final');

  // Payments of 1 000 sat per "gigabyte"; each is a new transaction for the cumulative amount.
  const payments: Array<{ tx: Transaction; payerSig: Uint8Array }> = [];
  for (const gigabytes of [1n, 2n, 3n]) {
    const payment = buildPaymentTransaction(terms, gigabytes * 1_000_000n + 500n);
    const payerSig = await signFundingSpend(payer.signer, key('funding'), payment.tx, context);
    if (!verifyFundingSpendSignature(payment.tx, context, payer.funding, payerSig)) throw new Error('bad payment signature');
    payments.push({ tx: payment.tx, payerSig });
    r.note(s, `payment ${gigabytes}: payer signs ${gigabytes * 1_000_000n + 500n} msat`, `payee output ${payment.payeeValueSat} sat (msat floored), payer change ${payment.payerValueSat} sat, fee ${payment.feeSat} sat`);
  }
  const settle = async (p: { tx: Transaction; payerSig: Uint8Array }) => {
    const payeeSig = await signFundingSpend(payee.signer, key('funding'), p.tx, context);
    p.tx.setWitness(0, fundingWitness(payer.funding, p.payerSig, payee.funding, payeeSig));
    return p.tx;
  };
  await r.broadcast(s, 'payee settles with the latest payment (3)', await settle(payments[2]!), 'accepted');
  await r.broadcast(s, 'an older payment (2) spending the same funding output', await settle(payments[1]!), 'txn-mempool-conflict');
  await r.chain.mine(1);
  await r.mineTo(s, terms.expiryHeight);
  await r.broadcast(s, 'refund after settlement (funding already spent)', refund.tx, 'bad-txns-inputs-missingorspent');
}

/** One-way channel whose payee vanished: the refund confirms once its nLockTime is final. */
export async function oneWayRefund(r: Recorder, payer: Party, payee: Party): Promise<void> {
  const s = 'one-way: payee vanishes, refund';
  const funding = await fundSingle(r.chain, payer, payee, 60_000n);
  const expiryHeight = (await r.chain.tipHeight()) + 10;
  const terms = oneWayTerms(funding, payer, payee, expiryHeight);
  const context = { fundingScript: funding.fundingScript, fundingValueSat: funding.fundingValueSat };
  const refund = buildRefundTransaction(terms);
  const payeeSig = await signFundingSpend(payee.signer, key('funding'), refund.tx, context);
  const payerSig = await signFundingSpend(payer.signer, key('funding'), refund.tx, context);
  await signFundingInputs(funding, 0, payer.signer);
  await r.broadcast(s, 'funding tx', funding.tx, 'accepted');
  await r.chain.mine(1);
  refund.tx.setWitness(0, fundingWitness(payer.funding, payerSig, payee.funding, payeeSig));
  // nLockTime = H is final for a block at height > H (Core's IsFinalTx): the next block must be H + 1.
  await r.mineTo(s, expiryHeight - 1);
  await r.broadcast(s, `refund one block early: tip ${expiryHeight - 1}, next block ${expiryHeight} is not above nLockTime ${expiryHeight}`, refund.tx, 'non-final');
  await r.mineTo(s, expiryHeight);
  // A refund carrying only the payer's signature is not a valid 2-of-2 spend.
  refund.tx.setWitness(0, fundingWitness(payer.funding, payerSig, payee.funding, new Uint8Array(0)));
  await r.broadcast(s, 'refund with the payee signature missing', refund.tx, 'mandatory-script-verify-flag-failed');
  refund.tx.setWitness(0, fundingWitness(payer.funding, payerSig, payee.funding, payeeSig));
  await r.broadcast(s, `refund once final: tip ${expiryHeight}, next block above nLockTime`, refund.tx, 'accepted');
  await r.chain.mine(1);
}

interface RsmcChannel {
  funding: FundingTransaction;
  context: { fundingScript: Uint8Array; fundingValueSat: bigint };
}

/** Dual-funded channel: both parties put in coins, each signs only its own inputs. */
async function openDualFunded(r: Recorder, s: string, a: Party, b: Party, aSat: bigint, bSat: bigint): Promise<RsmcChannel> {
  const coinA = await r.chain.faucetToPubkey(a.wallet, aSat + 20_000n);
  const coinB = await r.chain.faucetToPubkey(b.wallet, bSat + 20_000n);
  const funding = buildFundingTransaction({
    fundingPubkeys: [a.funding, b.funding],
    contributions: [
      { coins: [{ outpoint: coinA, valueSat: aSat + 20_000n, pubkey: a.wallet, key: key('wallet') }], amountSat: aSat, changeScript: a.walletScript },
      { coins: [{ outpoint: coinB, valueSat: bSat + 20_000n, pubkey: b.wallet, key: key('wallet') }], amountSat: bSat, changeScript: b.walletScript },
    ],
    feerateSatPerVb: 5n,
  });
  await signFundingInputs(funding, 0, a.signer);
  await signFundingInputs(funding, 1, b.signer);
  await r.broadcast(s, `dual-funded funding tx (${aSat} + ${bSat} sat)`, funding.tx, 'accepted');
  await r.chain.mine(1);
  return { funding, context: { fundingScript: funding.fundingScript, fundingValueSat: funding.fundingValueSat } };
}

const TO_SELF_DELAY = 12;

/** `owner`'s commitment number n, signed by both (ready to broadcast). */
async function commitmentOf(
  ch: RsmcChannel,
  owner: Party,
  peer: Party,
  ownerIsOpener: boolean,
  n: bigint,
  toOwnerMsat: bigint,
  toPeerMsat: bigint,
  htlcs: Htlc[] = [],
): Promise<CommitmentTransaction> {
  const point = owner.perCommitmentPoint(n);
  const commitment = buildCommitmentTransaction({
    fundingOutpoint: ch.funding.fundingOutpoint,
    fundingValueSat: ch.funding.fundingValueSat,
    localFundingPubkey: owner.funding,
    remoteFundingPubkey: peer.funding,
    keys: deriveCommitmentKeys({
      perCommitmentPoint: point,
      localDelayedPaymentBasepoint: owner.delayed,
      localHtlcBasepoint: owner.htlc,
      remoteHtlcBasepoint: peer.htlc,
      remoteRevocationBasepoint: peer.revocation,
      remotePaymentBasepoint: peer.payment,
    }),
    commitmentNumber: n,
    openerPaymentBasepoint: ownerIsOpener ? owner.payment : peer.payment,
    accepterPaymentBasepoint: ownerIsOpener ? peer.payment : owner.payment,
    localIsOpener: ownerIsOpener,
    toSelfDelay: TO_SELF_DELAY,
    dustLimitSat: 546n,
    feeratePerKw: 2500n,
    toLocalMsat: toOwnerMsat,
    toRemoteMsat: toPeerMsat,
    htlcs,
  });
  const ownerSig = await signFundingSpend(owner.signer, key('funding'), commitment.tx, ch.context);
  const peerSig = await signFundingSpend(peer.signer, key('funding'), commitment.tx, ch.context);
  commitment.tx.setWitness(0, fundingWitness(owner.funding, ownerSig, peer.funding, peerSig));
  return commitment;
}

function outpointOf(c: CommitmentTransaction, kind: string): { outpoint: OutPoint; index: number } {
  const index = c.outputs.findIndex((o) => o.kind === kind);
  if (index < 0) throw new Error(`no ${kind} output`);
  return { outpoint: { txid: c.txid, vout: index }, index };
}

/** Alice broadcasts a state she revoked; Bob's penalty takes everything at once. Also: her own early sweep fails. */
export async function rsmcBreach(r: Recorder, alice: Party, bob: Party): Promise<void> {
  const s = 'RSMC: revoked state punished';
  const ch = await openDualFunded(r, s, alice, bob, 150_000n, 150_000n);
  const state0 = await commitmentOf(ch, alice, bob, true, 0n, 150_000_000n, 150_000_000n);
  // State 1: Alice paid Bob 100 000 sat. She revokes state 0 by handing Bob its per-commitment secret.
  await commitmentOf(ch, alice, bob, true, 1n, 50_000_000n, 250_000_000n);
  const revealed = alice.perCommitmentSecret(0n);
  r.note(s, 'update 0 → 1', 'Alice pays Bob 100 000 sat and revokes state 0 (reveals its per-commitment secret)');

  await r.broadcast(s, 'Alice broadcasts revoked state 0 (150 000 sat to her)', state0.tx, 'accepted');
  await r.chain.mine(1);
  const toLocal = outpointOf(state0, 'to_local');
  const out = state0.outputs[toLocal.index]!;
  const delayed = { outpoint: toLocal.outpoint, valueSat: out.valueSat, witnessScript: out.witnessScript!, toSelfDelay: TO_SELF_DELAY };
  const sweep = buildDelayedSweep(delayed, alice.walletScript, 2500n);
  await signDelayedSweep(alice.signer, key('delayed'), alice.perCommitmentPoint(0n), sweep, delayed);
  await r.broadcast(s, `Alice sweeps to_local before to_self_delay (${TO_SELF_DELAY} blocks)`, sweep.tx, 'non-BIP68-final');

  const revocationPubkey = deriveCommitmentKeys({
    perCommitmentPoint: alice.perCommitmentPoint(0n),
    localDelayedPaymentBasepoint: alice.delayed,
    localHtlcBasepoint: alice.htlc,
    remoteHtlcBasepoint: bob.htlc,
    remoteRevocationBasepoint: bob.revocation,
    remotePaymentBasepoint: bob.payment,
  }).revocationPubkey;
  // signPenaltyTransaction refuses a secret that does not match; sign by hand to show the chain refusing it too.
  const wrongPenalty = buildPenaltyTransaction([{ kind: 'to_local', ...delayed }], revocationPubkey, bob.walletScript, 2500n);
  const wrongSig = await signInput(bob.signer, wrongPenalty.tx, {
    key: key('revocation'),
    tweak: { kind: 'revocation', perCommitmentSecret: alice.perCommitmentSecret(1n) },
    inputIndex: 0,
    scriptCode: delayed.witnessScript,
    valueSat: delayed.valueSat,
  });
  wrongPenalty.tx.setWitness(0, toLocalRevocationWitness(wrongSig, delayed.witnessScript));
  await r.broadcast(s, 'penalty signed with the wrong revocation key (state 1 secret)', wrongPenalty.tx, 'mandatory-script-verify-flag-failed');
  const penalty = buildPenaltyTransaction([{ kind: 'to_local', ...delayed }], revocationPubkey, bob.walletScript, 2500n);
  await signPenaltyTransaction(bob.signer, key('revocation'), revealed, penalty);
  await r.broadcast(s, `Bob's penalty takes Alice's ${out.valueSat} sat at once`, penalty.tx, 'accepted');
  await r.chain.mine(1);
  await r.broadcast(s, 'Alice retries her sweep after the penalty confirmed', sweep.tx, 'bad-txns-inputs-missingorspent');
}

/** A current commitment with HTLCs goes on chain: HTLC-success, HTLC-timeout and the delayed sweep each wait for their lock. */
export async function rsmcUnilateral(r: Recorder, alice: Party, bob: Party): Promise<void> {
  const s = 'RSMC: unilateral close with HTLCs';
  const ch = await openDualFunded(r, s, alice, bob, 200_000n, 100_000n);
  const tip = await r.chain.tipHeight();
  const preimage = sha256(new TextEncoder().encode('reading #42'));
  const offered: Htlc = { id: 0n, direction: 'offered', amountMsat: 20_000_000n, paymentHash: sha256(sha256(new Uint8Array(1))), cltvExpiry: tip + 15 };
  const received: Htlc = { id: 0n, direction: 'received', amountMsat: 30_000_000n, paymentHash: sha256(preimage), cltvExpiry: tip + 40 };
  const commitment = await commitmentOf(ch, alice, bob, true, 5n, 180_000_000n, 70_000_000n, [offered, received]);
  await r.broadcast(s, 'Alice broadcasts her current commitment (2 HTLCs)', commitment.tx, 'accepted');
  await r.chain.mine(1);

  const point = alice.perCommitmentPoint(5n);
  const tweak = { kind: 'perCommitment' as const, perCommitmentPoint: point };
  const signHtlcTx = async (signer: SoftwareSigner, tx: Transaction, script: Uint8Array, valueSat: bigint) =>
    signInput(signer, tx, { key: key('htlc'), tweak, inputIndex: 0, scriptCode: script, valueSat });
  const confirmedAt = (await r.chain.getTransaction(commitment.txid))!.blockHeight!;
  const success = commitment.htlcTransactions.find((t) => t.kind === 'htlc-success')!;
  const timeout = commitment.htlcTransactions.find((t) => t.kind === 'htlc-timeout')!;
  const sigs = async (t: typeof success) => ({
    remote: await signHtlcTx(bob.signer, t.tx, t.htlcWitnessScript, t.htlcValueSat),
    local: await signHtlcTx(alice.signer, t.tx, t.htlcWitnessScript, t.htlcValueSat),
  });
  const successSigs = await sigs(success);
  success.tx.setWitness(0, htlcSuccessWitness(successSigs.remote, successSigs.local, new Uint8Array(32), success.htlcWitnessScript));
  await r.broadcast(s, 'HTLC-success with a wrong preimage', success.tx, 'mandatory-script-verify-flag-failed');
  success.tx.setWitness(0, htlcSuccessWitness(successSigs.remote, successSigs.local, preimage, success.htlcWitnessScript));
  await r.broadcast(s, 'HTLC-success with the preimage', success.tx, 'accepted');

  const timeoutSigs = await sigs(timeout);
  timeout.tx.setWitness(0, htlcTimeoutWitness(timeoutSigs.remote, timeoutSigs.local, timeout.htlcWitnessScript));
  await r.broadcast(s, `HTLC-timeout before cltv_expiry ${offered.cltvExpiry}`, timeout.tx, 'non-final');

  const toLocal = outpointOf(commitment, 'to_local');
  const out = commitment.outputs[toLocal.index]!;
  const delayed = { outpoint: toLocal.outpoint, valueSat: out.valueSat, witnessScript: out.witnessScript!, toSelfDelay: TO_SELF_DELAY };
  const sweep = buildDelayedSweep(delayed, alice.walletScript, 2500n);
  await signDelayedSweep(alice.signer, key('delayed'), point, sweep, delayed);
  // BIP 68: an input with nSequence = d may enter block (coin height + d), i.e. once tip >= coin height + d - 1.
  await r.mineTo(s, confirmedAt + TO_SELF_DELAY - 2);
  await r.broadcast(s, 'to_local sweep one block before to_self_delay', sweep.tx, 'non-BIP68-final');
  await r.chain.mine(1);
  await r.broadcast(s, `to_local sweep in the block ${TO_SELF_DELAY} after the commitment's`, sweep.tx, 'accepted');

  await r.mineTo(s, offered.cltvExpiry);
  await r.broadcast(s, 'HTLC-timeout once the next block is above cltv_expiry', timeout.tx, 'accepted');
  await r.chain.mine(1);
}

/** Cooperative close: one transaction, no delays. */
export async function rsmcCooperativeClose(r: Recorder, alice: Party, bob: Party): Promise<void> {
  const s = 'RSMC: cooperative close';
  const ch = await openDualFunded(r, s, alice, bob, 80_000n, 40_000n);
  const closing = buildClosingTransaction({
    fundingOutpoint: ch.funding.fundingOutpoint,
    fundingValueSat: ch.funding.fundingValueSat,
    localFundingPubkey: alice.funding,
    remoteFundingPubkey: bob.funding,
    localScript: alice.walletScript,
    remoteScript: bob.walletScript,
    // 70 000.5 sat: the half satoshi cannot go on chain and becomes fee.
    toLocalMsat: 70_000_500n,
    toRemoteMsat: ch.funding.fundingValueSat * 1000n - 70_000_500n,
    feeSat: 800n,
    localIsOpener: true,
    dustLimitSat: 546n,
  });
  const aliceSig = await signFundingSpend(alice.signer, key('funding'), closing.tx, ch.context);
  const bobSig = await signFundingSpend(bob.signer, key('funding'), closing.tx, ch.context);
  closing.tx.setWitness(0, fundingWitness(alice.funding, aliceSig, bob.funding, bobSig));
  await r.broadcast(s, `closing tx (${closing.toLocalSat} / ${closing.toRemoteSat} sat, fee ${closing.actualFeeSat} sat)`, closing.tx, 'accepted');
  await r.chain.mine(1);
}

/** Run every scenario on a fresh simnet; returns the records in order. */
export async function runWalkthrough(): Promise<StepRecord[]> {
  const chain = new Simnet();
  const r = new Recorder(chain);
  const sensor = await Party.create('sensor', 1);
  const hotspot = await Party.create('hotspot', 2);
  await oneWaySettle(r, sensor, hotspot);
  await oneWayRefund(r, sensor, hotspot);
  await rsmcBreach(r, sensor, hotspot);
  await rsmcUnilateral(r, sensor, hotspot);
  await rsmcCooperativeClose(r, sensor, hotspot);
  return r.steps;
}

/** True when the step's outcome is what it expected. */
export function asExpected(step: StepRecord): boolean {
  if (!step.result || !step.expect) return true;
  return step.expect === 'accepted' ? step.result.accepted : !step.result.accepted && step.result.code === step.expect;
}

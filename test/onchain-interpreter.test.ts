/**
 * Every transaction type Trickle builds, signed by SoftwareSigner and checked by an independent script
 * engine (bitcore-lib's Interpreter with Core's standard flags): each verifies, and each has misuses that
 * fail for the specific reason Core would give. Also what the interpreter cannot see: weights vs the fee
 * formulas, dust, locktime/sequence encodings and msat rounding.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Transaction } from 'bitcoinjs-lib';
import type { TxOut } from '../src/chain/port.js';
import { verifyTransaction } from '../src/chain/simnet/interpreter.js';
import { bigIntToBytes32, bytesToBigInt, concatBytes } from '../src/bytes.js';
import { CURVE_ORDER } from '../src/crypto/secp256k1.js';
import { feeForWeight } from '../src/amounts.js';
import {
  decodeScriptSignature,
  dustThresholdSat,
  encodeScriptSignature,
  p2wpkhScriptCode,
  p2wshOutput,
} from '../src/onchain/script.js';
import { DUMMY_SIGNATURE, feeForWeightAtSatPerVb, signInput } from '../src/onchain/tx.js';
import {
  buildFundingTransaction,
  fundingScript,
  fundingWitness,
  signFundingInputs,
  signFundingSpend,
  verifyFundingSpendSignature,
  verifyInputSignature,
} from '../src/onchain/funding.js';
import { TxBuildError } from '../src/errors.js';
import {
  buildPaymentTransaction,
  buildRefundTransaction,
  maxPaymentMsat,
  REFUND_SEQUENCE,
} from '../src/onchain/oneway.js';
import { decodeCommitmentNumber, obscuringFactor, type HtlcTransaction } from '../src/onchain/rsmc/commitment.js';
import { buildDelayedSweep, buildSweepTransaction, signDelayedSweep, type DelayedOutput } from '../src/onchain/rsmc/sweep.js';
import { buildPenaltyTransaction, signPenaltyTransaction, type RevokedOutput } from '../src/onchain/rsmc/penalty.js';
import { buildClosingTransaction, closingWeight } from '../src/onchain/rsmc/closing.js';
import { commitmentIndex, generatePerCommitmentSecret } from '../src/onchain/rsmc/shachain.js';
import {
  htlcSuccessWitness,
  offeredHtlcPreimageWitness,
  htlcRevocationWitness,
  receivedHtlcTimeoutWitness,
  toLocalRevocationWitness,
} from '../src/onchain/rsmc/witnesses.js';
import { perCommitmentPoint } from '../src/onchain/rsmc/keys.js';
import type { PenaltyTransaction } from '../src/onchain/rsmc/penalty.js';
import type { KeyLocator, Signer } from '../src/signer/port.js';

/**
 * Sign a penalty without signPenaltyTransaction's key check, to show the chain's own verdict on a
 * penalty made with the wrong revocation key (signPenaltyTransaction refuses to produce one).
 */
async function signPenaltyUnchecked(signer: Signer, key: KeyLocator, secret: Uint8Array, penalty: PenaltyTransaction) {
  for (const [i, o] of penalty.outputs.entries()) {
    const sig = await signInput(signer, penalty.tx, {
      key,
      tweak: { kind: 'revocation', perCommitmentSecret: secret },
      inputIndex: i,
      scriptCode: o.witnessScript,
      valueSat: o.valueSat,
    });
    penalty.tx.setWitness(
      i,
      o.kind === 'to_local' || o.kind === 'htlc_tx_output'
        ? toLocalRevocationWitness(sig, o.witnessScript)
        : htlcRevocationWitness(sig, penalty.revocationPubkey, o.witnessScript),
    );
  }
}
import {
  completeHtlcTransaction,
  fakeOutpoint,
  makeParties,
  makeRsmcScenario,
  oneWayTerms,
  prevoutOf,
  signCommitment,
  signFundingSpendBoth,
  signAs,
  signHtlcTransaction,
  walletCoin,
  type RsmcScenario,
} from './helpers/parties.js';

const [alice, bob, mallory] = await makeParties();
const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------- helpers

function assertValid(tx: Transaction, prevouts: TxOut[]): void {
  const verdict = verifyTransaction(tx.toBuffer(), prevouts);
  assert.equal(verdict.valid, true, `input ${verdict.inputIndex}: ${verdict.error} (${verdict.message})`);
}

/** The interpreter rejects `tx` at `inputIndex` with bitcore's `error` name and Core's `message`. */
function assertRejected(tx: Transaction, prevouts: TxOut[], error: string, message: string, inputIndex = 0): void {
  const verdict = verifyTransaction(tx.toBuffer(), prevouts);
  assert.equal(verdict.valid, false, 'expected the interpreter to reject');
  assert.deepEqual(
    { inputIndex: verdict.inputIndex, error: verdict.error, message: verdict.message },
    { inputIndex, error, message },
  );
}

const NULLFAIL_MSG = 'Signature must be zero for failed CHECK(MULTI)SIG operation';
const LOCKTIME_MSG = 'Locktime requirement not satisfied';

function assertNoDust(tx: Transaction): void {
  for (const [i, out] of tx.outs.entries()) {
    assert.ok(BigInt(out.value) >= dustThresholdSat(out.script), `output ${i} (${out.value} sat) is below dust`);
  }
}

/** Signatures in the witnesses and how far each falls short of the 73 bytes the estimates assume. */
function signatureShortfall(tx: Transaction): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  for (const input of tx.ins) {
    for (const item of input.witness) {
      if (item[0] !== 0x30) continue;
      try {
        decodeScriptSignature(item);
      } catch {
        continue;
      }
      count++;
      bytes += 73 - item.length;
    }
  }
  return { count, bytes };
}

/** Signed weight <= the 73-byte-signature estimate, short of it by exactly the signatures' shortfall (<= 4 each). */
function assertWeightMatchesEstimate(tx: Transaction, estimate: number): void {
  const { count, bytes } = signatureShortfall(tx);
  assert.ok(count > 0, 'no signature found');
  assert.ok(tx.weight() <= estimate, `weight ${tx.weight()} exceeds estimate ${estimate}`);
  assert.equal(estimate - tx.weight(), bytes, 'estimate - weight = signature bytes below 73');
  assert.ok(bytes <= 4 * count, `${bytes} WU short for ${count} signatures`);
}

/** Weight of `tx` with `witnesses` set (worst-case placeholders give the estimate fees are based on). */
function weightWith(tx: Transaction, witnesses: Uint8Array[][]): number {
  const copy = tx.clone();
  witnesses.forEach((w, i) => copy.setWitness(i, w));
  return copy.weight();
}

/** Same signature, other sighash byte: encodes fine, signs nothing. */
function withSighashByte(sig: Uint8Array, byte: number): Uint8Array {
  return concatBytes(sig.subarray(0, -1), Uint8Array.of(byte));
}

/** The same ECDSA signature with s replaced by n - s (still valid math, not canonical). */
function toHighS(sig: Uint8Array): Uint8Array {
  const { signature, sighashType } = decodeScriptSignature(sig);
  const s = bytesToBigInt(signature.subarray(32));
  return encodeScriptSignature(concatBytes(signature.subarray(0, 32), bigIntToBytes32(CURVE_ORDER - s)), sighashType);
}

function outputOf(s: RsmcScenario, kind: 'to_local' | 'to_remote' | 'offered_htlc' | 'received_htlc') {
  const index = s.commitment.outputs.findIndex((o) => o.kind === kind);
  assert.ok(index >= 0, `commitment has no ${kind}`);
  return { index, output: s.commitment.outputs[index]! };
}

function htlcTxOf(s: RsmcScenario, kind: HtlcTransaction['kind']): HtlcTransaction {
  const found = s.commitment.htlcTransactions.find((h) => h.kind === kind);
  assert.ok(found, `no ${kind}`);
  return found;
}

function commitmentPrevout(s: RsmcScenario, index: number): TxOut {
  return prevoutOf(s.commitment.tx, index);
}

function htlcPrevout(h: HtlcTransaction): TxOut {
  return { valueSat: h.htlcValueSat, script: p2wshOutput(h.htlcWitnessScript) };
}

function toLocalOutput(s: RsmcScenario): DelayedOutput {
  const { index, output } = outputOf(s, 'to_local');
  return {
    outpoint: { txid: s.commitment.txid, vout: index },
    valueSat: output.valueSat,
    witnessScript: output.witnessScript!,
    toSelfDelay: s.toSelfDelay,
  };
}

// ---------------------------------------------------------------------------------------------- funding

/** 4 * (10 common + 41 per input + 9 + scriptlen per output) + 2 marker/flag + 109 per P2WPKH witness (1+1+73+1+33). */
function fundingEstimate(inputs: number, outputScripts: Uint8Array[]): number {
  const outputs = outputScripts.reduce((sum, s) => sum + 9 + s.length, 0);
  return 4 * (10 + 41 * inputs + outputs) + 2 + 109 * inputs;
}

describe('funding transaction (P2WPKH inputs → 2-of-2 P2WSH)', () => {
  const fundingPubkeys: [Uint8Array, Uint8Array] = [alice.pubkeys.funding, bob.pubkeys.funding];

  test('single-funded: verifies; fee = formula on the estimated weight; change above dust kept', async () => {
    const c0 = await walletCoin(alice, fakeOutpoint('alice-coin-0'), 150_000n, 0);
    const c1 = await walletCoin(alice, fakeOutpoint('alice-coin-1'), 80_000n, 1);
    const funding = buildFundingTransaction({
      fundingPubkeys,
      contributions: [{ coins: [c0.coin, c1.coin], amountSat: 200_000n, changeScript: alice.walletScript }],
      feerateSatPerVb: 2n,
    });
    await signFundingInputs(funding, 0, alice.signer);
    const prevouts = funding.inputs.map((i) => (i.coin === c0.coin ? c0.prevout : c1.prevout));
    assertValid(funding.tx, prevouts);

    const estimate = fundingEstimate(2, [p2wshOutput(funding.fundingScript), alice.walletScript]);
    assert.equal(funding.feeSat[0], feeForWeightAtSatPerVb(estimate, 2n));
    assertWeightMatchesEstimate(funding.tx, estimate);
    assert.equal(funding.tx.outs.length, 2);
    assert.equal(funding.changeSat[0], 230_000n - 200_000n - funding.feeSat[0]!);
    assertNoDust(funding.tx);
    assert.deepEqual(prevoutOf(funding.tx, funding.fundingOutpoint.vout), {
      valueSat: 200_000n,
      script: p2wshOutput(funding.fundingScript),
    });
    assert.equal(funding.fundingOutpoint.txid, funding.tx.getId(), 'signing does not change the txid');
  });

  test('change below dust is dropped: one output, the would-be change goes to fee', async () => {
    const c0 = await walletCoin(alice, fakeOutpoint('alice-coin-dust'), 100_500n);
    const funding = buildFundingTransaction({
      fundingPubkeys,
      contributions: [{ coins: [c0.coin], amountSat: 100_000n, changeScript: alice.walletScript }],
      feerateSatPerVb: 2n,
    });
    await signFundingInputs(funding, 0, alice.signer);
    assertValid(funding.tx, [c0.prevout]);
    assert.equal(funding.tx.outs.length, 1);
    assert.equal(funding.changeSat[0], 0n);
    assert.equal(funding.feeSat[0], 500n);
    assertNoDust(funding.tx);
  });

  async function dualFunded() {
    const a0 = await walletCoin(alice, fakeOutpoint('dual-alice-0'), 120_000n);
    const b0 = await walletCoin(bob, fakeOutpoint('dual-bob-0'), 60_000n, 0);
    const b1 = await walletCoin(bob, fakeOutpoint('dual-bob-1'), 70_000n, 1);
    const funding = buildFundingTransaction({
      fundingPubkeys,
      contributions: [
        { coins: [a0.coin], amountSat: 100_000n, changeScript: alice.walletScript },
        { coins: [b0.coin, b1.coin], amountSat: 110_000n, changeScript: bob.walletScript },
      ],
      feerateSatPerVb: 3n,
    });
    const byCoin = new Map([a0, b0, b1].map((c) => [c.coin, c.prevout]));
    const prevouts = funding.inputs.map((i) => byCoin.get(i.coin)!);
    return { funding, prevouts };
  }

  test('dual-funded: each party signs only its own inputs and the whole tx verifies; each pays its own fee', async () => {
    const { funding, prevouts } = await dualFunded();
    await signFundingInputs(funding, 0, alice.signer);
    await signFundingInputs(funding, 1, bob.signer);
    assertValid(funding.tx, prevouts);

    const fundingSpk = p2wshOutput(funding.fundingScript);
    // Opener: common fields + funding output + its input and change; accepter: its inputs and change.
    const aliceWeight = fundingEstimate(1, [fundingSpk, alice.walletScript]);
    const bobWeight = 4 * (41 * 2 + 9 + bob.walletScript.length) + 109 * 2;
    assert.equal(funding.feeSat[0], feeForWeightAtSatPerVb(aliceWeight, 3n));
    assert.equal(funding.feeSat[1], feeForWeightAtSatPerVb(bobWeight, 3n));
    assert.equal(aliceWeight + bobWeight, fundingEstimate(3, [fundingSpk, alice.walletScript, bob.walletScript]));
    assertWeightMatchesEstimate(funding.tx, aliceWeight + bobWeight);
    assert.equal(funding.fundingValueSat, 210_000n);
    assertNoDust(funding.tx);
  });

  // Core (and bitcore) report a P2WPKH witness that is not exactly <sig> <pubkey> as a program mismatch;
  // WITNESS_PROGRAM_WITNESS_EMPTY is only for P2WSH.
  test('dual-funded with only the opener\'s inputs signed fails at the accepter\'s first input: WITNESS_PROGRAM_MISMATCH', async () => {
    const { funding, prevouts } = await dualFunded();
    await signFundingInputs(funding, 0, alice.signer);
    const firstBob = funding.inputs.findIndex((i) => i.owner === 1);
    assertRejected(
      funding.tx,
      prevouts,
      'SCRIPT_ERR_WITNESS_PROGRAM_MISMATCH',
      'Witness program hash mismatch',
      firstBob,
    );
  });

  test('a funding input signed by the wrong wallet key fails: SIG_NULLFAIL', async () => {
    const c0 = await walletCoin(alice, fakeOutpoint('alice-coin-wrongkey'), 150_000n);
    const funding = buildFundingTransaction({
      fundingPubkeys,
      contributions: [{ coins: [c0.coin], amountSat: 100_000n, changeScript: alice.walletScript }],
      feerateSatPerVb: 2n,
    });
    const sig = await signInput(mallory.signer, funding.tx, {
      key: mallory.keys.wallet,
      inputIndex: 0,
      scriptCode: p2wpkhScriptCode(c0.coin.pubkey),
      valueSat: 150_000n,
    });
    funding.tx.setWitness(0, [sig, c0.coin.pubkey]);
    assertRejected(funding.tx, [c0.prevout], 'SCRIPT_ERR_SIG_NULLFAIL', NULLFAIL_MSG);
  });
});

// ---------------------------------------------------------------------------------------------- one-way

describe('one-way channel: refund and payment (spends of the 2-of-2)', () => {
  const terms = oneWayTerms(alice, bob); // alice pays, bob is paid
  const context = {
    fundingScript: fundingScript(terms.payerFundingPubkey, terms.payeeFundingPubkey),
    fundingValueSat: terms.fundingValueSat,
  };
  const fundingPrevout: TxOut = { valueSat: terms.fundingValueSat, script: p2wshOutput(context.fundingScript) };
  /** Witness-size estimate of a funding spend: the unsigned tx plus `0 <73> <73> <script>`. */
  const estimateOf = (tx: Transaction) =>
    weightWith(tx, [fundingWitness(alice.pubkeys.funding, DUMMY_SIGNATURE, bob.pubkeys.funding, DUMMY_SIGNATURE)]);

  test('refund: payee signs first, payer completes; verifies; locktime = expiry, sequence non-final; fee = formula', async () => {
    const refund = buildRefundTransaction(terms);
    assert.equal(refund.tx.locktime, terms.expiryHeight);
    assert.equal(refund.tx.ins[0]!.sequence, 0xfffffffe);
    assert.equal(REFUND_SEQUENCE, 0xfffffffe);
    assert.equal(refund.feeSat, feeForWeightAtSatPerVb(estimateOf(refund.tx), terms.feerateSatPerVb));
    await signFundingSpendBoth(refund.tx, alice, bob, terms.fundingValueSat);
    assertValid(refund.tx, [fundingPrevout]);
    assertWeightMatchesEstimate(refund.tx, estimateOf(refund.tx));
    assert.equal(refund.refundValueSat + refund.feeSat, terms.fundingValueSat);
    assertNoDust(refund.tx);
  });

  test('refund whose nLockTime the payer lowers (to mine it early) breaks the payee\'s signature: NULLFAIL', async () => {
    const refund = buildRefundTransaction(terms);
    const payeeSig = await signFundingSpend(bob.signer, bob.keys.funding, refund.tx, context);
    refund.tx.locktime = terms.expiryHeight - 100;
    const payerSig = await signFundingSpend(alice.signer, alice.keys.funding, refund.tx, context); // payer re-signs
    assert.equal(verifyFundingSpendSignature(refund.tx, context, bob.pubkeys.funding, payeeSig), false);
    assert.equal(verifyFundingSpendSignature(refund.tx, context, alice.pubkeys.funding, payerSig), true);
    refund.tx.setWitness(0, fundingWitness(alice.pubkeys.funding, payerSig, bob.pubkeys.funding, payeeSig));
    assertRejected(refund.tx, [fundingPrevout], 'SCRIPT_ERR_NULLFAIL', NULLFAIL_MSG);
  });

  test('payment: payer signs SIGHASH_ALL, payee checks and completes; verifies; locktime 0; fee = formula', async () => {
    const payment = buildPaymentTransaction(terms, 30_000_000n);
    assert.equal(payment.tx.locktime, 0);
    const payerSig = await signFundingSpend(alice.signer, alice.keys.funding, payment.tx, context);
    assert.equal(payerSig.at(-1), 0x01, 'SIGHASH_ALL');
    assert.equal(verifyFundingSpendSignature(payment.tx, context, alice.pubkeys.funding, payerSig), true);
    const payeeSig = await signFundingSpend(bob.signer, bob.keys.funding, payment.tx, context);
    payment.tx.setWitness(0, fundingWitness(alice.pubkeys.funding, payerSig, bob.pubkeys.funding, payeeSig));
    assertValid(payment.tx, [fundingPrevout]);
    assert.equal(payment.payeeValueSat, 30_000n);
    assert.equal(payment.tx.outs[payment.payeeOutputIndex]!.value, 30_000n);
    assert.equal(payment.feeSat, feeForWeightAtSatPerVb(estimateOf(payment.tx), terms.feerateSatPerVb));
    assertWeightMatchesEstimate(payment.tx, estimateOf(payment.tx));
    assertNoDust(payment.tx);
  });

  test('payment the payee enlarges after the payer signed fails on the payer\'s signature: NULLFAIL', async () => {
    const payment = buildPaymentTransaction(terms, 30_000_000n);
    const payerSig = await signFundingSpend(alice.signer, alice.keys.funding, payment.tx, context);
    payment.tx.outs[payment.payeeOutputIndex]!.value += 1_000n;
    payment.tx.outs[1]!.value -= 1_000n;
    assert.equal(verifyFundingSpendSignature(payment.tx, context, alice.pubkeys.funding, payerSig), false);
    const payeeSig = await signFundingSpend(bob.signer, bob.keys.funding, payment.tx, context);
    payment.tx.setWitness(0, fundingWitness(alice.pubkeys.funding, payerSig, bob.pubkeys.funding, payeeSig));
    assertRejected(payment.tx, [fundingPrevout], 'SCRIPT_ERR_NULLFAIL', NULLFAIL_MSG);
  });

  test('payment amounts floor to sat: 1_500_999 msat pays 1500 sat', () => {
    const payment = buildPaymentTransaction(terms, 1_500_999n);
    assert.equal(payment.payeeValueSat, 1500n);
    assert.equal(payment.tx.outs[0]!.value, 1500n);
    assertNoDust(payment.tx);
  });

  test('a 100-sat payment creates no payee output: its value goes to fee', () => {
    const payment = buildPaymentTransaction(terms, 100_000n);
    assert.equal(payment.payeeOutputIndex, -1);
    assert.equal(payment.payeeValueSat, 0n);
    assert.equal(payment.tx.outs.length, 1);
    assert.deepEqual(payment.tx.outs[0]!.script, terms.payerScript);
    const formulaFee = feeForWeightAtSatPerVb(estimateOf(payment.tx), terms.feerateSatPerVb);
    assert.equal(payment.feeSat, formulaFee + 100n);
    assertNoDust(payment.tx);
  });

  test('a payer change below dust is dropped: only the payee output, the change goes to fee', () => {
    const payeeOnly = buildPaymentTransaction(terms, 99_500_000n);
    assert.equal(payeeOnly.payerValueSat, 0n);
    assert.equal(payeeOnly.tx.outs.length, 1);
    assert.deepEqual(payeeOnly.tx.outs[0]!.script, terms.payeeScript);
    assert.equal(payeeOnly.payeeValueSat, 99_500n);
    assert.equal(payeeOnly.feeSat, 500n);
    assertNoDust(payeeOnly.tx);
  });

  test('the maximum payment leaves exactly the payee-only fee; one sat more is refused', () => {
    const max = maxPaymentMsat(terms);
    const payment = buildPaymentTransaction(terms, max);
    assert.equal(payment.tx.outs.length, 1);
    assert.equal(payment.payeeValueSat * 1000n, max);
    assert.equal(payment.feeSat, feeForWeightAtSatPerVb(estimateOf(payment.tx), terms.feerateSatPerVb));
    assert.throws(
      () => buildPaymentTransaction(terms, max + 1000n),
      (e) => e instanceof TxBuildError && e.code === 'FEE_EXCEEDS_VALUE',
    );
  });
});

// ---------------------------------------------------------------------------------------------- RSMC

describe('RSMC commitment (2-of-2 spend of the funding output)', () => {
  test('A\'s commitment verifies; weight <= 724 + 172 per HTLC; no dust; obscured number encodes and decodes', async () => {
    const s = await makeRsmcScenario();
    const tx = await signCommitment(s);
    assertValid(tx, [s.fundingPrevout]);
    assert.equal(s.commitment.htlcTransactions.length, 2);
    assert.equal(s.commitment.expectedWeight, 724 + 172 * 2);
    assert.ok(tx.weight() <= 724 + 172 * 2, `weight ${tx.weight()}`);
    assertNoDust(tx);
    assert.deepEqual(
      s.commitment.outputs.map((o) => o.kind).sort(),
      ['offered_htlc', 'received_htlc', 'to_local', 'to_remote'],
    );
    assert.equal(tx.locktime >>> 24, 0x20);
    assert.equal(tx.ins[0]!.sequence >>> 24, 0x80);
    const factor = obscuringFactor(alice.pubkeys.payment, bob.pubkeys.payment);
    assert.equal(decodeCommitmentNumber(tx.locktime, tx.ins[0]!.sequence, factor), s.commitmentNumber);
    assert.equal(s.commitment.baseFeeSat, feeForWeight(s.feeratePerKw, 724 + 172 * 2));
    assert.equal(s.commitment.actualFeeSat, s.commitment.baseFeeSat, 'no trimming, no msat remainder');
  });

  test('commitment with one funding signature replaced by an empty one fails: NULLFAIL (the other sig is non-empty)', async () => {
    const s = await makeRsmcScenario();
    const { sigB } = await signFundingSpendBoth(s.commitment.tx, alice, bob, s.fundingValueSat);
    s.commitment.tx.setWitness(0, fundingWitness(alice.pubkeys.funding, EMPTY, bob.pubkeys.funding, sigB));
    assertRejected(s.commitment.tx, [s.fundingPrevout], 'SCRIPT_ERR_NULLFAIL', NULLFAIL_MSG);
  });

  test('commitment with both funding signatures empty fails: EVAL_FALSE (CHECKMULTISIG leaves false)', async () => {
    const s = await makeRsmcScenario();
    s.commitment.tx.setWitness(0, fundingWitness(alice.pubkeys.funding, EMPTY, bob.pubkeys.funding, EMPTY));
    assertRejected(
      s.commitment.tx,
      [s.fundingPrevout],
      'SCRIPT_ERR_EVAL_FALSE_IN_STACK',
      'Script evaluated without error but finished with a false/empty top stack element',
    );
  });

  test('commitment signed by a third key in place of B\'s fails: NULLFAIL', async () => {
    const s = await makeRsmcScenario();
    const context = { fundingScript: s.fundingWitnessScript, fundingValueSat: s.fundingValueSat };
    const sigA = await signFundingSpend(alice.signer, alice.keys.funding, s.commitment.tx, context);
    const sigM = await signFundingSpend(mallory.signer, mallory.keys.funding, s.commitment.tx, context);
    s.commitment.tx.setWitness(0, fundingWitness(alice.pubkeys.funding, sigA, bob.pubkeys.funding, sigM));
    assertRejected(s.commitment.tx, [s.fundingPrevout], 'SCRIPT_ERR_NULLFAIL', NULLFAIL_MSG);
  });

  test('to_remote below the dust limit is omitted and its value goes to fee', async () => {
    const s = await makeRsmcScenario({ toRemoteMsat: 500_000n }); // 500 sat < 546
    assert.equal(s.commitment.outputs.some((o) => o.kind === 'to_remote'), false);
    assert.equal(s.commitment.actualFeeSat, s.commitment.baseFeeSat + 500n);
    const tx = await signCommitment(s);
    assertValid(tx, [s.fundingPrevout]);
    assertNoDust(tx);
  });
});

describe('HTLC-timeout and HTLC-success (second stage, 2-of-2 of the HTLC keys)', () => {
  test('HTLC-timeout verifies; locktime = cltv_expiry, sequence 0; weight <= 663; no dust', async () => {
    const s = await makeRsmcScenario();
    const h = htlcTxOf(s, 'htlc-timeout');
    const tx = await completeHtlcTransaction(s, h);
    assertValid(tx, [htlcPrevout(h)]);
    assert.equal(tx.locktime, h.htlc.cltvExpiry);
    assert.equal(tx.ins[0]!.sequence, 0);
    assert.deepEqual(htlcPrevout(h), commitmentPrevout(s, h.commitmentOutputIndex));
    assert.ok(tx.weight() <= 663, `weight ${tx.weight()}`);
    assert.equal(h.feeSat, feeForWeight(s.feeratePerKw, 663));
    assertNoDust(tx);
  });

  test('HTLC-success verifies with the preimage; locktime 0, sequence 0; weight <= 703; no dust', async () => {
    const s = await makeRsmcScenario();
    const h = htlcTxOf(s, 'htlc-success');
    const tx = await completeHtlcTransaction(s, h);
    assertValid(tx, [htlcPrevout(h)]);
    assert.equal(tx.locktime, 0);
    assert.equal(tx.ins[0]!.sequence, 0);
    assert.ok(tx.weight() <= 703, `weight ${tx.weight()}`);
    assert.equal(h.feeSat, feeForWeight(s.feeratePerKw, 703));
    assertNoDust(tx);
  });

  test('HTLC-timeout whose locktime A lowers below cltv_expiry after B signed fails on B\'s signature: NULLFAIL', async () => {
    const s = await makeRsmcScenario();
    const h = htlcTxOf(s, 'htlc-timeout');
    const { remoteSig } = await signHtlcTransaction(s, h);
    h.tx.locktime = h.htlc.cltvExpiry - 1;
    const { localSig } = await signHtlcTransaction(s, h); // A re-signs; B's pre-signed sig is stale
    const check = (pubkey: Uint8Array, sig: Uint8Array) =>
      verifyInputSignature(h.tx, 0, h.htlcWitnessScript, h.htlcValueSat, pubkey, sig);
    assert.equal(check(s.keys.remoteHtlcPubkey, remoteSig), false);
    assert.equal(check(s.keys.localHtlcPubkey, localSig), true);
    h.tx.setWitness(0, [EMPTY, remoteSig, localSig, EMPTY, h.htlcWitnessScript]);
    assertRejected(h.tx, [htlcPrevout(h)], 'SCRIPT_ERR_NULLFAIL', NULLFAIL_MSG);
  });

  test('HTLC-success with a wrong 32-byte preimage fails: EQUALVERIFY', async () => {
    const s = await makeRsmcScenario();
    const h = htlcTxOf(s, 'htlc-success');
    const { remoteSig, localSig } = await signHtlcTransaction(s, h);
    h.tx.setWitness(0, htlcSuccessWitness(remoteSig, localSig, new Uint8Array(32).fill(0xee), h.htlcWitnessScript));
    assertRejected(h.tx, [htlcPrevout(h)], 'SCRIPT_ERR_EQUALVERIFY', 'Script failed an OP_EQUALVERIFY operation');
  });

  // An empty "preimage" is not 32 bytes, so the script takes the remote's timeout branch, whose CLTV the
  // HTLC-success tx (locktime 0) cannot meet: the failure is the lock, not the hash.
  test('HTLC-success with an empty preimage takes the timeout branch and fails: UNSATISFIED_LOCKTIME', async () => {
    const s = await makeRsmcScenario();
    const h = htlcTxOf(s, 'htlc-success');
    const { remoteSig, localSig } = await signHtlcTransaction(s, h);
    h.tx.setWitness(0, [EMPTY, remoteSig, localSig, EMPTY, h.htlcWitnessScript]);
    assertRejected(h.tx, [htlcPrevout(h)], 'SCRIPT_ERR_UNSATISFIED_LOCKTIME', LOCKTIME_MSG);
  });
});

describe('remote\'s direct HTLC claims from A\'s commitment', () => {
  /** B's one-input sweep of an HTLC output of A's commitment, signed with B's HTLC key tweaked by A's point. */
  async function remoteClaim(
    s: RsmcScenario,
    kind: 'offered_htlc' | 'received_htlc',
    witness: (sig: Uint8Array, script: Uint8Array) => Uint8Array[],
    sequence: number,
    locktime = 0,
  ) {
    const { index, output } = outputOf(s, kind);
    const script = output.witnessScript!;
    const outpoint = { txid: s.commitment.txid, vout: index };
    const placeholder = witness(DUMMY_SIGNATURE, script);
    const sweep = buildSweepTransaction(
      [{ outpoint, valueSat: output.valueSat, sequence, witnessPlaceholder: placeholder }],
      bob.walletScript,
      s.feeratePerKw,
      locktime,
    );
    const estimate = weightWith(sweep.tx, [placeholder]);
    const sig = await signAs(s.signing.remoteHtlc, sweep.tx, 0, script, output.valueSat);
    sweep.tx.setWitness(0, witness(sig, script));
    return { sweep, prevout: commitmentPrevout(s, index), estimate, cltv: output.htlc!.cltvExpiry };
  }
  const preimageClaim = (s: RsmcScenario, preimage: Uint8Array) =>
    remoteClaim(s, 'offered_htlc', (sig, script) => offeredHtlcPreimageWitness(sig, preimage, script), 0xffffffff);
  const cltvOf = (s: RsmcScenario) => outputOf(s, 'received_htlc').output.htlc!.cltvExpiry;
  const timeoutClaim = (s: RsmcScenario, locktime: number, sequence: number) =>
    remoteClaim(s, 'received_htlc', receivedHtlcTimeoutWitness, sequence, locktime);

  test('B claims A\'s offered HTLC with the preimage: verifies; fee = formula; weight matches estimate', async () => {
    const s = await makeRsmcScenario();
    const offered = s.htlcs.find((h) => h.htlc.direction === 'offered')!;
    const { sweep, prevout, estimate } = await preimageClaim(s, offered.preimage);
    assertValid(sweep.tx, [prevout]);
    assert.equal(sweep.feeSat, feeForWeight(s.feeratePerKw, estimate));
    assertWeightMatchesEstimate(sweep.tx, estimate);
    assertNoDust(sweep.tx);
  });

  test('B\'s claim of the offered HTLC with a wrong preimage fails: EQUALVERIFY', async () => {
    const s = await makeRsmcScenario();
    const { sweep, prevout } = await preimageClaim(s, new Uint8Array(32).fill(0xee));
    assertRejected(sweep.tx, [prevout], 'SCRIPT_ERR_EQUALVERIFY', 'Script failed an OP_EQUALVERIFY operation');
  });

  test('B reclaims the HTLC A received after cltv_expiry (locktime = cltv, sequence 0xfffffffe): verifies', async () => {
    const s = await makeRsmcScenario();
    const cltv = cltvOf(s);
    const { sweep, prevout, estimate } = await timeoutClaim(s, cltv, 0xfffffffe);
    assert.equal(sweep.tx.locktime, cltv);
    assertValid(sweep.tx, [prevout]);
    assert.equal(sweep.feeSat, feeForWeight(s.feeratePerKw, estimate));
    assertWeightMatchesEstimate(sweep.tx, estimate);
    assertNoDust(sweep.tx);
  });

  test('B\'s timeout claim with tx locktime below cltv_expiry fails: UNSATISFIED_LOCKTIME', async () => {
    const s = await makeRsmcScenario();
    const cltv = cltvOf(s);
    const { sweep, prevout } = await timeoutClaim(s, cltv - 1, 0xfffffffe);
    assertRejected(sweep.tx, [prevout], 'SCRIPT_ERR_UNSATISFIED_LOCKTIME', LOCKTIME_MSG);
  });

  test('B\'s timeout claim with a final input sequence (locktime disabled) fails: UNSATISFIED_LOCKTIME', async () => {
    const s = await makeRsmcScenario();
    const cltv = cltvOf(s);
    const { sweep, prevout } = await timeoutClaim(s, cltv, 0xffffffff);
    assertRejected(sweep.tx, [prevout], 'SCRIPT_ERR_UNSATISFIED_LOCKTIME', LOCKTIME_MSG);
  });
});

describe('owner\'s delayed sweep of to_local (CSV to_self_delay)', () => {
  async function delayedSweep(s: RsmcScenario, output: DelayedOutput, sequence?: number) {
    const sweep = buildDelayedSweep(output, alice.walletScript, s.feeratePerKw);
    const estimate = weightWith(sweep.tx, [[DUMMY_SIGNATURE, EMPTY, output.witnessScript]]);
    if (sequence !== undefined) sweep.tx.ins[0]!.sequence = sequence; // before signing: the sig commits to it
    await signDelayedSweep(alice.signer, alice.keys.delayed, s.perCommitmentPoint, sweep, output);
    const prevout: TxOut = { valueSat: output.valueSat, script: p2wshOutput(output.witnessScript) };
    return { sweep, prevout, estimate };
  }

  test('signDelayedSweep refuses a per-commitment point whose delayed key is not in the script: KEY_MISMATCH', async () => {
    const s = await makeRsmcScenario();
    const output = toLocalOutput(s);
    const sweep = buildDelayedSweep(output, alice.walletScript, s.feeratePerKw);
    const otherPoint = perCommitmentPoint(generatePerCommitmentSecret(s.perCommitmentSeed, commitmentIndex(s.commitmentNumber + 1n)));
    await assert.rejects(
      signDelayedSweep(alice.signer, alice.keys.delayed, otherPoint, sweep, output),
      (e: unknown) => e instanceof TxBuildError && e.code === 'KEY_MISMATCH',
    );
    assert.equal(sweep.tx.ins[0]!.witness.length, 0, 'nothing signed');
  });

  test('A sweeps to_local with nSequence = to_self_delay: verifies; fee = formula; weight matches estimate', async () => {
    const s = await makeRsmcScenario();
    const output = toLocalOutput(s);
    const { sweep, prevout, estimate } = await delayedSweep(s, output);
    assert.equal(sweep.tx.ins[0]!.sequence, 144);
    assert.deepEqual(prevout, commitmentPrevout(s, output.outpoint.vout));
    assertValid(sweep.tx, [prevout]);
    assert.equal(sweep.feeSat, feeForWeight(s.feeratePerKw, estimate));
    assertWeightMatchesEstimate(sweep.tx, estimate);
    assertNoDust(sweep.tx);
  });

  test('A sweeps the output of its confirmed HTLC-success tx the same way: verifies', async () => {
    const s = await makeRsmcScenario();
    const h = htlcTxOf(s, 'htlc-success');
    const htlcTx = await completeHtlcTransaction(s, h);
    const output: DelayedOutput = {
      outpoint: { txid: htlcTx.getId(), vout: 0 },
      valueSat: h.outputValueSat,
      witnessScript: h.outputWitnessScript,
      toSelfDelay: s.toSelfDelay,
    };
    const { sweep, prevout } = await delayedSweep(s, output);
    assert.deepEqual(prevout, prevoutOf(htlcTx, 0));
    assertValid(sweep.tx, [prevout]);
  });

  test('to_local sweep signed with nSequence below to_self_delay fails: UNSATISFIED_LOCKTIME', async () => {
    const s = await makeRsmcScenario();
    const { sweep, prevout } = await delayedSweep(s, toLocalOutput(s), 143);
    assertRejected(sweep.tx, [prevout], 'SCRIPT_ERR_UNSATISFIED_LOCKTIME', LOCKTIME_MSG);
  });

  test('to_local sweep with its signature turned high-S fails: SIG_DER_HIGH_S', async () => {
    const s = await makeRsmcScenario();
    const { sweep, prevout } = await delayedSweep(s, toLocalOutput(s));
    const [sig, ...rest] = sweep.tx.ins[0]!.witness;
    sweep.tx.setWitness(0, [toHighS(sig!), ...rest]);
    assertRejected(
      sweep.tx,
      [prevout],
      'SCRIPT_ERR_SIG_DER_HIGH_S',
      'Non-canonical signature: S value is unnecessarily high',
    );
  });

  test('to_local sweep with its SIGHASH_ALL byte swapped for SIGHASH_NONE fails: SIG_NULLFAIL', async () => {
    const s = await makeRsmcScenario();
    const { sweep, prevout } = await delayedSweep(s, toLocalOutput(s));
    const [sig, ...rest] = sweep.tx.ins[0]!.witness;
    sweep.tx.setWitness(0, [withSighashByte(sig!, 0x02), ...rest]);
    assertRejected(sweep.tx, [prevout], 'SCRIPT_ERR_SIG_NULLFAIL', NULLFAIL_MSG);
  });
});

describe('penalty (justice) transactions on a revoked commitment', () => {
  function revokedCommitmentOutputs(s: RsmcScenario): RevokedOutput[] {
    return (['to_local', 'offered_htlc', 'received_htlc'] as const).map((kind) => {
      const { index, output } = outputOf(s, kind);
      return {
        kind,
        outpoint: { txid: s.commitment.txid, vout: index },
        valueSat: output.valueSat,
        witnessScript: output.witnessScript!,
      };
    });
  }

  /** A's HTLC-timeout tx (confirmed after its revoked commitment) and its to_local-style output. */
  async function revokedHtlcTxOutput(s: RsmcScenario) {
    const h = htlcTxOf(s, 'htlc-timeout');
    const htlcTx = await completeHtlcTransaction(s, h);
    const outpoint = { txid: htlcTx.getId(), vout: 0 };
    const outputs: RevokedOutput[] = [
      { kind: 'htlc_tx_output', outpoint, valueSat: h.outputValueSat, witnessScript: h.outputWitnessScript },
    ];
    return { htlcTx, outputs };
  }

  const penaltyEstimate = (s: RsmcScenario, tx: Transaction, outputs: RevokedOutput[]) =>
    weightWith(
      tx,
      outputs.map((o) =>
        o.kind === 'offered_htlc' || o.kind === 'received_htlc'
          ? [DUMMY_SIGNATURE, s.keys.revocationPubkey, o.witnessScript]
          : [DUMMY_SIGNATURE, Uint8Array.of(1), o.witnessScript],
      ),
    );

  test('B sweeps revoked to_local, offered and received HTLC outputs at once: every input verifies; fee = formula', async () => {
    const s = await makeRsmcScenario();
    const outputs = revokedCommitmentOutputs(s);
    const penalty = buildPenaltyTransaction(outputs, s.keys.revocationPubkey, bob.walletScript, s.feeratePerKw);
    const estimate = penaltyEstimate(s, penalty.tx, outputs);
    await signPenaltyTransaction(bob.signer, bob.keys.revocation, s.perCommitmentSecret, penalty);
    const prevouts = outputs.map((o) => commitmentPrevout(s, o.outpoint.vout));
    assertValid(penalty.tx, prevouts);
    assert.ok(penalty.tx.ins.every((i) => i.sequence === 0xffffffff), 'no relative lock on revocation branches');
    assert.equal(penalty.feeSat, feeForWeight(s.feeratePerKw, estimate));
    assertWeightMatchesEstimate(penalty.tx, estimate);
    assertNoDust(penalty.tx);
  });

  test('B sweeps the output of A\'s revoked HTLC-timeout tx: verifies', async () => {
    const s = await makeRsmcScenario();
    const { htlcTx, outputs } = await revokedHtlcTxOutput(s);
    const penalty = buildPenaltyTransaction(outputs, s.keys.revocationPubkey, bob.walletScript, s.feeratePerKw);
    const estimate = penaltyEstimate(s, penalty.tx, outputs);
    await signPenaltyTransaction(bob.signer, bob.keys.revocation, s.perCommitmentSecret, penalty);
    assertValid(penalty.tx, [prevoutOf(htlcTx, 0)]);
    assert.equal(penalty.feeSat, feeForWeight(s.feeratePerKw, estimate));
    assertWeightMatchesEstimate(penalty.tx, estimate);
    assertNoDust(penalty.tx);
  });

  test('penalty signed with the wrong per-commitment secret fails on every input: SIG_NULLFAIL', async () => {
    const s = await makeRsmcScenario();
    const outputs = revokedCommitmentOutputs(s);
    const penalty = buildPenaltyTransaction(outputs, s.keys.revocationPubkey, bob.walletScript, s.feeratePerKw);
    const wrongSecret = generatePerCommitmentSecret(s.perCommitmentSeed, commitmentIndex(s.commitmentNumber + 1n));
    await assert.rejects(signPenaltyTransaction(bob.signer, bob.keys.revocation, wrongSecret, penalty), (e: unknown) => {
      assert.ok(e instanceof TxBuildError);
      assert.equal(e.code, 'KEY_MISMATCH');
      return true;
    });
    await signPenaltyUnchecked(bob.signer, bob.keys.revocation, wrongSecret, penalty);
    const verdict = verifyTransaction(penalty.tx.toBuffer(), outputs.map((o) => commitmentPrevout(s, o.outpoint.vout)));
    assert.deepEqual(
      verdict.inputs,
      outputs.map(() => ({ valid: false, error: 'SCRIPT_ERR_SIG_NULLFAIL', message: NULLFAIL_MSG })),
    );
  });

  test('penalty on A\'s HTLC-timeout output signed by a third party\'s revocation key fails: SIG_NULLFAIL', async () => {
    const s = await makeRsmcScenario();
    const { htlcTx, outputs } = await revokedHtlcTxOutput(s);
    const penalty = buildPenaltyTransaction(outputs, s.keys.revocationPubkey, mallory.walletScript, s.feeratePerKw);
    await assert.rejects(
      signPenaltyTransaction(mallory.signer, mallory.keys.revocation, s.perCommitmentSecret, penalty),
      (e: unknown) => e instanceof TxBuildError && e.code === 'KEY_MISMATCH',
    );
    await signPenaltyUnchecked(mallory.signer, mallory.keys.revocation, s.perCommitmentSecret, penalty);
    assertRejected(penalty.tx, [prevoutOf(htlcTx, 0)], 'SCRIPT_ERR_SIG_NULLFAIL', NULLFAIL_MSG);
  });

  test('to_local penalty with 0x02 instead of 0x01 selecting the revocation branch fails: MINIMALIF', async () => {
    const s = await makeRsmcScenario();
    const outputs = revokedCommitmentOutputs(s).filter((o) => o.kind === 'to_local');
    const penalty = buildPenaltyTransaction(outputs, s.keys.revocationPubkey, bob.walletScript, s.feeratePerKw);
    await signPenaltyTransaction(bob.signer, bob.keys.revocation, s.perCommitmentSecret, penalty);
    const [sig, one, script] = penalty.tx.ins[0]!.witness;
    assert.deepEqual(one, Uint8Array.of(1));
    assert.deepEqual(penalty.tx.ins[0]!.witness, toLocalRevocationWitness(sig!, script!));
    penalty.tx.setWitness(0, [sig!, Uint8Array.of(2), script!]);
    assertRejected(
      penalty.tx,
      [commitmentPrevout(s, outputs[0]!.outpoint.vout)],
      'SCRIPT_ERR_MINIMALIF',
      'OP_IF/NOTIF argument must be minimal',
    );
  });
});

describe('cooperative closing transaction (2-of-2 spend of the funding output)', () => {
  async function closing(toRemoteMsat: bigint) {
    const s = await makeRsmcScenario({ htlcs: [], toRemoteMsat });
    const shape = {
      fundingOutpoint: s.fundingOutpoint,
      localFundingPubkey: alice.pubkeys.funding,
      remoteFundingPubkey: bob.pubkeys.funding,
      localScript: alice.walletScript,
      remoteScript: bob.walletScript,
    };
    const weight = closingWeight(shape);
    const close = buildClosingTransaction({
      ...shape,
      fundingValueSat: s.fundingValueSat,
      toLocalMsat: s.fundingValueSat * 1000n - toRemoteMsat,
      toRemoteMsat,
      feeSat: feeForWeight(s.feeratePerKw, weight),
      localIsOpener: true,
      dustLimitSat: s.dustLimitSat,
    });
    return { s, close, weight };
  }

  test('closing verifies; fee = feerate on closingWeight; signed weight matches it; locktime 0, final sequence', async () => {
    const { s, close, weight } = await closing(400_000_500n);
    await signFundingSpendBoth(close.tx, alice, bob, s.fundingValueSat);
    assertValid(close.tx, [s.fundingPrevout]);
    assert.equal(close.tx.locktime, 0);
    assert.equal(close.tx.ins[0]!.sequence, 0xffffffff);
    assert.equal(close.toRemoteSat, 400_000n, 'msat floored');
    assert.equal(close.actualFeeSat, feeForWeight(s.feeratePerKw, weight) + 1n, 'fee + the msat remainders');
    assertWeightMatchesEstimate(close.tx, weight);
    assertNoDust(close.tx);
  });

  test('closing drops the remote\'s output below the dust limit', async () => {
    const { s, close } = await closing(500_000n);
    assert.equal(close.tx.outs.length, 1);
    assert.equal(close.toRemoteSat, 0n);
    await signFundingSpendBoth(close.tx, alice, bob, s.fundingValueSat);
    assertValid(close.tx, [s.fundingPrevout]);
    assertNoDust(close.tx);
  });

  test('closing signed by a third key in place of A\'s fails: NULLFAIL', async () => {
    const { s, close } = await closing(400_000_000n);
    const context = { fundingScript: close.fundingScript, fundingValueSat: s.fundingValueSat };
    const sigM = await signFundingSpend(mallory.signer, mallory.keys.funding, close.tx, context);
    const sigB = await signFundingSpend(bob.signer, bob.keys.funding, close.tx, context);
    close.tx.setWitness(0, fundingWitness(alice.pubkeys.funding, sigM, bob.pubkeys.funding, sigB));
    assertRejected(close.tx, [s.fundingPrevout], 'SCRIPT_ERR_NULLFAIL', NULLFAIL_MSG);
  });
});

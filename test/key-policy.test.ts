/**
 * The key's policy (firmware-bridge/PROTOCOL.md §5), rule by rule: the host asks through HidSigner, over
 * the real framing and link, for a signature the policy forbids, and the key refuses with the rule's
 * name, changes nothing, and still signs the legitimate request afterwards.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Transaction } from 'bitcoinjs-lib';
import { MemoryKey, deny, hidSignerFor } from './helpers/key-fixtures.js';
import { CAPACITY_SAT, FEERATE, KEY_INDEX, onewayChannelOn, ourLoc, payee, peer, peerLoc, rsmcChannelOn, spec, type OnewayChannelOnKey, type RsmcChannelOnKey } from './helpers/key-channels.js';
import { KeyRefusedError } from '../src/signer/hid/signer.js';
import { buildPaymentTransaction, buildRefundTransaction } from '../src/onchain/oneway.js';
import { fundingScript } from '../src/onchain/funding.js';
import { p2wpkhOutput, p2wpkhScriptCode } from '../src/onchain/script.js';
import { segwitV0Sighash } from '../src/onchain/sighash.js';
import { verifyDigest } from '../src/crypto/secp256k1.js';
import { localCommitment, remoteCommitment } from '../src/channel/rsmc/commitments.js';
import { buildClosingTransaction } from '../src/onchain/rsmc/closing.js';
import { buildPenaltyTransaction, signPenaltyTransaction } from '../src/onchain/rsmc/penalty.js';
import { buildSweepTransaction } from '../src/onchain/rsmc/sweep.js';
import { deriveRevocationPublicKey, perCommitmentPoint } from '../src/onchain/rsmc/keys.js';
import { DUMMY_SIGNATURE } from '../src/onchain/tx.js';
import type { Spec } from '../src/channel/rsmc/types.js';

function refusedWith(reason: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof KeyRefusedError, `expected KeyRefusedError, got ${String(error)}`);
    assert.equal(error.reason, reason);
    return true;
  };
}

function verifies(signature: Uint8Array, tx: Uint8Array, scriptCode: Uint8Array, valueSat: bigint, pubkey: Uint8Array, inputIndex = 0): boolean {
  return verifyDigest(signature, segwitV0Sighash(tx, inputIndex, scriptCode, valueSat, 1), pubkey);
}

interface OnewayFixture extends OnewayChannelOnKey {
  key: MemoryKey;
  clock: { ms: number };
}

async function onewayFixture(): Promise<OnewayFixture> {
  const clock = { ms: 1_800_000_000_000 };
  const key = await MemoryKey.create({ now: () => clock.ms });
  const channel = await onewayChannelOn(await hidSignerFor(key));
  await channel.setup();
  return { ...channel, key, clock };
}

describe('one-way payer policy', () => {
  test('signs increasing payments, and a byte-identical retry again', async () => {
    const f = await onewayFixture();
    const tx = buildPaymentTransaction(f.terms, 10_000_000n).tx.toBuffer();
    const signature = await f.pay(1n, 10_000_000n);
    assert.ok(verifies(signature, tx, fundingScript(f.terms.payerFundingPubkey, f.terms.payeeFundingPubkey), f.terms.fundingValueSat, f.terms.payerFundingPubkey));
    assert.deepEqual(await f.pay(1n, 10_000_000n), signature);
    await f.pay(2n, 20_000_000n);
    assert.deepEqual(await f.hid.channelState(0), { kind: 'oneway', stateNumber: 2n, amountMsat: 20_000_000n });
  });

  test('policy-oneway-state-not-increasing and policy-oneway-amount-not-increasing', async () => {
    const f = await onewayFixture();
    await f.pay(5n, 50_000_000n);
    await assert.rejects(f.pay(5n, 60_000_000n), refusedWith('policy-oneway-state-not-increasing'));
    await assert.rejects(f.pay(4n, 60_000_000n), refusedWith('policy-oneway-state-not-increasing'));
    await assert.rejects(f.pay(6n, 50_000_000n), refusedWith('policy-oneway-amount-not-increasing'));
    await assert.rejects(f.pay(6n, 40_000_000n), refusedWith('policy-oneway-amount-not-increasing'));
    assert.deepEqual(await f.hid.channelState(0), { kind: 'oneway', stateNumber: 5n, amountMsat: 50_000_000n });
    await f.pay(6n, 60_000_000n);
  });

  test('policy-oneway-amount-above-capacity', async () => {
    const f = await onewayFixture();
    await f.hid.setPolicy({ maxPaymentMsat: 10n ** 12n, maxPeriodMsat: 10n ** 12n, periodSeconds: 60, expirySafetyBlocks: 6 });
    const tx = buildPaymentTransaction(f.terms, 10_000_000n).tx.toBuffer();
    await assert.rejects(f.pay(1n, 1_000_000_000n, { tx }), refusedWith('policy-oneway-amount-above-capacity'));
  });

  test('policy-oneway-output-script: a payment to another script', async () => {
    const f = await onewayFixture();
    const thief = p2wpkhOutput(await payee.getPublicKey({ family: 'wallet', index: 66 }));
    const tx = buildPaymentTransaction({ ...f.terms, payeeScript: thief }, 10_000_000n).tx.toBuffer();
    await assert.rejects(f.pay(1n, 10_000_000n, { tx }), refusedWith('policy-oneway-output-script'));
  });

  test('policy-oneway-input-not-funding: another input, or another outpoint', async () => {
    const f = await onewayFixture();
    const tx = buildPaymentTransaction(f.terms, 10_000_000n).tx;
    tx.addInput(Buffer.alloc(32, 1), 0);
    await assert.rejects(f.pay(1n, 10_000_000n, { tx: tx.toBuffer() }), refusedWith('policy-oneway-input-not-funding'));
    const elsewhere = buildPaymentTransaction({ ...f.terms, fundingOutpoint: { txid: 'cd'.repeat(32), vout: 1 } }, 10_000_000n).tx.toBuffer();
    await assert.rejects(f.pay(1n, 10_000_000n, { tx: elsewhere }), refusedWith('policy-oneway-input-not-funding'));
  });

  test('policy-oneway-tx-mismatch: the right scripts with other values', async () => {
    const f = await onewayFixture();
    // The host claims 10,000 sat but the transaction pays the payee 20,000.
    const tx = buildPaymentTransaction(f.terms, 20_000_000n).tx.toBuffer();
    await assert.rejects(f.pay(1n, 10_000_000n, { tx }), refusedWith('policy-oneway-tx-mismatch'));
  });

  test('policy-oneway-expiry-too-close; a host cannot turn the key’s tip back', async () => {
    const f = await onewayFixture();
    await assert.rejects(f.pay(1n, 10_000_000n, { tipHeight: 994 }), refusedWith('policy-oneway-expiry-too-close'));
    await f.pay(1n, 10_000_000n, { tipHeight: 993 });
    await assert.rejects(f.pay(2n, 11_000_000n, { tipHeight: 995 }), refusedWith('policy-oneway-expiry-too-close'));
    // The key keeps the highest tip it has been told: with a margin of 7, 993 is too close, whatever the host says now.
    await f.hid.setPolicy({ ...(await f.hid.info()).policy, expirySafetyBlocks: 7 });
    await assert.rejects(f.pay(2n, 11_000_000n, { tipHeight: 100 }), refusedWith('policy-oneway-expiry-too-close'));
  });

  test('policy-limit-per-payment and policy-limit-per-period (the window rolls on the key’s clock)', async () => {
    const f = await onewayFixture();
    await f.hid.setPolicy({ maxPaymentMsat: 5_000_000n, maxPeriodMsat: 12_000_000n, periodSeconds: 60, expirySafetyBlocks: 6 });
    await assert.rejects(f.pay(1n, 5_000_001n), refusedWith('policy-limit-per-payment'));
    await f.pay(1n, 5_000_000n);
    await f.pay(2n, 10_000_000n);
    await assert.rejects(f.pay(3n, 13_000_000n), refusedWith('policy-limit-per-period'));
    f.clock.ms += 60_000;
    await f.pay(3n, 13_000_000n);
  });

  test('policy-oneway-refund-mismatch: the refund only as built at setup', async () => {
    const f = await onewayFixture();
    const sign = (tx: Transaction) =>
      f.hid.signInput({ key: { family: 'funding', index: 0 }, context: { kind: 'oneway-refund' }, tx: tx.toBuffer(), inputIndex: 0, scriptCode: fundingScript(f.terms.payerFundingPubkey, f.terms.payeeFundingPubkey), valueSat: f.terms.fundingValueSat });
    await sign(buildRefundTransaction(f.terms).tx);
    const elsewhere = buildRefundTransaction({ ...f.terms, payerScript: f.terms.payeeScript }).tx;
    await assert.rejects(sign(elsewhere), refusedWith('policy-oneway-refund-mismatch'));
  });

  test('policy-channel-unknown, policy-setup-conflict, and a setup the user declines', async () => {
    const f = await onewayFixture();
    await assert.rejects(
      f.hid.signInput({ key: { family: 'funding', index: 3 }, context: { kind: 'oneway-payment', stateNumber: 1n, amountMsat: 1000n, tipHeight: 1 }, tx: buildPaymentTransaction(f.terms, 1000n).tx.toBuffer(), inputIndex: 0, scriptCode: new Uint8Array(1), valueSat: 1n }),
      refusedWith('policy-channel-unknown'),
    );
    const setup = { keyIndex: 0, fundingOutpoint: f.terms.fundingOutpoint, capacitySat: 2_000_000n, oneway: { payeeFundingPubkey: f.terms.payeeFundingPubkey, payerScript: f.terms.payerScript, payeeScript: f.terms.payeeScript, expiryHeight: 1000, feerateSatPerVb: 2n } };
    await assert.rejects(f.hid.setupChannel(setup), refusedWith('policy-setup-conflict'));
    const declining = await MemoryKey.create({ confirm: deny });
    const hid = await hidSignerFor(declining);
    await assert.rejects(hid.setupChannel({ ...setup, keyIndex: 1 }), (e) => e instanceof KeyRefusedError && e.status === 'denied');
    assert.equal((await hid.info()).channels, 0);
  });

  test('a channel key is never signed blind: no context, no signature', async () => {
    const f = await onewayFixture();
    await assert.rejects(
      f.hid.signInput({ key: { family: 'funding', index: 0 }, tx: buildPaymentTransaction(f.terms, 1000n).tx.toBuffer(), inputIndex: 0, scriptCode: new Uint8Array(1), valueSat: 1n }),
      TypeError,
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// RSMC

interface RsmcFixture extends RsmcChannelOnKey {
  key: MemoryKey;
}

async function rsmcFixture(): Promise<RsmcFixture> {
  const key = await MemoryKey.create();
  const f = await rsmcChannelOn(await hidSignerFor(key));
  await f.setup();
  await f.signTheirs(0n, spec(600_000n));
  await f.validateOurs(0n, spec(600_000n));
  return { ...f, key };
}

describe('RSMC policy', () => {
  test('a full update cycle signs, validates and revokes; the secret opens the point', async () => {
    const f = await rsmcFixture();
    await f.signTheirs(1n, spec(590_000n));
    await f.peerRevokes(0n);
    await f.validateOurs(1n, spec(590_000n));
    const { secret, nextPoint } = await f.revoke(0n);
    assert.deepEqual(perCommitmentPoint(secret), await f.hid.perCommitmentPoint(ourLoc('commitment'), 0n));
    assert.deepEqual(nextPoint, await f.hid.perCommitmentPoint(ourLoc('commitment'), 2n));
    // A retry of the revocation returns the same secret.
    assert.deepEqual((await f.revoke(0n)).secret, secret);
    assert.deepEqual(await f.hid.channelState(KEY_INDEX), { kind: 'rsmc', holderNumber: 1n, holderRevoked: 0n, counterpartyNumber: 1n, counterpartyRevoked: 0n });
  });

  test('policy-rsmc-commitment-mismatch: another delay, another key, an extra output', async () => {
    const f = await rsmcFixture();
    const point = await peer.perCommitmentPoint(peerLoc('commitment'), 1n);
    const longer = remoteCommitment({ ...f.terms, local: { ...f.terms.local, toSelfDelay: 6 } }, 1n, spec(590_000n), point).tx.toBuffer();
    await assert.rejects(f.signTheirs(1n, spec(590_000n), { tx: longer }), refusedWith('policy-rsmc-commitment-mismatch'));
    const otherKey = remoteCommitment({ ...f.terms, local: { ...f.terms.local, paymentBasepoint: f.terms.remote!.paymentBasepoint } }, 1n, spec(590_000n), point).tx;
    await assert.rejects(f.signTheirs(1n, spec(590_000n), { tx: otherKey.toBuffer() }), refusedWith('policy-rsmc-commitment-mismatch'));
    const extra = remoteCommitment(f.terms, 1n, spec(590_000n), point).tx;
    extra.addOutput(f.closeScript, 1000n);
    await assert.rejects(f.signTheirs(1n, spec(590_000n), { tx: extra.toBuffer() }), refusedWith('policy-rsmc-commitment-mismatch'));
    // Our own commitment is checked the same way before it counts.
    await f.signTheirs(1n, spec(590_000n));
    await f.peerRevokes(0n);
    await assert.rejects(f.validateOurs(1n, spec(591_000n)).then(() => f.hid.validateHolderCommitment({ keyIndex: KEY_INDEX, number: 2n, toLocalMsat: 1n, toRemoteMsat: 1n, feeratePerKw: FEERATE, tx: longer, counterpartySignature: new Uint8Array(64) })), refusedWith('policy-rsmc-balances-not-capacity'));
  });

  test('policy-rsmc-feerate-out-of-range and policy-rsmc-balances-not-capacity', async () => {
    const f = await rsmcFixture();
    await assert.rejects(f.signTheirs(1n, spec(590_000n), { feeratePerKw: 20_000n }), refusedWith('policy-rsmc-feerate-out-of-range'));
    const point = await peer.perCommitmentPoint(peerLoc('commitment'), 1n);
    const tx = remoteCommitment(f.terms, 1n, spec(590_000n), point).tx.toBuffer();
    await assert.rejects(f.signTheirs(1n, { localMsat: 1n, remoteMsat: 1n }, { tx }), refusedWith('policy-rsmc-balances-not-capacity'));
  });

  test('policy-rsmc-commitment-revoked: never a commitment the peer revoked; policy-rsmc-commitment-number', async () => {
    const f = await rsmcFixture();
    await f.update(0n, spec(590_000n));
    await f.update(1n, spec(580_000n));
    await assert.rejects(f.signTheirs(1n, spec(500_000n)), refusedWith('policy-rsmc-commitment-revoked'));
    await assert.rejects(f.signTheirs(0n, spec(500_000n)), refusedWith('policy-rsmc-commitment-revoked'));
    await assert.rejects(f.signTheirs(4n, spec(500_000n)), refusedWith('policy-rsmc-commitment-number'));
    await f.signTheirs(3n, spec(570_000n));
  });

  test('policy-rsmc-commitment-conflict and policy-rsmc-counterparty-unrevoked', async () => {
    const f = await rsmcFixture();
    await f.signTheirs(1n, spec(590_000n));
    await f.signTheirs(1n, spec(590_000n)); // the same again: fine
    await assert.rejects(f.signTheirs(1n, spec(500_000n)), refusedWith('policy-rsmc-commitment-conflict'));
    await assert.rejects(f.signTheirs(2n, spec(580_000n)), refusedWith('policy-rsmc-counterparty-unrevoked'));
  });

  test('policy-rsmc-revoke-current and policy-rsmc-revoke-without-next-commitment', async () => {
    const f = await rsmcFixture();
    await assert.rejects(f.revoke(0n), refusedWith('policy-rsmc-revoke-current'));
    await assert.rejects(f.revoke(1n), refusedWith('policy-rsmc-revoke-without-next-commitment'));
    await f.signTheirs(1n, spec(590_000n));
    await f.peerRevokes(0n);
    // Without a valid signature on commitment 1 there is nothing to revoke 0 for.
    await assert.rejects(f.validateOurs(1n, spec(590_000n), { badSignature: true }), refusedWith('policy-rsmc-holder-signature-invalid'));
    await assert.rejects(f.revoke(0n), refusedWith('policy-rsmc-revoke-current'));
    await f.validateOurs(1n, spec(590_000n));
    await f.revoke(0n);
  });

  test('policy-rsmc-holder-balance: our own commitment cannot take more than we signed away', async () => {
    const f = await rsmcFixture();
    await f.signTheirs(1n, spec(590_000n));
    await f.peerRevokes(0n);
    await assert.rejects(f.validateOurs(1n, spec(500_000n)), refusedWith('policy-rsmc-holder-balance'));
    await f.validateOurs(1n, spec(590_000n));
  });

  test('policy-rsmc-revocation-invalid and policy-rsmc-revocation-unexpected', async () => {
    const f = await rsmcFixture();
    await f.signTheirs(1n, spec(590_000n));
    await assert.rejects(f.peerRevokes(0n, new Uint8Array(32).fill(3)), refusedWith('policy-rsmc-revocation-invalid'));
    const secretOf1 = (await peer.revokeCommitment(peerLoc('commitment'), 1n)).secret;
    await assert.rejects(f.peerRevokes(1n, secretOf1), refusedWith('policy-rsmc-revocation-unexpected'));
    await f.peerRevokes(0n);
  });

  test('spending limits apply to what a commitment of the peer’s takes from our balance', async () => {
    const f = await rsmcFixture();
    await f.hid.setPolicy({ maxPaymentMsat: 20_000_000n, maxPeriodMsat: 30_000_000n, periodSeconds: 3600, expirySafetyBlocks: 6 });
    await assert.rejects(f.signTheirs(1n, spec(579_000n)), refusedWith('policy-limit-per-payment'));
    await f.update(0n, spec(580_000n));
    await assert.rejects(f.signTheirs(2n, spec(569_000n)), refusedWith('policy-limit-per-period'));
    // Money coming in is not limited.
    await f.update(1n, spec(700_000n));
  });

  test('cooperative close: policy-rsmc-close-output-script, policy-rsmc-close-amount, policy-rsmc-close-fee', async () => {
    const f = await rsmcFixture();
    await f.update(0n, spec(590_000n));
    const remoteScript = p2wpkhOutput(await peer.getPublicKey(peerLoc('wallet')));
    const close = (o: { localScript?: Uint8Array; localSat?: bigint; feeSat?: bigint }) => {
      const tx = buildClosingTransaction({
        fundingOutpoint: f.terms.fundingOutpoint!,
        fundingValueSat: CAPACITY_SAT,
        localFundingPubkey: f.terms.local.fundingPubkey,
        remoteFundingPubkey: f.terms.remote!.fundingPubkey,
        localScript: o.localScript ?? f.closeScript,
        remoteScript,
        toLocalMsat: (o.localSat ?? 590_000n) * 1000n,
        toRemoteMsat: (CAPACITY_SAT - (o.localSat ?? 590_000n)) * 1000n,
        feeSat: o.feeSat ?? 700n,
        localIsOpener: true,
        dustLimitSat: 546n,
      }).tx.toBuffer();
      return f.hid.signInput({ key: ourLoc('funding'), context: { kind: 'cooperative-close' }, tx, inputIndex: 0, scriptCode: f.fundingScript, valueSat: CAPACITY_SAT });
    };
    await assert.rejects(close({ localScript: remoteScript }), refusedWith('policy-rsmc-close-output-script'));
    await assert.rejects(close({ localSat: 500_000n }), refusedWith('policy-rsmc-close-amount'));
    await assert.rejects(close({ feeSat: 50_000n }), refusedWith('policy-rsmc-close-fee'));
    await close({});
  });

  test('broadcasting our commitment: the latest only, never a revoked one', async () => {
    const f = await rsmcFixture();
    await f.update(0n, spec(590_000n));
    const sign = async (n: bigint, s: Spec) => {
      const tx = localCommitment(f.terms, n, s, await f.hid.perCommitmentPoint(ourLoc('commitment'), n)).tx.toBuffer();
      return f.hid.signInput({ key: ourLoc('funding'), context: { kind: 'holder-commitment' }, tx, inputIndex: 0, scriptCode: f.fundingScript, valueSat: CAPACITY_SAT });
    };
    await assert.rejects(sign(0n, spec(600_000n)), refusedWith('policy-rsmc-commitment-revoked'));
    await assert.rejects(sign(1n, spec(400_000n)), refusedWith('policy-rsmc-holder-not-latest'));
    await sign(1n, spec(590_000n));
  });

  test('sweeps: policy-rsmc-sweep-output-script, policy-rsmc-sweep-not-revoked, policy-rsmc-sweep-input', async () => {
    const f = await rsmcFixture();
    await f.update(0n, spec(590_000n));
    // The peer's revoked commitment 0: its to_local is ours to take with the revocation key.
    const point0 = await peer.perCommitmentPoint(peerLoc('commitment'), 0n);
    const revoked = remoteCommitment(f.terms, 0n, spec(600_000n), point0);
    const vout = revoked.outputs.findIndex((o) => o.kind === 'to_local');
    const toLocal = revoked.outputs[vout]!;
    const secret0 = (await peer.revokeCommitment(peerLoc('commitment'), 0n)).secret;
    const penaltyTo = (script: Uint8Array) =>
      buildPenaltyTransaction([{ kind: 'to_local', outpoint: { txid: revoked.txid, vout }, valueSat: toLocal.valueSat, witnessScript: toLocal.witnessScript! }], deriveRevocationPublicKey(f.terms.local.revocationBasepoint, point0), script, 2000n);
    const good = penaltyTo(f.closeScript);
    await signPenaltyTransaction(f.hid, ourLoc('revocation'), secret0, good, { kind: 'sweep', sweep: 'penalty', number: 0n });
    assert.equal(good.tx.ins[0]!.witness.length, 3);
    await assert.rejects(signPenaltyTransaction(f.hid, ourLoc('revocation'), secret0, penaltyTo(f.terms.local.fundingPubkey.subarray(0, 22)), { kind: 'sweep', sweep: 'penalty', number: 0n }), refusedWith('policy-rsmc-sweep-output-script'));
    // Commitment 1 of the peer's is its current one: no penalty for it.
    const point1 = await peer.perCommitmentPoint(peerLoc('commitment'), 1n);
    const current = remoteCommitment(f.terms, 1n, spec(590_000n), point1);
    const cv = current.outputs.findIndex((o) => o.kind === 'to_local');
    const penalty1 = buildPenaltyTransaction([{ kind: 'to_local', outpoint: { txid: current.txid, vout: cv }, valueSat: current.outputs[cv]!.valueSat, witnessScript: current.outputs[cv]!.witnessScript! }], deriveRevocationPublicKey(f.terms.local.revocationBasepoint, point1), f.closeScript, 2000n);
    await assert.rejects(
      f.hid.signInput({ key: ourLoc('revocation'), context: { kind: 'sweep', sweep: 'penalty', number: 1n }, tweak: { kind: 'revocation', perCommitmentSecret: secret0 }, tx: penalty1.tx.toBuffer(), inputIndex: 0, scriptCode: current.outputs[cv]!.witnessScript!, valueSat: current.outputs[cv]!.valueSat }),
      refusedWith('policy-rsmc-sweep-not-revoked'),
    );
    // to-remote: our P2WPKH output of the peer's commitment, and nothing else, with the payment key.
    const toRemote = current.outputs.find((o) => o.kind === 'to_remote')!;
    const sweep = buildSweepTransaction([{ outpoint: { txid: current.txid, vout: current.outputs.indexOf(toRemote) }, valueSat: toRemote.valueSat, sequence: 0xffffffff, witnessPlaceholder: [DUMMY_SIGNATURE, f.terms.local.paymentBasepoint] }], f.closeScript, 2000n);
    const sweepIt = (scriptCode: Uint8Array) => f.hid.signInput({ key: ourLoc('payment'), context: { kind: 'sweep', sweep: 'to-remote', number: 1n }, tx: sweep.tx.toBuffer(), inputIndex: 0, scriptCode, valueSat: toRemote.valueSat });
    const signature = await sweepIt(p2wpkhScriptCode(f.terms.local.paymentBasepoint));
    assert.ok(verifies(signature, Uint8Array.from(sweep.tx.toBuffer()), p2wpkhScriptCode(f.terms.local.paymentBasepoint), toRemote.valueSat, f.terms.local.paymentBasepoint));
    await assert.rejects(sweepIt(toLocal.witnessScript!), refusedWith('policy-rsmc-sweep-input'));
  });

  test('a refused or failed request changes nothing on the key', async () => {
    const f = await rsmcFixture();
    const before = f.key.storage.bytes;
    await assert.rejects(f.signTheirs(2n, spec(1n)), KeyRefusedError);
    f.key.storage.failNext = true;
    await assert.rejects(f.signTheirs(1n, spec(590_000n)), (e) => e instanceof KeyRefusedError && e.status === 'storage');
    assert.deepEqual(f.key.storage.bytes, before);
    assert.deepEqual(await f.hid.channelState(KEY_INDEX), { kind: 'rsmc', holderNumber: 0n, counterpartyNumber: 0n });
    await f.signTheirs(1n, spec(590_000n));
  });
});


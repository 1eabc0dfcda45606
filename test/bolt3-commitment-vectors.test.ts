/**
 * BOLT 3 Appendix C: every commitment and HTLC transaction vector, byte for byte. Our deterministic
 * (RFC 6979) signatures must equal the spec's local signatures, and with the spec's remote signatures
 * the fully signed transactions must equal the published hex.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bytesToHex, hexToBytes } from '../src/bytes.js';
import { sha256 } from '../src/crypto/hash.js';
import { publicKeyOf } from '../src/crypto/secp256k1.js';
import { SoftwareSigner } from '../src/signer/software.js';
import {
  buildCommitmentTransaction,
  decodeCommitmentNumber,
  deriveCommitmentKeys,
  encodeCommitmentNumber,
  obscuringFactor,
  type Htlc,
} from '../src/onchain/rsmc/commitment.js';
import { derivePublicKey } from '../src/onchain/rsmc/keys.js';
import { htlcSuccessWitness, htlcTimeoutWitness } from '../src/onchain/rsmc/witnesses.js';
import { fundingWitness, signFundingSpend } from '../src/onchain/funding.js';
import { signInput } from '../src/onchain/tx.js';
import { verifyTransaction } from '../src/chain/simnet/interpreter.js';
import { p2wshOutput } from '../src/onchain/script.js';

const vectors = JSON.parse(readFileSync(new URL('./vectors/bolt3/commitment-vectors.json', import.meta.url), 'utf8'));
const c = vectors.common;
const h = hexToBytes;
/** The spec writes private keys WIF-style with a trailing 01 (compressed marker). */
const secret = (hex: string) => h(hex).subarray(0, 32);

const fundingKey = { family: 'funding' as const, index: 0 };
const htlcKey = { family: 'htlc' as const, index: 0 };
const signer = SoftwareSigner.fromSecrets([
  { key: fundingKey, secret: secret(c.local_funding_privkey) },
  { key: htlcKey, secret: secret(c.local_privkey) },
]);

const keys = {
  revocationPubkey: h(c.local_revocation_pubkey),
  localDelayedPubkey: h(c.local_delayedpubkey),
  // In the vectors the HTLC basepoints equal the payment basepoints, so the HTLC keys are localpubkey/remotepubkey.
  localHtlcPubkey: h(c.localpubkey),
  remoteHtlcPubkey: h(c.remotepubkey),
  remotePaymentPubkey: h(c.remotepubkey),
};

const allHtlcs: Htlc[] = c.htlcs.map((x: any) => ({
  id: BigInt(x.id),
  direction: x.direction,
  amountMsat: BigInt(x.amount_msat),
  paymentHash: sha256(h(x.payment_preimage)),
  cltvExpiry: x.expiry,
}));
const preimageOf = new Map<bigint, Uint8Array>(c.htlcs.map((x: any) => [BigInt(x.id), h(x.payment_preimage)]));

test('Appendix C common inputs: keys derive from the basepoints and per-commitment point', () => {
  const i = c.internal;
  const point = h(i.local_per_commitment_point);
  assert.equal(bytesToHex(publicKeyOf(secret(c.local_funding_privkey))), c.local_funding_pubkey);
  assert.equal(bytesToHex(publicKeyOf(secret(c.local_privkey))), c.localpubkey);
  const derived = deriveCommitmentKeys({
    perCommitmentPoint: point,
    localDelayedPaymentBasepoint: h(i.local_delayed_payment_basepoint),
    localHtlcBasepoint: h(c.local_payment_basepoint),
    remoteHtlcBasepoint: h(c.remote_payment_basepoint),
    remoteRevocationBasepoint: h(i.remote_revocation_basepoint),
    remotePaymentBasepoint: h(c.remote_payment_basepoint),
  });
  assert.equal(bytesToHex(derived.revocationPubkey), c.local_revocation_pubkey);
  assert.equal(bytesToHex(derived.localDelayedPubkey), c.local_delayedpubkey);
  assert.equal(bytesToHex(derived.localHtlcPubkey), c.localpubkey);
  assert.equal(bytesToHex(derived.remoteHtlcPubkey), c.remotepubkey);
  // The vectors predate static_remotekey: their remotepubkey is the tweaked payment basepoint.
  assert.equal(bytesToHex(derivePublicKey(h(c.remote_payment_basepoint), point)), c.remotepubkey);
});

test('Appendix C obscured commitment number: 0x2bb038521914 ^ 42', () => {
  const factor = obscuringFactor(h(c.local_payment_basepoint), h(c.remote_payment_basepoint));
  assert.equal(factor, 0x2bb038521914n);
  const { locktime, sequence } = encodeCommitmentNumber(42n, factor);
  assert.equal(locktime, 0x2052193e);
  assert.equal(sequence, 0x802bb038);
  assert.equal(decodeCommitmentNumber(locktime, sequence, factor), 42n);
  assert.equal(decodeCommitmentNumber(0, 0xffffffff, factor), undefined);
});

for (const v of vectors.static_remotekey) {
  test(`Appendix C: ${v.name}`, async () => {
    // A case may define its own HTLC set; otherwise the five common HTLCs apply.
    const htlcs: Htlc[] = v.htlcs
      ? v.htlcs.map((x: any) => ({
          id: BigInt(x.id),
          direction: x.direction,
          amountMsat: BigInt(x.amount_msat),
          paymentHash: sha256(h(x.payment_preimage)),
          cltvExpiry: x.expiry,
        }))
      : v.num_htlcs === 0 && BigInt(v.to_local_msat) + BigInt(v.to_remote_msat) === BigInt(c.funding_amount_satoshi) * 1000n
        ? []
        : allHtlcs;
    const commitment = buildCommitmentTransaction({
      fundingOutpoint: { txid: c.funding_tx_id, vout: c.funding_output_index },
      fundingValueSat: BigInt(c.funding_amount_satoshi),
      localFundingPubkey: h(c.local_funding_pubkey),
      remoteFundingPubkey: h(c.remote_funding_pubkey),
      keys,
      commitmentNumber: BigInt(c.commitment_number),
      openerPaymentBasepoint: h(c.local_payment_basepoint),
      accepterPaymentBasepoint: h(c.remote_payment_basepoint),
      localIsOpener: true,
      toSelfDelay: c.local_delay,
      dustLimitSat: BigInt(v.local_dust_limit_satoshi ?? c.local_dust_limit_satoshi),
      feeratePerKw: BigInt(v.local_feerate_per_kw),
      toLocalMsat: BigInt(v.to_local_msat),
      toRemoteMsat: BigInt(v.to_remote_msat),
      htlcs,
    });

    for (const line of v.comments as string[]) {
      const base = /^base commitment transaction fee = (\d+)$/.exec(line);
      if (base) assert.equal(commitment.baseFeeSat, BigInt(base[1]!), line);
      const actual = /^actual commitment transaction fee = (\d+)$/.exec(line);
      if (actual) assert.equal(commitment.actualFeeSat, BigInt(actual[1]!), line);
    }

    const context = { fundingScript: commitment.fundingScript, fundingValueSat: BigInt(c.funding_amount_satoshi) };
    const localSig = await signFundingSpend(signer, fundingKey, commitment.tx, context);
    assert.equal(bytesToHex(localSig.subarray(0, -1)), v.local_signature, 'our RFC 6979 signature equals the spec');
    commitment.tx.setWitness(
      0,
      fundingWitness(h(c.local_funding_pubkey), localSig, h(c.remote_funding_pubkey), h(v.remote_signature + '01')),
    );
    assert.equal(commitment.tx.toHex(), v.commit_tx);
    assert.ok(commitment.tx.weight() <= commitment.expectedWeight, 'signed weight within the BOLT 3 estimate');

    // The independent interpreter agrees the commitment spends the funding output.
    const verdict = verifyTransaction(commitment.tx.toBuffer(), [
      { valueSat: BigInt(c.funding_amount_satoshi), script: p2wshOutput(commitment.fundingScript) },
    ]);
    assert.equal(verdict.valid, true, verdict.message);

    assert.equal(commitment.htlcTransactions.length, v.num_htlcs);
    v.htlc_txs.forEach((expected: any, i: number) => {
      const htlcTx = commitment.htlcTransactions[i]!;
      assert.equal(htlcTx.commitmentOutputIndex, expected.output_index);
      assert.equal(htlcTx.kind, expected.kind === 'htlc_success_tx' ? 'htlc-success' : 'htlc-timeout');
      assert.equal(htlcTx.htlc.id, BigInt(expected.htlc_id));
    });
    for (const [i, expected] of (v.htlc_txs as any[]).entries()) {
      const htlcTx = commitment.htlcTransactions[i]!;
      const local = await signInput(signer, htlcTx.tx, {
        key: htlcKey,
        inputIndex: 0,
        scriptCode: htlcTx.htlcWitnessScript,
        valueSat: htlcTx.htlcValueSat,
      });
      assert.equal(bytesToHex(local.subarray(0, -1)), expected.local_signature);
      const remote = h(expected.remote_htlc_signature + '01');
      htlcTx.tx.setWitness(
        0,
        htlcTx.kind === 'htlc-success'
          ? htlcSuccessWitness(remote, local, preimageOf.get(htlcTx.htlc.id)!, htlcTx.htlcWitnessScript)
          : htlcTimeoutWitness(remote, local, htlcTx.htlcWitnessScript),
      );
      assert.equal(htlcTx.tx.toHex(), expected.tx);
      const htlcVerdict = verifyTransaction(htlcTx.tx.toBuffer(), [
        { valueSat: htlcTx.htlcValueSat, script: p2wshOutput(htlcTx.htlcWitnessScript) },
      ]);
      assert.equal(htlcVerdict.valid, true, htlcVerdict.message);
    }
  });
}

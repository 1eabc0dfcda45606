/**
 * Revocable channel on chain (src/channel/rsmc/onchain.ts): classifying the funding spend and sweeping
 * what is ours — the penalty on a revoked commitment (BOLT 5 §Revoked Transaction Close Handling), the
 * CSV-delayed to_local sweep (BIP 68/112), the static to_remote sweep — all broadcast to a Simnet that
 * runs every input's scripts through the interpreter. Two hand-built mirror records: A opener, B accepter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transaction } from 'bitcoinjs-lib';
import { Simnet } from '../src/chain/simnet/index.js';
import type { OutPoint } from '../src/chain/port.js';
import { feeForWeight } from '../src/amounts.js';
import { bytesToHex } from '../src/bytes.js';
import { fundingOutputScript } from '../src/onchain/funding.js';
import { encodeCommitmentNumber } from '../src/onchain/rsmc/commitment.js';
import { commitmentIndex, PerCommitmentSecretStore } from '../src/onchain/rsmc/shachain.js';
import { p2wpkhOutput } from '../src/onchain/script.js';
import { txidToHash } from '../src/onchain/tx.js';
import { SoftwareSigner } from '../src/signer/software.js';
import {
  closingTransaction,
  deriveChannelId,
  fundingScriptOf,
  localCommitment,
  obscuringFactorOf,
  remoteCommitment,
  withFundingWitness,
} from '../src/channel/rsmc/commitments.js';
import { buildResolution, classifyFundingSpend, exportRevokedState } from '../src/channel/rsmc/onchain.js';
import { RsmcError } from '../src/channel/rsmc/errors.js';
import type { ClosingState, PartyConfig, RsmcRecord, Spec } from '../src/channel/rsmc/types.js';
import { accepted, rejected } from './helpers/p2wpkh.js';

const CAPACITY_SAT = 200_000n;
const FEERATE = 1000n;
const TO_SELF_DELAY = 6;
/** A's balance (msat) at commitment 0 and 1; B has the rest. A paid B 20k sat between them. */
const A_MSAT = [150_000_000n, 130_000_000n] as const;

interface Side {
  signer: SoftwareSigner;
  record: RsmcRecord;
}

async function partyConfig(signer: SoftwareSigner): Promise<PartyConfig> {
  const k = (family: 'funding' | 'revocation' | 'payment' | 'delayed' | 'htlc') => signer.getPublicKey({ family, index: 0 });
  return {
    fundingPubkey: await k('funding'),
    revocationBasepoint: await k('revocation'),
    paymentBasepoint: await k('payment'),
    delayedPaymentBasepoint: await k('delayed'),
    htlcBasepoint: await k('htlc'),
    dustLimitSat: 546n,
    channelReserveSat: 2_000n,
    toSelfDelay: TO_SELF_DELAY,
    htlcMinimumMsat: 1n,
    maxHtlcValueInFlightMsat: CAPACITY_SAT * 1000n,
    maxAcceptedHtlcs: 0,
  };
}

const point = (s: Side, n: bigint) => s.signer.perCommitmentPoint({ family: 'commitment', index: 0 }, n);
const specOf = (aMsat: bigint, forA: boolean): Spec =>
  forA ? { localMsat: aMsat, remoteMsat: CAPACITY_SAT * 1000n - aMsat } : { localMsat: CAPACITY_SAT * 1000n - aMsat, remoteMsat: aMsat };

/** The funding input signature (64-byte compact) of `signer` on a commitment or closing transaction. */
function fundingSig(side: Side, tx: Transaction): Promise<Uint8Array> {
  return side.signer.signInput({
    key: { family: 'funding', index: 0 },
    tx: tx.toBuffer(),
    inputIndex: 0,
    scriptCode: fundingScriptOf(side.record),
    valueSat: side.record.fundingSat,
  });
}

/** `owner`'s commitment `n` (at A_MSAT[n]), signed by both: broadcastable. */
async function signedCommitment(owner: Side, other: Side, n: 0 | 1): Promise<Transaction> {
  const c = localCommitment(owner.record, BigInt(n), specOf(A_MSAT[n], owner.record.role === 'opener'), await point(owner, BigInt(n)));
  return withFundingWitness(owner.record, c.tx, await fundingSig(owner, c.tx), await fundingSig(other, c.tx));
}

/**
 * A (opener, funds everything, pushes 50k sat) and B after one payment A → B of 20k sat: both hold
 * commitment 1, each has revoked commitment 0 and knows the other's secret for 0. The funding output is
 * a faucet coin on `chain`.
 */
async function channelPair(chain: Simnet): Promise<{ a: Side; b: Side; fundingOutpoint: OutPoint }> {
  const signers = [SoftwareSigner.fromSeed(new Uint8Array(32).fill(0x11)), SoftwareSigner.fromSeed(new Uint8Array(32).fill(0x22))] as const;
  const configs = [await partyConfig(signers[0]), await partyConfig(signers[1])] as const;
  const fundingOutpoint = await chain.faucet(fundingOutputScript(configs[0].fundingPubkey, configs[1].fundingPubkey), CAPACITY_SAT);
  const sides = await Promise.all(
    ([0, 1] as const).map(async (i): Promise<Side> => {
      const signer = signers[i];
      const record: RsmcRecord = {
        role: i === 0 ? 'opener' : 'accepter',
        phase: 'open',
        peer: bytesToHex(await signers[1 - i]!.getPublicKey({ family: 'identity', index: 0 })),
        tempChannelId: new Uint8Array(32).fill(7),
        channelId: deriveChannelId(fundingOutpoint),
        keyIndex: 0,
        local: configs[i],
        remote: configs[1 - i],
        fundingSat: CAPACITY_SAT,
        localFundingSat: i === 0 ? CAPACITY_SAT : 0n,
        remoteFundingSat: i === 0 ? 0n : CAPACITY_SAT,
        pushMsat: CAPACITY_SAT * 1000n - A_MSAT[0],
        feeratePerKw: FEERATE,
        minimumDepth: 1,
        fundingOutpoint,
        fundingTx: undefined,
        localInputs: [],
        localChangeScript: undefined,
        remoteInputs: [],
        remoteChangeScript: undefined,
        remoteWitnessesReceived: true,
        fundingBroadcast: true,
        localCommit: undefined,
        remoteCommit: undefined,
        remoteNext: undefined,
        remoteNextPoint: undefined,
        localCurrentPoint: await signer.perCommitmentPoint({ family: 'commitment', index: 0 }, 0n),
        localNextPoint: undefined,
        openingSignature: undefined,
        localChanges: { proposed: [], signed: [], acked: [] },
        remoteChanges: { proposed: [], acked: [], signed: [] },
        localUpdateCount: i === 0 ? 1n : 0n,
        remoteUpdateCount: i === 0 ? 0n : 1n,
        remoteSecrets: new PerCommitmentSecretStore().toJSON(),
        readySent: true,
        readyReceived: true,
        sentCount: i === 0 ? 1n : 0n,
        receivedCount: i === 0 ? 0n : 1n,
        shutdown: undefined,
        payoutScript: p2wpkhOutput(await signer.getPublicKey({ family: 'wallet', index: 0 })),
        closing: undefined,
        outcome: undefined,
        failure: undefined,
        stale: false,
        reestablishSent: false,
        reestablishReceived: false,
      };
      return { signer, record };
    }),
  );
  const [a, b] = sides as [Side, Side];
  for (const [me, peer] of [[a, b], [b, a]] as const) {
    const forMe = me.record.role === 'opener';
    const mine = await signedCommitment(me, peer, 1);
    const theirs = remoteCommitment(me.record, 1n, specOf(A_MSAT[1], forMe), await point(peer, 1n));
    me.record.localCommit = { number: 1n, spec: specOf(A_MSAT[1], forMe), remoteSignature: await fundingSig(peer, mine), txid: mine.getId() };
    me.record.remoteCommit = { number: 1n, spec: specOf(A_MSAT[1], forMe), point: await point(peer, 1n), txid: theirs.txid };
    me.record.remoteNextPoint = await point(peer, 2n);
    me.record.localCurrentPoint = await point(me, 1n);
    me.record.localNextPoint = await point(me, 2n);
    const store = new PerCommitmentSecretStore();
    store.insert(commitmentIndex(0n), (await peer.signer.revokeCommitment({ family: 'commitment', index: 0 }, 0n)).secret);
    me.record.remoteSecrets = store.toJSON();
  }
  return { a, b, fundingOutpoint };
}

function closingStateOf(record: RsmcRecord, tx: Transaction, confirmedHeight: number | undefined): ClosingState {
  const c = classifyFundingSpend(record, tx);
  return { ...c, txid: tx.getId(), tx: Uint8Array.from(tx.toBuffer()), confirmedHeight, resolutions: [] };
}

async function broadcastAndMine(chain: Simnet, tx: Transaction | Uint8Array): Promise<number> {
  accepted(await chain.broadcast(tx instanceof Transaction ? tx.toBuffer() : tx));
  await chain.mine();
  return chain.tipHeight();
}

test('B broadcasts its revoked commitment 0: A classifies remote-revoked and its penalty takes B’s to_local', async () => {
  const chain = new Simnet({ feeratePerKw: FEERATE });
  const { a, b } = await channelPair(chain);
  const revoked = await signedCommitment(b, a, 0);
  const height = await broadcastAndMine(chain, revoked);

  const closing = closingStateOf(a.record, revoked, height);
  assert.equal(closing.kind, 'remote-revoked');
  assert.equal(closing.commitmentNumber, 0n);
  assert.deepEqual(closing.pending.map((p) => p.purpose).sort(), ['penalty', 'to-remote-sweep']);
  const toLocal = closing.pending.find((p) => p.purpose === 'penalty')!;
  // B (accepter) pays no commitment fee: its to_local is its whole balance at commitment 0.
  assert.equal(toLocal.valueSat, (CAPACITY_SAT * 1000n - A_MSAT[0]) / 1000n);
  assert.equal(toLocal.validFromHeight, undefined);

  const penalty = await buildResolution(a.record, closing, toLocal, a.signer, FEERATE, revoked);
  assert.equal(penalty.purpose, 'penalty');
  assert.deepEqual(penalty.spends, [toLocal.outpoint]);
  const penaltyTx = Transaction.fromBuffer(penalty.tx);
  assert.equal(penaltyTx.getId(), penalty.txid);
  assert.deepEqual(penaltyTx.outs.map((o) => [bytesToHex(o.script), o.value]), [[bytesToHex(a.record.payoutScript), penalty.valueSat]]);
  // The fee is the penalty's weight at the fee rate, measured with worst-case (73-byte) signatures.
  const feeSat = toLocal.valueSat - penalty.valueSat;
  assert.ok(feeSat >= feeForWeight(FEERATE, penaltyTx.weight()) && feeSat <= feeForWeight(FEERATE, penaltyTx.weight() + 2), `fee ${feeSat}`);
  const toRemote = closing.pending.find((p) => p.purpose === 'to-remote-sweep')!;
  const sweep = await buildResolution(a.record, closing, toRemote, a.signer, FEERATE, revoked);
  await broadcastAndMine(chain, penalty.tx);
  await broadcastAndMine(chain, sweep.tx);
  assert.equal((await chain.getUtxo({ txid: penalty.txid, vout: 0 }))?.output.valueSat, penalty.valueSat);
  assert.equal((await chain.getUtxo({ txid: sweep.txid, vout: 0 }))?.output.valueSat, sweep.valueSat);

  // B sees its own revoked commitment; once the delay has passed its sweep finds to_local already taken.
  const bClosing = closingStateOf(b.record, revoked, height);
  assert.equal(bClosing.kind, 'local-revoked');
  assert.deepEqual(bClosing.pending.map((p) => [p.purpose, p.outpoint]), [['to-local-sweep', toLocal.outpoint]]);
  await chain.mine(TO_SELF_DELAY);
  const late = await buildResolution(b.record, bClosing, bClosing.pending[0]!, b.signer, FEERATE, revoked);
  assert.equal(rejected(await chain.broadcast(late.tx)).code, 'bad-txns-inputs-missingorspent');
});

test('A broadcasts its latest commitment: to_local waits to_self_delay blocks (BIP 68), B’s to_remote sweeps at once', async () => {
  const chain = new Simnet({ feeratePerKw: FEERATE });
  const { a, b } = await channelPair(chain);
  const latest = await signedCommitment(a, b, 1);
  assert.equal(latest.getId(), a.record.localCommit!.txid);
  const height = await broadcastAndMine(chain, latest);

  const closing = closingStateOf(a.record, latest, height);
  assert.equal(closing.kind, 'local-latest');
  assert.equal(closing.commitmentNumber, 1n);
  assert.equal(closing.pending.length, 1);
  const toLocal = closing.pending[0]!;
  assert.equal(toLocal.purpose, 'to-local-sweep');
  const sweep = await buildResolution(a.record, closing, toLocal, a.signer, FEERATE, latest);
  assert.equal(Transaction.fromBuffer(sweep.tx).ins[0]!.sequence, TO_SELF_DELAY);

  // Valid in the block at height + to_self_delay, i.e. once the tip is one below it.
  await chain.mine(TO_SELF_DELAY - 2);
  assert.equal(rejected(await chain.broadcast(sweep.tx)).code, 'non-BIP68-final');
  await chain.mine(1);
  assert.equal(await chain.tipHeight(), height + TO_SELF_DELAY - 1);
  assert.equal(await broadcastAndMine(chain, sweep.tx), height + TO_SELF_DELAY);
  assert.equal((await chain.getUtxo({ txid: sweep.txid, vout: 0 }))?.output.valueSat, sweep.valueSat);

  const bClosing = closingStateOf(b.record, latest, height);
  assert.equal(bClosing.kind, 'remote-latest');
  assert.equal(bClosing.commitmentNumber, 1n);
  assert.deepEqual(bClosing.pending.map((p) => [p.purpose, p.valueSat]), [['to-remote-sweep', (CAPACITY_SAT * 1000n - A_MSAT[1]) / 1000n]]);
  const bSweep = await buildResolution(b.record, bClosing, bClosing.pending[0]!, b.signer, FEERATE, latest);
  accepted(await chain.broadcast(bSweep.tx));
});

test('a to_local sweep refuses an output that is not our to_local script', async () => {
  const chain = new Simnet({ feeratePerKw: FEERATE });
  const { a, b } = await channelPair(chain);
  const latest = await signedCommitment(a, b, 1);
  const closing = closingStateOf(a.record, latest, undefined);
  // Ask for the sweep under the wrong commitment number: the rebuilt script differs from the output's.
  await assert.rejects(
    buildResolution(a.record, { ...closing, commitmentNumber: 0n }, closing.pending[0]!, a.signer, FEERATE, latest),
    (e: unknown) => e instanceof RsmcError && e.code === 'BAD_STATE',
  );
});

test('watchtower: exportRevokedState signs a penalty the chain accepts once the revoked commitment appears', async () => {
  const chain = new Simnet({ feeratePerKw: FEERATE });
  const { a, b } = await channelPair(chain);
  const revokedCommit = {
    number: 0n,
    spec: specOf(A_MSAT[0], true),
    point: await point(b, 0n),
    txid: remoteCommitment(a.record, 0n, specOf(A_MSAT[0], true), await point(b, 0n)).txid,
  };
  const entry = await exportRevokedState(a.record, revokedCommit, a.signer, FEERATE);
  assert.ok(entry);
  assert.equal(entry.channelId, bytesToHex(a.record.channelId!));
  assert.equal(entry.commitmentNumber, 0n);

  const revoked = await signedCommitment(b, a, 0);
  assert.equal(entry.commitmentTxid, revoked.getId());
  accepted(await chain.broadcast(revoked.toBuffer()));
  accepted(await chain.broadcast(entry.penaltyTx)); // into the same block as its parent
  await chain.mine();
  assert.equal((await chain.getTransaction(Transaction.fromBuffer(entry.penaltyTx).getId()))?.confirmations, 1);

  await assert.rejects(
    exportRevokedState(a.record, { ...revokedCommit, txid: 'ab'.repeat(32) }, a.signer, FEERATE),
    (e: unknown) => e instanceof RsmcError && e.code === 'BAD_STATE',
  );
});

test('watchtower: nothing to export when the peer had no to_local above dust', async () => {
  const chain = new Simnet({ feeratePerKw: FEERATE });
  const { a, b } = await channelPair(chain);
  // B's commitment 0 as if A had pushed nothing: B's side is empty.
  const spec = { localMsat: CAPACITY_SAT * 1000n, remoteMsat: 0n };
  const txid = remoteCommitment(a.record, 0n, spec, await point(b, 0n)).txid;
  assert.equal(await exportRevokedState(a.record, { number: 0n, spec, point: await point(b, 0n), txid }, a.signer, FEERATE), undefined);
});

test('a cooperative close classifies as cooperative with what it paid to our script', async () => {
  const chain = new Simnet({ feeratePerKw: FEERATE });
  const { a, b } = await channelPair(chain);
  a.record.shutdown = { localScript: a.record.payoutScript, remoteScript: b.record.payoutScript, sent: true, lastProposedFeeSat: undefined, lastProposedSignature: undefined, lastReceived: undefined };
  b.record.shutdown = { localScript: b.record.payoutScript, remoteScript: a.record.payoutScript, sent: true, lastProposedFeeSat: undefined, lastProposedSignature: undefined, lastReceived: undefined };
  const closingTx = closingTransaction(a.record, 500n);
  const signed = withFundingWitness(a.record, closingTx.tx, await fundingSig(a, closingTx.tx), await fundingSig(b, closingTx.tx));
  await broadcastAndMine(chain, signed);

  assert.deepEqual(classifyFundingSpend(a.record, signed), { kind: 'cooperative', commitmentNumber: undefined, pending: [], directSat: A_MSAT[1] / 1000n - 500n });
  assert.deepEqual(classifyFundingSpend(b.record, signed), {
    kind: 'cooperative',
    commitmentNumber: undefined,
    pending: [],
    directSat: (CAPACITY_SAT * 1000n - A_MSAT[1]) / 1000n,
  });
});

test('transactions that are not this channel’s funding spend are unknown, never an exception', async () => {
  const chain = new Simnet({ feeratePerKw: FEERATE });
  const { a, b, fundingOutpoint } = await channelPair(chain);
  const unknown = { kind: 'unknown', commitmentNumber: undefined, pending: [], directSat: 0n };

  assert.deepEqual(classifyFundingSpend(a.record, new Transaction()), unknown);
  const elsewhere = new Transaction();
  elsewhere.addInput(txidToHash('cd'.repeat(32)), 0);
  elsewhere.addOutput(a.record.payoutScript, 1000n);
  assert.deepEqual(classifyFundingSpend(a.record, elsewhere), unknown);
  // The funding outpoint plus another input: not a 2-of-2 close of this channel.
  const twoInputs = (await signedCommitment(a, b, 1)).clone();
  twoInputs.addInput(txidToHash('cd'.repeat(32)), 1);
  assert.deepEqual(classifyFundingSpend(a.record, twoInputs), unknown);
  assert.deepEqual(classifyFundingSpend({ ...a.record, remote: undefined }, await signedCommitment(a, b, 1)), unknown);

  // Commitment markers for a number neither side ever had, paying nothing we know: the peer's, unknown state.
  const { locktime, sequence } = encodeCommitmentNumber(7n, obscuringFactorOf(a.record));
  const stray = new Transaction();
  stray.version = 2;
  stray.locktime = locktime;
  stray.addInput(txidToHash(fundingOutpoint.txid), fundingOutpoint.vout, sequence);
  stray.addOutput(p2wpkhOutput(await b.signer.getPublicKey({ family: 'wallet', index: 5 })), 100_000n);
  assert.deepEqual(classifyFundingSpend(a.record, stray), { kind: 'remote-unknown', commitmentNumber: 7n, pending: [], directSat: 0n });
  // …and with an output to our static payment key: swept whatever the state.
  stray.addOutput(p2wpkhOutput(a.record.local.paymentBasepoint), 50_000n);
  const c = classifyFundingSpend(a.record, stray);
  assert.equal(c.kind, 'remote-unknown');
  assert.deepEqual(c.pending, [{ purpose: 'to-remote-sweep', outpoint: { txid: stray.getId(), vout: 1 }, valueSat: 50_000n, validFromHeight: undefined }]);
});

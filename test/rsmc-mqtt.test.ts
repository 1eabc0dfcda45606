/**
 * Revocable (RSMC) channels end to end through the runtime (RsmcNode) over a real Mosquitto broker on a
 * random loopback port (skipped, saying so, when mosquitto is not installed), on the in-process Simnet
 * whose every input runs through the script interpreter:
 *   1. 1,000 updates both ways (40 one at a time, then 20 in flight at once) on a dual-funded channel, then a
 *      cooperative close paying each side exactly its balance (the opener less the fee);
 *   2. a unilateral close: the chain refuses the opener's to_local sweep until to_self_delay blocks after
 *      the commitment confirmed, the node sends it exactly then; the peer sweeps its to_remote at once;
 *   3. a breach: the peer broadcasts a revoked commitment and the node's penalty confirms long before
 *      to_self_delay; every revoked state reaches the watchtower callback, and a watchtower entry alone
 *      punishes a breach while the node is offline;
 *   4. reestablish with payments in flight across a broker restart (Mosquitto keeps its sessions; the
 *      embedded aedes, also run, comes back empty) and across a process kill of one node;
 *   5. close() with payments in flight: each pay() settles truthfully and the close stays cooperative.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Transaction } from 'bitcoinjs-lib';
import type { RsmcChannel, RsmcPaymentReceipt } from '../src/channel/rsmc/channel.js';
import { buildResolution, type WatchtowerEntry } from '../src/channel/rsmc/onchain.js';
import type { RsmcOutcome } from '../src/channel/rsmc/types.js';
import { equalBytes } from '../src/bytes.js';
import { hashToTxid } from '../src/onchain/tx.js';
import { brokerFactories, type BrokerFactory, type TestBroker } from './helpers/brokers.js';
import {
  openChannel,
  settle,
  startRsmcPair,
  untilQuiescent,
  type RsmcPair,
  type RsmcParty,
} from './helpers/rsmc-parties.js';
import { until } from './helpers/session-nodes.js';

const MOSQUITTO = brokerFactories({ includeSkipped: true }).find((f) => f.name === 'mosquitto')!;
/** 'mosquitto not installed — skipped' when the binary is absent (CI installs it). */
const SKIP = MOSQUITTO.skip;
const TO_SELF_DELAY = 6;

type PairOptions = Omit<Parameters<typeof startRsmcPair>[0], 'net'>;

/** A and B on a fresh broker (Mosquitto unless told), torn down after the test. */
async function mqttPair(t: TestContext, options: PairOptions = {}, factory: BrokerFactory = MOSQUITTO): Promise<{ pair: RsmcPair; broker: TestBroker }> {
  const broker = await factory.start();
  let pair: RsmcPair | undefined;
  t.after(async () => {
    await pair?.stop();
    await broker.stop();
  });
  pair = await startRsmcPair({ ...options, net: { kind: 'mqtt', url: broker.url, protocolVersion: broker.name === 'mosquitto' ? 5 : 4 } });
  return { pair, broker };
}

function txOf(raw: Uint8Array): Transaction {
  return Transaction.fromBuffer(Buffer.from(raw));
}

async function chainTx(pair: RsmcPair, txid: string): Promise<{ tx: Transaction; height: number | undefined }> {
  const status = await pair.chain.getTransaction(txid);
  assert.ok(status, `${txid} known to the chain`);
  return { tx: txOf(status.tx), height: status.blockHeight };
}

function spends(tx: Transaction, outpoint: { txid: string; vout: number }): boolean {
  return tx.ins.some((i) => hashToTxid(i.hash) === outpoint.txid && i.index === outpoint.vout);
}

/** What `script` receives from `tx`. */
function paidTo(tx: Transaction, script: Uint8Array): bigint {
  return tx.outs.filter((o) => equalBytes(o.script, script)).reduce((s, o) => s + o.value, 0n);
}

/** Mine until `channels` all have an outcome (each block handled before the next), at most `max` blocks. */
async function mineUntilClosed(pair: RsmcPair, channels: RsmcChannel[], max = 20): Promise<RsmcOutcome[]> {
  for (let i = 0; i < max && channels.some((c) => c.phase !== 'closed'); i++) await pair.mine(1);
  for (const c of channels) {
    const r = c.snapshot();
    assert.equal(r.phase, 'closed', `${c.role} closed within ${max} blocks (closing: ${JSON.stringify(r.closing, (_k, v) => (typeof v === 'bigint' ? String(v) : v instanceof Uint8Array ? undefined : v))})`);
  }
  return Promise.all(channels.map((c) => c.waitForOutcome()));
}

async function untilMempool(pair: RsmcPair, what: string): Promise<string[]> {
  await until(() => pair.chain.mempool().length > 0, what);
  return pair.chain.mempool();
}

/** A deterministic amount in msat (1..~150 sat, rarely a round number). */
function amountFor(i: number): bigint {
  return 1_000n + BigInt((i * 7_919 + 13) % 150_000);
}

test('[BOLT 2] 1,000 updates both ways over Mosquitto, then a cooperative close pays each side its exact balance', { skip: SKIP }, async (t) => {
  const { pair } = await mqttPair(t);
  const { a, b } = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
  assert.equal(a.capacitySat, 300_000n);
  assert.deepEqual(a.balances, { localMsat: 200_000_000n, remoteMsat: 100_000_000n });
  assert.deepEqual(b.balances, { localMsat: 100_000_000n, remoteMsat: 200_000_000n });

  const paid = { A: [] as bigint[], B: [] as bigint[] };
  const receipts = { A: [] as RsmcPaymentReceipt[], B: [] as RsmcPaymentReceipt[] };
  let n = 0;
  const pay = async (from: 'A' | 'B'): Promise<void> => {
    const amount = amountFor(n++);
    paid[from].push(amount);
    const receipt = await (from === 'A' ? a : b).pay(amount);
    assert.equal(receipt.amountMsat, amount);
    receipts[from].push(receipt);
  };

  const started = performance.now();
  // 40 one at a time, alternating, each a full round trip (update, sign, revoke, sign, revoke).
  for (let i = 0; i < 20; i++) {
    await pay('A');
    await pay('B');
  }
  const sequentialMs = performance.now() - started;
  // 960 in 48 rounds of 10 from each side at once: many updates per commitment_signed, both signing.
  for (let round = 0; round < 48; round++) {
    const batch: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) batch.push(pay('A'), pay('B'));
    await Promise.all(batch);
  }
  const totalMs = performance.now() - started;
  t.diagnostic(`40 sequential updates: ${sequentialMs.toFixed(0)} ms (${(sequentialMs / 40).toFixed(1)} ms each); ` +
    `960 in rounds of 20: ${(totalMs - sequentialMs).toFixed(0)} ms; all 1,000: ${totalMs.toFixed(0)} ms`);

  assert.equal(n, 1000);
  await untilQuiescent(a, b);
  const sum = (xs: bigint[]) => xs.reduce((s, x) => s + x, 0n);
  const finalA = 200_000_000n - sum(paid.A) + sum(paid.B);
  const finalB = 300_000_000n - finalA;
  assert.deepEqual(a.balances, { localMsat: finalA, remoteMsat: finalB });
  assert.deepEqual(b.balances, { localMsat: finalB, remoteMsat: finalA });
  // Counted once each, on both sides: the record and the events agree.
  for (const [me, peer, mine] of [[a, b, 'A'], [b, a, 'B']] as const) {
    const r = me.snapshot();
    assert.equal(r.sentCount, 500n);
    assert.equal(r.receivedCount, 500n);
    assert.equal(me.updates, 1000n);
    assert.equal(peer.snapshot().receivedCount, r.sentCount);
    const ids = receipts[mine].map((x) => x.id).sort((x, y) => (x < y ? -1 : 1));
    assert.deepEqual(ids, Array.from({ length: 500 }, (_, i) => BigInt(i)), `${mine}'s update ids 0..499, each once`);
  }
  for (const party of [pair.a, pair.b]) {
    const sent = party.eventsOf('payment-sent');
    const received = party.eventsOf('payment-received');
    assert.equal(sent.length + received.length, 1000, `${party.name}: 1,000 payment events`);
    assert.equal(new Set(sent.map((e) => e.ref)).size, 500, `${party.name}: each pay() committed once`);
    assert.equal(new Set(received.map((e) => e.id)).size, 500);
  }
  assert.equal(sum(pair.b.eventsOf('payment-received').map((e) => e.amountMsat)), sum(paid.A));
  assert.equal(sum(pair.a.eventsOf('payment-received').map((e) => e.amountMsat)), sum(paid.B));

  const closing = a.close({ cooperative: true });
  const [closingTxid] = await untilMempool(pair, 'the closing transaction');
  await pair.mine(1);
  const [outA, outB] = await Promise.all([closing, b.waitForOutcome()]);
  for (const o of [outA, outB]) {
    assert.equal(o.kind, 'cooperative-close');
    assert.equal(o.closingTxid, closingTxid);
  }
  const { tx, height } = await chainTx(pair, closingTxid!);
  assert.equal(height, outA.blockHeight);
  assert.ok(spends(tx, { txid: a.fundingTxid!, vout: a.snapshot().fundingOutpoint!.vout }), 'it spends the funding output');
  const feeSat = b.snapshot().shutdown!.lastReceived!.feeSat;
  assert.ok(feeSat > 0n);
  assert.equal(outA.localReceivedSat, finalA / 1000n - feeSat, 'opener: balance floored to the satoshi, less the closing fee');
  assert.equal(outB.localReceivedSat, finalB / 1000n, 'accepter: balance floored to the satoshi');
  assert.equal(outA.localBalanceMsat, finalA);
  assert.equal(outB.localBalanceMsat, finalB);
  assert.equal(tx.outs.length, 2);
  assert.equal(paidTo(tx, a.snapshot().payoutScript), outA.localReceivedSat, 'the closing output to A, on chain');
  assert.equal(paidTo(tx, b.snapshot().payoutScript), outB.localReceivedSat, 'the closing output to B, on chain');
  assert.equal(300_000n - outA.localReceivedSat - outB.localReceivedSat, feeSat + (300_000n - finalA / 1000n - finalB / 1000n), 'fee = agreed fee + sub-satoshi remainders');
});

/** The first broadcast by `party` that spends `outpoint`, once there is one the chain accepted. */
async function acceptedSpend(party: RsmcParty, outpoint: { txid: string; vout: number }, what: string) {
  await until(() => party.chain.broadcasts.some((x) => x.result.accepted && spends(txOf(x.tx), outpoint)), what);
  return party.chain.broadcasts.find((x) => x.result.accepted && spends(txOf(x.tx), outpoint))!;
}

test('[BOLT 5][BIP 68] unilateral close over Mosquitto: the to_local sweep waits out to_self_delay, the to_remote sweep goes at once', { skip: SKIP }, async (t) => {
  const { pair } = await mqttPair(t);
  const { a, b } = await openChannel(pair, { localSat: 200_000n });
  await a.pay(70_000_000n);
  await untilQuiescent(a, b);
  const committed = a.snapshot().localCommit!;

  const closing = a.close({ cooperative: false });
  const [commitmentTxid] = await untilMempool(pair, 'A’s commitment');
  assert.equal(commitmentTxid, committed.txid, 'A broadcast its latest commitment');
  const commitment = (await chainTx(pair, commitmentTxid!)).tx;
  const tipAtBroadcast = await pair.chain.tipHeight();

  // B: its to_remote (P2WPKH, option_static_remotekey) pays it at once, even before the commitment confirms.
  const toRemoteVout = commitment.outs.findIndex((o) => equalBytes(o.script.subarray(0, 2), Uint8Array.of(0x00, 0x14)));
  const toLocalVout = commitment.outs.findIndex((o) => equalBytes(o.script.subarray(0, 2), Uint8Array.of(0x00, 0x20)));
  assert.equal(commitment.outs.length, 2);
  assert.equal(commitment.outs[toRemoteVout]!.value, 70_000n, 'to_remote: B’s balance');
  const bSweep = await acceptedSpend(pair.b, { txid: commitmentTxid!, vout: toRemoteVout }, 'B’s to_remote sweep');
  assert.equal(bSweep.tipHeight, tipAtBroadcast, 'B swept at once, with the commitment still in the mempool');

  await pair.mine(1);
  const confirmedAt = await pair.chain.tipHeight();
  assert.equal((await chainTx(pair, commitmentTxid!)).height, confirmedAt);
  const toLocal = { txid: commitmentTxid!, vout: toLocalVout };
  const output = a.snapshot().closing!.pending.find((p) => p.purpose === 'to-local-sweep');
  assert.deepEqual(output?.outpoint, toLocal);
  assert.equal(output.validFromHeight, confirmedAt + TO_SELF_DELAY);

  // Until the commitment has to_self_delay confirmations at the next block, the chain refuses the sweep
  // (BIP 68, nSequence = to_self_delay) and A does not even try.
  const premature: string[] = [];
  while ((await pair.chain.tipHeight()) + 1 < confirmedAt + TO_SELF_DELAY) {
    assert.ok(!pair.a.chain.broadcasts.some((x) => spends(txOf(x.tx), toLocal)), `no to_local sweep from A at tip ${await pair.chain.tipHeight()}`);
    const record = a.snapshot();
    const early = await buildResolution(record, record.closing!, output, pair.a.signer, await pair.chain.estimateFeeratePerKw(6), commitment);
    const result = await pair.chain.broadcast(early.tx);
    assert.equal(result.accepted, false);
    premature.push(!result.accepted ? result.code : 'accepted');
    await pair.mine(1);
  }
  assert.equal(premature.length, TO_SELF_DELAY - 1);
  assert.deepEqual(new Set(premature), new Set(['non-BIP68-final']));
  // Now (tip = confirmation + 5) the sweep can be in the next block: A sends it.
  const aSweep = await acceptedSpend(pair.a, toLocal, 'A’s to_local sweep');
  assert.equal(aSweep.tipHeight, confirmedAt + TO_SELF_DELAY - 1);
  assert.equal(pair.a.chain.broadcasts.filter((x) => spends(txOf(x.tx), toLocal) && !x.result.accepted).length, 0, 'no refused attempt before');

  const [outA, outB] = await mineUntilClosed(pair, [a, b]);
  assert.deepEqual(await closing, outA);
  const sweepA = (await chainTx(pair, aSweep.txid));
  const sweepB = (await chainTx(pair, bSweep.txid));
  assert.equal(sweepA.height, confirmedAt + TO_SELF_DELAY, 'A’s sweep confirmed exactly to_self_delay blocks after its commitment');
  assert.equal(sweepB.height, confirmedAt, 'B’s sweep confirmed with the commitment');
  for (const [o, sweep, ch] of [[outA, sweepA.tx, a], [outB, sweepB.tx, b]] as const) {
    assert.equal(o.kind, 'unilateral-close');
    assert.equal(o.closingTxid, commitmentTxid);
    assert.equal(o.blockHeight, confirmedAt);
    assert.equal(o.localReceivedSat, paidTo(sweep, ch.snapshot().payoutScript), 'received = the sweep’s output, on chain');
  }
  // A opened, so the commitment fee came out of its side; each sweep paid its own fee.
  const commitmentFee = 200_000n - commitment.outs.reduce((s, o) => s + o.value, 0n);
  assert.equal(commitment.outs[toLocalVout]!.value, 130_000n - commitmentFee);
  // Each sweep's fee: the chain's estimate (2,500 sat/kW) on its weight.
  assert.ok(outA.localReceivedSat < 130_000n - commitmentFee && outA.localReceivedSat > 130_000n - commitmentFee - 2_000n, `A received ${outA.localReceivedSat}`);
  assert.ok(outB.localReceivedSat < 70_000n && outB.localReceivedSat > 68_000n, `B received ${outB.localReceivedSat}`);
  assert.equal(outA.localBalanceMsat, 130_000_000n);
  assert.equal(outB.localBalanceMsat, 70_000_000n);
});

/** A (opener, 200k) pays B 150k, B keeps a copy of that commitment, then pays 140k back (revoking it). */
async function breachSetup(pair: RsmcPair): Promise<{ a: RsmcChannel; b: RsmcChannel; revoked: Transaction; revokedNumber: bigint }> {
  const { a, b } = await openChannel(pair, { localSat: 200_000n });
  await a.pay(150_000_000n);
  await untilQuiescent(a, b);
  const revoked = txOf(await b.signedLocalCommitment());
  const revokedNumber = b.snapshot().localCommit!.number;
  assert.equal(revoked.getId(), b.snapshot().localCommit!.txid);
  await b.pay(100_000_000n);
  await Promise.all([b.pay(30_000_000n), b.pay(10_000_000n), a.pay(1_000n)]);
  await untilQuiescent(a, b);
  assert.equal(b.balances!.localMsat, 10_001_000n);
  return { a, b, revoked, revokedNumber };
}

function toLocalOf(tx: Transaction): { txid: string; vout: number; valueSat: bigint } {
  const vout = tx.outs.findIndex((o) => equalBytes(o.script.subarray(0, 2), Uint8Array.of(0x00, 0x20)));
  assert.ok(vout >= 0, 'the commitment has a to_local output');
  return { txid: tx.getId(), vout, valueSat: tx.outs[vout]!.value };
}

test('[BOLT 5] breach over Mosquitto: a revoked commitment is punished in its own block; the cheater gets nothing from it', { skip: SKIP }, async (t) => {
  const watchtower: WatchtowerEntry[] = [];
  const { pair } = await mqttPair(t, { nodeA: { watchtower: (entry) => void watchtower.push(entry) } });
  const { a, b, revoked, revokedNumber } = await breachSetup(pair);

  // One watchtower entry per commitment of B's that B revoked and that has something to punish: 1 ..
  // current − 1, each once (commitment 0 gave B nothing: it has no to_local).
  const current = b.snapshot().localCommit!.number;
  await until(() => watchtower.length === Number(current) - 1, `${current} watchtower entries`);
  await settle(50);
  assert.deepEqual(watchtower.map((e) => e.commitmentNumber).sort((x, y) => Number(x - y)), Array.from({ length: Number(current) - 1 }, (_, i) => BigInt(i + 1)));
  assert.ok(watchtower.every((e) => e.channelId === a.id));
  const entry = watchtower.find((e) => e.commitmentNumber === revokedNumber)!;
  assert.equal(entry.commitmentTxid, revoked.getId());

  // B cheats: its old commitment (150k to B's delayed to_local) goes to the chain behind its node's back.
  const toLocal = toLocalOf(revoked);
  assert.equal(toLocal.valueSat, 150_000n, 'B’s to_local in the revoked state (A, the opener, paid the fee)');
  const breachTip = await pair.chain.tipHeight();
  assert.equal((await pair.chain.broadcast(revoked.toBuffer())).accepted, true);
  const penalty = await acceptedSpend(pair.a, toLocal, 'A’s penalty');
  assert.equal(penalty.tipHeight, breachTip, 'A punished at once, from the mempool');
  assert.deepEqual(penalty.tx, entry.penaltyTx, 'the very transaction the watchtower was given');

  const [outA, outB] = await mineUntilClosed(pair, [a, b]);
  const confirmedAt = breachTip + 1;
  assert.equal((await chainTx(pair, revoked.getId())).height, confirmedAt);
  const penaltyTx = await chainTx(pair, penalty.txid);
  assert.equal(penaltyTx.height, confirmedAt, 'the penalty confirmed in the breach’s own block');
  assert.ok(penaltyTx.height! < confirmedAt + TO_SELF_DELAY, 'long before B could have swept its to_local');
  assert.equal(a.snapshot().closing!.kind, 'remote-revoked');
  assert.equal(b.snapshot().closing!.kind, 'local-revoked');
  assert.equal(outA.kind, 'penalty');
  assert.equal(outB.kind, 'penalty');
  assert.equal(outB.localReceivedSat, 0n, 'B received nothing: its to_local went to A, its commitment has no output paying B at once');
  assert.ok(!pair.b.chain.broadcasts.some((x) => x.result.accepted && spends(txOf(x.tx), toLocal)), 'B never swept its revoked to_local');
  // A: the penalty (B's whole 150k less the penalty's fee) and its own to_remote on B's commitment (its
  // balance less the commitment fee, which the opener pays), swept.
  const payout = a.snapshot().payoutScript;
  const penaltyValue = paidTo(penaltyTx.tx, payout);
  assert.ok(penaltyValue > 148_000n && penaltyValue < 150_000n, `penalty pays ${penaltyValue}`);
  const toRemoteSweep = a.snapshot().closing!.resolutions.find((r) => r.purpose === 'to-remote-sweep')!;
  assert.equal(outA.localReceivedSat, penaltyValue + paidTo((await chainTx(pair, toRemoteSweep.txid)).tx, payout));
});

test('[BOLT 5] a watchtower entry alone punishes a breach while the node is offline; the node, back, counts it', { skip: SKIP }, async (t) => {
  const watchtower: WatchtowerEntry[] = [];
  const { pair } = await mqttPair(t, { nodeA: { watchtower: (entry) => void watchtower.push(entry) } });
  const { a, b, revoked, revokedNumber } = await breachSetup(pair);
  await until(() => watchtower.some((e) => e.commitmentNumber === revokedNumber), 'the watchtower entry');
  const entry = watchtower.find((e) => e.commitmentNumber === revokedNumber)!;
  const aPayout = a.snapshot().payoutScript;

  await pair.a.stop();
  assert.equal((await pair.chain.broadcast(revoked.toBuffer())).accepted, true);
  // The watchtower sees the commitment's txid and broadcasts what it holds.
  assert.equal(entry.commitmentTxid, revoked.getId());
  const result = await pair.chain.broadcast(entry.penaltyTx);
  assert.ok(result.accepted, `the watchtower's penalty is accepted: ${JSON.stringify(result)}`);
  const penalty = txOf(entry.penaltyTx);
  assert.ok(spends(penalty, toLocalOf(revoked)));
  assert.ok(paidTo(penalty, aPayout) > 148_000n, `it pays A (${paidTo(penalty, aPayout)} sat)`);
  const breachTip = await pair.chain.tipHeight();
  await pair.mine(1);
  assert.equal((await chainTx(pair, penalty.getId())).height, breachTip + 1);
  const [outB] = await mineUntilClosed(pair, [b]);
  assert.equal(outB.kind, 'penalty');
  assert.equal(outB.localReceivedSat, 0n);

  // A comes back to a closed channel: it recognises the breach, sweeps its to_remote and counts the penalty.
  await pair.a.start();
  const aAgain = pair.a.channel(a.id);
  const [outA] = await mineUntilClosed(pair, [aAgain], 5);
  assert.equal(outA.kind, 'penalty');
  const toRemoteSweep = aAgain.snapshot().closing!.resolutions.find((r) => r.purpose === 'to-remote-sweep')!;
  assert.equal(outA.localReceivedSat, paidTo(penalty, aPayout) + paidTo((await chainTx(pair, toRemoteSweep.txid)).tx, aPayout));
});

interface Fired {
  from: 'A' | 'B';
  amountMsat: bigint;
  /** Set once, when the pay() promise settles. */
  outcome: { ok: true; receipt: RsmcPaymentReceipt } | { ok: false; error: unknown } | undefined;
  settlements: number;
  promise: Promise<void>;
}

/** Fire a pay() and keep what it settles with (and how many times it settled). */
function fire(channel: RsmcChannel, from: 'A' | 'B', amountMsat: bigint): Fired {
  const f: Fired = { from, amountMsat, outcome: undefined, settlements: 0, promise: Promise.resolve() };
  f.promise = channel.pay(amountMsat).then(
    (receipt) => {
      f.settlements++;
      f.outcome = { ok: true, receipt };
    },
    (error: unknown) => {
      f.settlements++;
      f.outcome = { ok: false, error };
    },
  );
  return f;
}

const sumOf = (xs: bigint[]): bigint => xs.reduce((s, x) => s + x, 0n);

/** Close cooperatively and check the payout adds up: outputs + agreed fee + sub-satoshi remainders = capacity. */
async function closeAndCheck(pair: RsmcPair, a: RsmcChannel, b: RsmcChannel): Promise<void> {
  const finalA = a.balances!.localMsat;
  const finalB = b.balances!.localMsat;
  const closing = a.close({ cooperative: true });
  await untilMempool(pair, 'the closing transaction');
  await pair.mine(1);
  const [outA, outB] = await Promise.all([closing, b.waitForOutcome()]);
  assert.equal(outA.kind, 'cooperative-close');
  assert.equal(outB.kind, 'cooperative-close');
  const feeSat = b.snapshot().shutdown!.lastReceived!.feeSat;
  assert.equal(outA.localReceivedSat, finalA / 1000n - feeSat);
  assert.equal(outB.localReceivedSat, finalB / 1000n);
  const { tx } = await chainTx(pair, outA.closingTxid);
  assert.equal(paidTo(tx, a.snapshot().payoutScript) + paidTo(tx, b.snapshot().payoutScript) + feeSat + (a.capacitySat - finalA / 1000n - finalB / 1000n), a.capacitySat);
}

for (const factory of brokerFactories({ includeSkipped: true })) {
  test(`[BOLT 2 reestablish] ${factory.name} restarts with payments in flight both ways (and more sent while it is down): each committed once, balances agree`, { skip: factory.skip }, async (t) => {
    // The broker goes down the moment B has stored A's second commitment_signed: B's revoke_and_ack and
    // commitment_signed, A's next updates and B's own are all somewhere between the two nodes.
    let restarting: Promise<void> | undefined;
    let persisted = 0;
    let onDown = (): Promise<void> | void => undefined;
    const hooks = {
      afterPersist: (reason: string) => {
        if (reason === 'commitment-received' && ++persisted === 2) restarting = broker.restart(() => onDown());
      },
    };
    const { pair, broker } = await mqttPair(t, { nodeB: { hooks } }, factory);
    const { a, b } = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
    persisted = 0;
    const replaced = { A: 0, B: 0 };
    pair.a.messenger.onSession((e) => void (e.replaced && replaced.A++));
    pair.b.messenger.onSession((e) => void (e.replaced && replaced.B++));
    const fired: Fired[] = [];
    let k = 0;
    const burst = (count: number): void => {
      for (let i = 0; i < count; i++) {
        fired.push(fire(a, 'A', 2_000_000n + BigInt(k++) * 1_001n));
        fired.push(fire(b, 'B', 1_000_000n + BigInt(k++) * 1_001n));
      }
    };
    let settledWhenDown = 0;
    onDown = async () => {
      settledWhenDown = fired.filter((f) => f.settlements > 0).length;
      // Down: pay() still takes payments; they wait for the broker.
      burst(3);
      await settle(200);
    };
    burst(6);
    await until(() => restarting !== undefined, 'the broker restart');
    await restarting;
    await Promise.all(fired.map((f) => f.promise));
    await untilQuiescent(a, b);

    assert.ok(fired.every((f) => f.settlements === 1), 'every pay() settled once');
    const ok = (from: 'A' | 'B') => fired.filter((f) => f.from === from && f.outcome?.ok).map((f) => f.amountMsat);
    const failed = fired.filter((f) => !f.outcome?.ok);
    t.diagnostic(`${fired.length} payments (${12 - settledWhenDown} of the first 12 in flight when the broker stopped), ` +
      `${failed.length} rejected; sessions replaced A/B: ${replaced.A}/${replaced.B}`);
    assert.ok(settledWhenDown < 12, 'payments were in flight when the broker stopped');
    // No node restarted, so nothing had to be dropped: every payment went through.
    assert.deepEqual(failed.map((f) => String((f.outcome as { error: unknown }).error)), []);
    for (const [party, from] of [[pair.a, 'A'], [pair.b, 'B']] as const) {
      const sent = party.eventsOf('payment-sent');
      assert.equal(new Set(sent.map((e) => e.ref)).size, sent.length, `${from}: no pay() committed twice`);
      assert.equal(sent.length, ok(from).length);
    }
    assert.equal(a.balances!.localMsat, 200_000_000n - sumOf(ok('A')) + sumOf(ok('B')));
    assert.equal(b.balances!.localMsat, 300_000_000n - a.balances!.localMsat);
    assert.deepEqual(a.balances, { localMsat: b.balances!.remoteMsat, remoteMsat: b.balances!.localMsat });
    assert.equal(a.snapshot().sentCount, BigInt(ok('A').length));
    assert.equal(b.snapshot().receivedCount, BigInt(ok('A').length));
    await closeAndCheck(pair, a, b);
  });
}

test('[BOLT 2 reestablish] B killed mid-burst over Mosquitto and restarted: no payment counted twice, both sides agree, new payments unaffected', { skip: SKIP }, async (t) => {
  const { pair } = await mqttPair(t);
  const { a, b } = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
  const before = a.balances!.localMsat;
  const fired: Fired[] = [];
  const transfersSeenByA = new Map<bigint, Set<bigint>>();
  pair.a.messenger.onMessage((_peer, m) => {
    if (m.type === 'update_transfer') transfersSeenByA.set(m.id, (transfersSeenByA.get(m.id) ?? new Set()).add(m.amountMsat));
  });
  // B dies right after storing A's first revocation: B's first update is signed, the seven it proposed
  // meanwhile (sent to A as update_transfer) are not signed yet, so not durable: BOLT 2 forgets them.
  pair.b.process.killAfterPersist('revocation-received', 1);
  for (let i = 0; i < 8; i++) {
    fired.push(fire(a, 'A', 3_000_000n + BigInt(i) * 10_007n));
    fired.push(fire(b, 'B', 1_000_000n + BigInt(i) * 10_009n));
  }
  const where = await pair.b.process.killed;
  const settledBeforeKill = fired.filter((f) => f.from === 'B').map((f) => f.settlements);
  t.diagnostic(`B killed ${where}; B's pay() calls settled by then: ${settledBeforeKill.filter((n) => n > 0).length}`);
  await pair.b.restart();
  const b2 = pair.b.channel(a.id);
  // New payments from the new process while the old ones are still being sorted out.
  const later = [fire(b2, 'B', 777_777n), fire(a, 'A', 888_888n), fire(b2, 'B', 666_666n)];
  await Promise.all([...fired.filter((f) => f.from === 'A'), ...later].map((f) => f.promise));
  await untilQuiescent(a, b2);

  // A never restarted: each of its pay() calls settled once, resolved exactly when it was committed.
  const fromA = [...fired, ...later].filter((f) => f.from === 'A');
  assert.ok(fromA.every((f) => f.settlements === 1));
  const aSent = pair.a.eventsOf('payment-sent');
  assert.equal(new Set(aSent.map((e) => e.ref)).size, aSent.length, 'no pay() of A committed twice');
  assert.deepEqual(
    fromA.filter((f) => f.outcome?.ok).map((f) => f.amountMsat).sort(),
    aSent.map((e) => e.amountMsat).sort(),
    'A’s resolved payments are exactly those committed',
  );
  // B's old process died with its callers (what had not settled then never does); the new one's callers
  // get their own payments, never an old one's receipt.
  assert.deepEqual(fired.filter((f) => f.from === 'B').map((f) => f.settlements), settledBeforeKill);
  for (const f of later.filter((l) => l.from === 'B')) {
    assert.ok(f.outcome?.ok, `B's new pay() resolved: ${String((f.outcome as { error?: unknown } | undefined)?.error)}`);
    assert.equal(f.outcome.receipt.amountMsat, f.amountMsat);
  }
  // What A received from B: only amounts B asked for, each at most once (ids consecutive, none repeated).
  const aReceived = pair.a.eventsOf('payment-received');
  assert.deepEqual(aReceived.map((e) => e.id), aReceived.map((_, i) => BigInt(i)), 'B’s update ids, each once, in order');
  const asked = [...fired, ...later].filter((f) => f.from === 'B').map((f) => f.amountMsat);
  for (const e of aReceived) assert.ok(asked.includes(e.amountMsat), `A received ${e.amountMsat}, which B asked to pay`);
  assert.equal(new Set(aReceived.map((e) => e.amountMsat)).size, aReceived.length, 'no B payment counted twice');
  const unsettled = settledBeforeKill.filter((n) => n === 0).length;
  t.diagnostic(`of B's ${unsettled} payments unsettled at the kill, ${aReceived.length - 2 - (8 - unsettled)} were committed after the restart`);
  // An update id B proposed, then forgot with its process, was reused for another amount: A counted the one it committed.
  const reused = [...transfersSeenByA].filter(([, amounts]) => amounts.size > 1).map(([id]) => id);
  assert.ok(reused.length > 0, 'some update id was proposed twice with different amounts');
  for (const id of reused) {
    const committed = aReceived.find((e) => e.id === id);
    assert.ok(committed && later.some((f) => f.from === 'B' && f.amountMsat === committed.amountMsat), `id ${id}: the new process's amount was counted`);
  }

  // Both sides agree, and A's own events account for its balance.
  assert.equal(a.balances!.localMsat, before - sumOf(aSent.map((e) => e.amountMsat)) + sumOf(aReceived.map((e) => e.amountMsat)));
  assert.deepEqual(a.balances, { localMsat: b2.balances!.remoteMsat, remoteMsat: b2.balances!.localMsat });
  assert.equal(a.balances!.localMsat + b2.balances!.localMsat, 300_000_000n);
  assert.equal(a.snapshot().sentCount, b2.snapshot().receivedCount);
  assert.equal(a.snapshot().receivedCount, b2.snapshot().sentCount);
  assert.equal(a.snapshot().receivedCount, BigInt(aReceived.length));
  await closeAndCheck(pair, a, b2);
});

test('[BOLT 2] close() with payments in flight both ways: each pay() settles truthfully and the close is cooperative', { skip: SKIP }, async (t) => {
  const { pair } = await mqttPair(t);
  const { a, b } = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
  const fired: Fired[] = [];
  for (let i = 0; i < 3; i++) {
    fired.push(fire(a, 'A', 1_000_000n + BigInt(i)));
    fired.push(fire(b, 'B', 2_000_000n + BigInt(i)));
  }
  const closing = a.close({ cooperative: true });
  let closed: RsmcOutcome | Error | undefined;
  closing.then((o) => (closed = o), (e: Error) => (closed = e));
  await Promise.all(fired.map((f) => f.promise));
  await until(() => pair.chain.mempool().length > 0 || closed !== undefined, 'a closing transaction', 10_000);
  await pair.mine(1);
  await until(() => closed !== undefined, 'the outcome', 10_000);
  assert.ok(!(closed instanceof Error), String(closed));
  assert.equal(closed!.kind, 'cooperative-close', 'no force close');
  // Truthful: a pay() resolved exactly when its payment was committed, rejected exactly when it was not.
  for (const [party, from] of [[pair.a, 'A'], [pair.b, 'B']] as const) {
    const committed = party.eventsOf('payment-sent').map((e) => e.amountMsat).sort();
    const resolved = fired.filter((f) => f.from === from && f.outcome?.ok).map((f) => f.amountMsat).sort();
    assert.deepEqual(resolved, committed, `${from}: resolved pay() calls = committed payments`);
  }
  const ok = (from: 'A' | 'B') => sumOf(fired.filter((f) => f.from === from && f.outcome?.ok).map((f) => f.amountMsat));
  assert.equal(closed!.localBalanceMsat, 200_000_000n - ok('A') + ok('B'));
});

// TODO(machine.ts): the opener proposes the closing fee (maybeStartClosing) after a revoke_and_ack it
// receives, never after one it sends; when its own revocation completes the last update, as here, nothing
// triggers it and both sides wait in 'shutting_down' until a reconnect.
test('[BOLT 2] close() right after the opener’s own payments: the closing fee is proposed once the last update is committed', { skip: SKIP }, async (t) => {
  const { pair } = await mqttPair(t);
  const { a, b } = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
  const fired = [fire(a, 'A', 1_000_000n), fire(a, 'A', 2_000_000n)];
  const closing = a.close({ cooperative: true });
  closing.catch(() => undefined);
  await Promise.all(fired.map((f) => f.promise));
  assert.ok(fired.every((f) => f.outcome?.ok), 'both payments went through: they were sent before the shutdown');
  await until(() => pair.chain.mempool().length > 0, 'the closing transaction', 5_000);
  await pair.mine(1);
  const [outA, outB] = await Promise.all([closing, b.waitForOutcome()]);
  assert.equal(outA.kind, 'cooperative-close');
  assert.equal(outA.localBalanceMsat, 197_000_000n);
  assert.equal(outB.localBalanceMsat, 103_000_000n);
});

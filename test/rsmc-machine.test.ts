/**
 * The revocable-channel machine (src/channel/rsmc/machine.ts) driven directly, two sides, real signers
 * and a script-checking Simnet: open (single and dual funded), transfers both ways with several in
 * flight, cooperative close, unilateral close with the delay, a breach punished, reestablish after lost
 * messages and restarts, and the refusals a user meets (balance, reserve, closing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transaction } from 'bitcoinjs-lib';
import { RsmcError } from '../src/channel/rsmc/errors.js';
import { abandonableOpen, isLive } from '../src/channel/rsmc/machine.js';
import { checkInvariants, DriverCrash, RsmcDriver } from './helpers/rsmc-driver.js';

let ref = 0;
async function pay(d: RsmcDriver, from: 'a' | 'b', amountMsat: bigint): Promise<void> {
  await d.apply(d[from], { kind: 'pay', amountMsat, ref: ++ref });
}

function balances(d: RsmcDriver) {
  return { a: d.a.record!.localCommit!.spec.localMsat, b: d.b.record!.localCommit!.spec.localMsat };
}

test('single-funded open, transfers both ways (several in flight), both sides agree and conserve the capacity', async () => {
  const d = new RsmcDriver();
  await d.open(200_000n);
  assert.equal(d.a.record!.fundingSat, 200_000n);
  await pay(d, 'a', 50_000_000n);
  await d.deliverAll();
  assert.deepEqual(balances(d), { a: 150_000_000n, b: 50_000_000n });
  // Three from A and two from B before anything is delivered.
  await pay(d, 'a', 1_000n);
  await pay(d, 'a', 2_000n);
  await pay(d, 'b', 10_000n);
  await pay(d, 'a', 3_000n);
  await pay(d, 'b', 20_000n);
  await d.deliverAll();
  checkInvariants(d.a);
  checkInvariants(d.b);
  assert.deepEqual(balances(d), { a: 150_000_000n - 6_000n + 30_000n, b: 50_000_000n + 6_000n - 30_000n });
  assert.equal(d.a.record!.localCommit!.number, d.b.record!.remoteCommit!.number);
  assert.equal(d.a.events.filter((e) => e.type === 'payment-sent').length, 4);
  assert.equal(d.b.events.filter((e) => e.type === 'payment-received').length, 4);
  assert.equal(d.b.events.filter((e) => e.type === 'payment-sent').length, 2);
});

test('dual-funded open: both contribute, the funding confirms, the accepter can pay at once', async () => {
  const d = new RsmcDriver();
  await d.open(100_000n, 80_000n);
  assert.equal(d.a.record!.fundingSat, 180_000n);
  assert.equal(d.b.record!.localCommit!.spec.localMsat, 80_000_000n);
  await pay(d, 'b', 30_000_000n);
  await d.deliverAll();
  assert.deepEqual(balances(d), { a: 130_000_000n, b: 50_000_000n });
});

test('refusals: more than the balance allows, a non-positive amount, and paying after shutdown', async () => {
  const d = new RsmcDriver();
  await d.open(200_000n);
  await assert.rejects(d.apply(d.b, { kind: 'pay', amountMsat: 1n, ref: 1 }), (e: RsmcError) => e.code === 'INSUFFICIENT_BALANCE');
  await assert.rejects(d.apply(d.a, { kind: 'pay', amountMsat: 0n, ref: 1 }), (e: RsmcError) => e.code === 'BAD_AMOUNT');
  await assert.rejects(d.apply(d.a, { kind: 'pay', amountMsat: 200_000_000n, ref: 1 }), (e: RsmcError) => e.code === 'INSUFFICIENT_BALANCE');
  await d.apply(d.a, { kind: 'close', cooperative: true });
  await assert.rejects(d.apply(d.a, { kind: 'pay', amountMsat: 1_000n, ref: 1 }), (e: RsmcError) => e.code === 'CHANNEL_CLOSING');
});

test('cooperative close: shutdown, one fee round, one closing transaction paying both exactly', async () => {
  const d = new RsmcDriver();
  await d.open(200_000n);
  await pay(d, 'a', 60_000_000n);
  await d.deliverAll();
  await pay(d, 'b', 10_000_000n);
  await d.deliverAll();
  await d.apply(d.b, { kind: 'close', cooperative: true });
  await d.deliverAll();
  assert.equal(d.a.record!.phase, 'closing');
  const mempool = d.chain.mempool();
  assert.equal(mempool.length, 1);
  const closing = Transaction.fromBuffer((await d.chain.getTransaction(mempool[0]!))!.tx as Buffer);
  await d.mine(1);
  await d.reportFundingSpend(Uint8Array.from(closing.toBuffer()), d.tip);
  assert.equal(d.a.record!.phase, 'closed');
  assert.equal(d.b.record!.phase, 'closed');
  const a = d.a.record!.outcome!;
  const b = d.b.record!.outcome!;
  assert.equal(a.kind, 'cooperative-close');
  assert.equal(b.localReceivedSat, 50_000n, 'the accepter gets its balance exactly (the opener pays the fee)');
  assert.equal(a.localReceivedSat + b.localReceivedSat + closingFee(closing, 200_000n), 200_000n);
});

function closingFee(tx: Transaction, capacitySat: bigint): bigint {
  return capacitySat - tx.outs.reduce((s, o) => s + BigInt(o.value), 0n);
}

/**
 * A opens 200k sat, pays B 70k sat, then closes unilaterally; its commitment confirms in the next block
 * and both sides are told.
 */
async function closedByAUnilaterally(): Promise<{ d: RsmcDriver; commitment: Uint8Array; confirmedAt: number }> {
  const d = new RsmcDriver();
  await d.open(200_000n);
  await pay(d, 'a', 70_000_000n);
  await d.deliverAll();
  await d.apply(d.a, { kind: 'close', cooperative: false });
  const [commitmentTxid] = d.chain.mempool();
  const commitment = (await d.chain.getTransaction(commitmentTxid!))!.tx;
  await d.mine(1);
  const confirmedAt = d.tip;
  await d.reportFundingSpend(commitment, confirmedAt);
  return { d, commitment, confirmedAt };
}

test('unilateral close: our commitment, the to_local sweep only after to_self_delay, the peer sweeps at once', async () => {
  const { d } = await closedByAUnilaterally();
  assert.equal(d.a.record!.closing!.kind, 'local-latest');
  assert.equal(d.b.record!.closing!.kind, 'remote-latest');
  // B's to_remote sweep went out at once; A's to_local waits for the delay (6 blocks).
  assert.equal(d.a.record!.closing!.resolutions.length, 0);
  assert.equal(d.b.record!.closing!.resolutions.length, 1);
  for (let i = 0; i < 4; i++) await d.mine(1);
  assert.equal(d.a.record!.closing!.resolutions.length, 0, 'no sweep before to_self_delay');
  await d.mine(1);
  assert.equal(d.a.record!.closing!.resolutions.length, 1, 'sweep once the next block may include it');
  await d.mine(1);
  for (const s of [d.a, d.b]) {
    for (const res of s.record!.closing!.resolutions) {
      const status = await d.chain.getTransaction(res.txid);
      assert.ok(status?.blockHeight, `${s.name}'s ${res.purpose} confirmed`);
      await d.apply(s, { kind: 'output-spent', outpoint: res.spends[0]!, txid: res.txid, tx: res.tx, height: status.blockHeight });
    }
  }
  assert.equal(d.a.record!.outcome?.kind, 'unilateral-close');
  assert.equal(d.b.record!.outcome?.kind, 'unilateral-close');
  // Balances less the commitment fee (A opened, so A pays it) and each sweep's fee.
  const a = d.a.record!.outcome!.localReceivedSat;
  const b = d.b.record!.outcome!.localReceivedSat;
  assert.ok(a > 128_000n && a < 130_000n - 724n, `A received ${a}`);
  assert.ok(b > 69_000n && b < 70_000n, `B received ${b}`);
});

test('a mempool report of the closing commitment after its confirmation changes nothing: the to_local sweep still starts from the confirmation', async () => {
  const { d, commitment, confirmedAt } = await closedByAUnilaterally();
  const before = d.a.persists;
  await d.reportFundingSpend(commitment, undefined); // a late report, as the runtime may deliver one
  assert.equal(d.a.persists, before, 'nothing stored');
  for (const s of [d.a, d.b]) assert.equal(s.record!.closing!.confirmedHeight, confirmedAt, `${s.name} keeps the confirmation`);
  for (let i = 0; i < 5; i++) await d.mine(1);
  assert.equal(d.a.record!.closing!.resolutions.length, 1, 'A sweeps its to_local to_self_delay blocks after the confirmation');
});

test('a unilateral close mid-update settles the transfer in flight by the commitment that reached the chain, on both sides alike', async () => {
  // Found by the crash harness: B closed with its newest commitment before its revoke_and_ack reached A;
  // B counted its payment sent, A never counted it received, though the chain paid it to A.
  for (const closer of ['a', 'b'] as const) {
    for (let k = 0; ; k++) {
      const d = new RsmcDriver();
      await d.open(200_000n);
      await pay(d, 'a', 100_000_000n);
      await d.deliverAll();
      const before = { a: d.a.record!.receivedCount, b: d.b.record!.sentCount };
      const payRef = ++ref;
      await d.apply(d.b, { kind: 'pay', amountMsat: 30_000_000n, ref: payRef });
      let delivered = 0;
      while (delivered < k && ((await d.deliverOne(d.a)) || (await d.deliverOne(d.b)))) delivered++;
      const done = delivered < k; // the update ran to the end before k deliveries: last case
      const s = d[closer];
      await d.apply(s, { kind: 'close', cooperative: false });
      const [txid] = d.chain.mempool();
      const commitment = (await d.chain.getTransaction(txid!))!.tx;
      const onChain = s.record!.localCommit!.spec;
      const included = (closer === 'b' ? onChain.localMsat : onChain.remoteMsat) === 70_000_000n;
      await d.mine(1);
      await d.reportFundingSpend(commitment, d.tip);
      const at = `closer ${closer}, after ${delivered} deliveries`;
      assert.equal(d.a.record!.receivedCount - before.a, included ? 1n : 0n, `A's count, ${at}`);
      assert.equal(d.b.record!.sentCount - before.b, included ? 1n : 0n, `B's count, ${at}`);
      const outcome = d.b.events.filter((e) => (e.type === 'payment-sent' || e.type === 'payment-failed') && e.ref === payRef).map((e) => e.type);
      assert.deepEqual(outcome, [included ? 'payment-sent' : 'payment-failed'], `B's pay() outcome, ${at}`);
      assert.equal(d.a.events.filter((e) => e.type === 'payment-received' && e.amountMsat === 30_000_000n).length, included ? 1 : 0, `A's payment-received, ${at}`);
      if (done) break;
    }
  }
});

test('breach: B broadcasts a revoked commitment, A punishes it at once and B gets nothing from to_local', async () => {
  const d = new RsmcDriver();
  await d.open(200_000n);
  await pay(d, 'a', 120_000_000n); // B: 120k sat
  await d.deliverAll();
  const revoked = await d.signedCommitment(d.b); // B's state with 120k
  await pay(d, 'b', 100_000_000n); // B pays most of it back, revoking that state
  await d.deliverAll();
  assert.equal(d.b.record!.localCommit!.spec.localMsat, 20_000_000n);
  assert.ok((await d.chain.broadcast(revoked)).accepted);
  await d.reportFundingSpend(revoked, undefined);
  assert.equal(d.a.record!.closing!.kind, 'remote-revoked');
  assert.equal(d.b.record!.closing!.kind, 'local-revoked');
  const penalty = d.a.record!.closing!.resolutions.find((r) => r.purpose === 'penalty');
  assert.ok(penalty, 'penalty built and broadcast while the revoked commitment is still unconfirmed');
  await d.mine(1);
  const status = await d.chain.getTransaction(penalty.txid);
  assert.ok(status?.blockHeight, 'the penalty confirmed in the same block as the revoked commitment');
  assert.ok(penalty.valueSat > 119_000n, 'A took B’s 120k to_local less the penalty fee');
});

test('reestablish: lost commitment_signed and revoke_and_ack are retransmitted; a restart mid-update converges', async () => {
  const d = new RsmcDriver();
  await d.open(200_000n);
  // A proposes and signs; the messages are lost with the session.
  await pay(d, 'a', 5_000_000n);
  d.b.inbox.length = 0;
  await d.reconnect();
  await d.deliverAll();
  assert.deepEqual(balances(d), { a: 195_000_000n, b: 5_000_000n });
  // B gets A's commitment_signed and revokes, but A never sees the revocation nor B's signature.
  await pay(d, 'a', 1_000_000n);
  await d.deliverOne(d.b); // update_transfer
  await d.deliverOne(d.b); // commitment_signed → B answers revoke_and_ack + commitment_signed
  d.a.inbox.length = 0;
  await d.reconnect();
  await d.deliverAll();
  assert.deepEqual(balances(d), { a: 194_000_000n, b: 6_000_000n });
  // B restarts after persisting its new commitment but before its revocation left.
  await pay(d, 'b', 2_000_000n);
  await d.deliverOne(d.a);
  await d.deliverOne(d.a);
  await d.restart(d.a);
  await d.apply(d.b, { kind: 'disconnected' });
  await d.apply(d.a, { kind: 'connected' });
  await d.apply(d.b, { kind: 'connected' });
  await d.deliverAll();
  assert.deepEqual(balances(d), { a: 196_000_000n, b: 4_000_000n });
  checkInvariants(d.a);
  checkInvariants(d.b);
});

test('a restart of either side at any step of the open (single and dual funded) still ends with both open and paying', async () => {
  // Every message boundary and every persist of the open, for either side: the crash harness found several
  // ways an open could stall after a kill; this walks all of them the driver can express.
  const step = async (d: RsmcDriver, mined: { n: number }): Promise<boolean> => {
    if ((await d.deliverOne(d.a)) || (await d.deliverOne(d.b))) return true;
    if (mined.n < 2 && d.a.record?.phase !== 'aborted' && (d.a.record?.phase !== 'open' || d.b.record?.phase !== 'open')) {
      mined.n++;
      await d.mine(1);
      return true;
    }
    return false;
  };
  /** A new session, the open run to its end; unless it was given up, both open and paying both ways. */
  const reconnectThenPay = async (d: RsmcDriver, mineFirst: boolean, remoteSat: bigint, at: string): Promise<void> => {
    await d.reconnect();
    const mined = { n: 0 };
    // A block before the peer's channel_reestablish is read: the funding may reach its depth first.
    if (mineFirst) await d.mine(1);
    for (let guard = 0; guard < 200 && (await step(d, mined)); guard++);
    if (d.a.record!.phase === 'aborted') return;
    assert.equal(d.a.record!.phase, 'open', at);
    assert.equal(d.b.record!.phase, 'open', at);
    await pay(d, 'a', 5_000_000n);
    await d.deliverAll();
    await pay(d, 'b', 1_000n);
    await d.deliverAll();
    assert.equal(d.a.record!.localCommit!.number, 2n, at);
    assert.equal(d.b.record!.localCommit!.spec.localMsat, remoteSat * 1000n + 5_000_000n - 1_000n, at);
    checkInvariants(d.a);
    checkInvariants(d.b);
  };
  let cases = 0;
  for (const remoteSat of [0n, 80_000n]) {
    for (const [victim, mineFirst] of [['a', false], ['b', false], ['a', true], ['b', true]] as const) {
      for (let k = 0; ; k++) {
        const d = new RsmcDriver();
        await d.open(100_000n, remoteSat, 0n, () => true);
        const mined = { n: 0 };
        let i = 0;
        while (i < k && (await step(d, mined))) i++;
        if (i < k) break; // the open had ended before step k: every point was tried
        cases++;
        await d.restart(d[victim]);
        const at = `remoteSat ${remoteSat}, ${victim} restarted after step ${k}${mineFirst ? ', a block first' : ''}`;
        if (!d[victim].record) continue; // lost before it was stored: the open is given up
        await reconnectThenPay(d, mineFirst, remoteSat, at);
      }
    }
  }
  assert.ok(cases > 20, `${cases} restart points`);

  // And killed right after each of its persists (before the effects that follow it ran).
  let kills = 0;
  for (const remoteSat of [0n, 80_000n]) {
    for (const [victim, mineFirst] of [['a', false], ['b', false], ['a', true], ['b', true]] as const) {
      for (let p = 1; ; p++) {
        const d = new RsmcDriver();
        let persists = 0;
        d.crashAfterPersist = (s) => s === d[victim] && ++persists === p;
        try {
          await d.open(100_000n, remoteSat);
          break; // fewer than p persists in the whole open
        } catch (error) {
          if (!(error instanceof DriverCrash)) throw error;
        }
        kills++;
        d.crashAfterPersist = undefined;
        await d.restart(d[victim]);
        await reconnectThenPay(d, mineFirst, remoteSat, `remoteSat ${remoteSat}, ${victim} killed after persist ${p}${mineFirst ? ', a block first' : ''}`);
      }
    }
  }
  assert.ok(kills > 10, `${kills} kills`);
});

test('a side that becomes open in a reconnected session before the peer\'s channel_reestablish arrives still takes it as this session\'s one', async () => {
  // Found by the crash harness ("channel_reestablish twice in one session"): becoming open marked the
  // session as synchronised, so the peer's channel_reestablish was refused when it came.
  const d = new RsmcDriver();
  await d.open(200_000n, 0n, 0n, (x) => x.a.record?.phase === 'awaiting_ready' && x.a.inbox.length === 0 && x.b.inbox.length === 0);
  d.lagging.add('a'); // B sees the funding's depth first and sends channel_ready
  await d.mine(1);
  await d.deliverOne(d.a);
  assert.equal(d.a.record!.readyReceived, true);
  assert.equal(d.a.record!.readySent, false);
  await d.reconnect(); // both send channel_reestablish
  d.lagging.delete('a');
  await d.apply(d.a, { kind: 'block', height: d.tip }); // A becomes open before reading B's
  assert.equal(d.a.record!.phase, 'open');
  await d.deliverAll();
  assert.equal(d.b.record!.phase, 'open');
  const rejected = [...d.a.events, ...d.b.events].filter((e) => e.type === 'rejected');
  assert.deepEqual(rejected, []);
  await pay(d, 'a', 5_000_000n);
  await d.deliverAll();
  await pay(d, 'b', 1_000n);
  await d.deliverAll();
  assert.deepEqual(balances(d), { a: 195_001_000n, b: 4_999_000n });
});

test('a side restored from an old backup learns it is stale and never broadcasts its commitment', async () => {
  const d = new RsmcDriver();
  await d.open(200_000n);
  await pay(d, 'a', 5_000_000n);
  await d.deliverAll();
  const backup = d.b.durable!;
  await pay(d, 'a', 5_000_000n);
  await d.deliverAll();
  d.b.durable = backup;
  await d.restart(d.b);
  await d.apply(d.a, { kind: 'disconnected' });
  await d.apply(d.a, { kind: 'connected' });
  await d.apply(d.b, { kind: 'connected' });
  await d.deliverAll();
  assert.equal(d.b.record!.stale, true);
  assert.equal(d.b.record!.failure?.code, 'LOCAL_STALE');
  // The up-to-date side sees a peer that lost state and closes with its own latest commitment; the
  // stale side broadcasts nothing.
  assert.deepEqual(d.chain.mempool(), [d.a.record!.localCommit!.txid]);
  assert.equal(d.a.record!.failure?.code, 'PEER_STALE');
  await assert.rejects(d.apply(d.b, { kind: 'close', cooperative: false }), (e: RsmcError) => e.code === 'LOCAL_STALE');
});

test('breach seen before its revocation arrives: the late revoke_and_ack turns it into a penalty', async () => {
  const d = new RsmcDriver();
  await d.open(200_000n);
  await pay(d, 'a', 120_000_000n);
  await d.deliverAll();
  const current = await d.signedCommitment(d.b); // B's current state: 120k to B
  await pay(d, 'b', 100_000_000n);
  // B → A: update_transfer, commitment_signed. A → B: revoke_and_ack, commitment_signed.
  await d.deliverOne(d.a);
  await d.deliverOne(d.a);
  await d.deliverOne(d.b);
  await d.deliverOne(d.b); // B revokes the state it holds in `current`; its revoke_and_ack is still in flight
  assert.equal(d.a.inbox[0]?.type, 'revoke_and_ack');
  assert.ok((await d.chain.broadcast(current)).accepted, 'the cheater broadcasts');
  await d.reportFundingSpend(current, undefined);
  assert.equal(d.a.record!.closing!.kind, 'remote-latest', 'A cannot know yet');
  await d.deliverOne(d.a); // the revocation arrives
  assert.equal(d.a.record!.closing!.kind, 'remote-revoked');
  const penalty = d.a.record!.closing!.resolutions.find((r) => r.purpose === 'penalty');
  assert.ok(penalty, 'penalty built and broadcast');
  await d.mine(1);
  assert.ok((await d.chain.getTransaction(penalty.txid))?.blockHeight, 'penalty confirmed');
});

test('the accepter checks the funding output it was told about: a wrong script fails the open, nothing is signed after', async () => {
  const d = new RsmcDriver();
  await assert.rejects(
    (async () => {
      // Swap the chain's view of the funding output for one with the right value but another script.
      const real = d.chain.getUtxo.bind(d.chain);
      d.chain.getUtxo = async (outpoint) => {
        const utxo = await real(outpoint);
        return utxo && { ...utxo, output: { ...utxo.output, script: new Uint8Array([0x00, 0x20, ...new Uint8Array(32).fill(7)]) } };
      };
      await d.open(200_000n);
    })(),
    /open failed/,
  );
  // Whoever looks first fails the channel (the other then fails on its error); neither goes on to ready.
  assert.ok([d.a, d.b].some((s) => s.record!.failure?.code === 'FUNDING_MISMATCH'), 'FUNDING_MISMATCH on one side');
  assert.equal(d.a.record!.readySent, false);
  assert.equal(d.b.record!.readySent, false);
});

test('a dual-funding accepter killed between storing funding_signed and signing its inputs signs them after its restart; the open completes', async () => {
  // Found by the crash harness: nothing made the restarted accepter sign, and the opener waited for ever.
  const d = new RsmcDriver();
  await d.killAfterPersist(d.b, (reason) => reason === 'funding-signed', () => d.open(100_000n, 80_000n, 0n, () => false));
  assert.equal(d.b.record!.phase, 'funding_signed');
  assert.ok(d.b.record!.localCommit, 'commitment 0 was stored before the kill');
  await d.reconnect();
  await d.deliverAll();
  await d.mine(1);
  await d.deliverAll();
  assert.equal(d.a.record!.phase, 'open');
  assert.equal(d.b.record!.phase, 'open');
  assert.equal(d.b.record!.fundingSat, 180_000n);
  assert.equal(d.b.coinReleases, 0);
});

test('a dual-funding accepter that has not signed its inputs abandons the open on the opener\'s error and releases its coins; once it signed, it keeps them', async () => {
  // Unsigned: the funding cannot be valid without our inputs, so nothing can reach the chain.
  const d = new RsmcDriver();
  await d.killAfterPersist(d.b, (reason) => reason === 'funding-signed', () => d.open(100_000n, 80_000n, 0n, () => false));
  await d.apply(d.a, { kind: 'close', cooperative: true }); // the opener gives up (what the harness's user did)
  assert.equal(d.a.record!.phase, 'aborted');
  await d.deliverAll();
  assert.equal(d.b.record!.phase, 'aborted');
  assert.equal(d.b.coinReleases, 1);
  assert.equal(d.chain.mempool().length, 0);

  // Signed and given to the opener: the opener could still complete and broadcast the funding, so the
  // accepter keeps its coins reserved and waits for the chain (it fails the channel, it does not abort).
  const e = new RsmcDriver();
  await e.open(100_000n, 80_000n, 0n, (x) => x.b.record?.phase === 'funding_signed' && x.b.durable?.fundingTx !== undefined && x.a.inbox.some((m) => m.type === 'funding_tx_signatures'));
  await e.apply(e.b, { kind: 'message', message: { type: 'error', channelId: e.b.record!.channelId!, code: 0, message: 'gone' } as never });
  assert.notEqual(e.b.record!.phase, 'aborted');
  assert.equal(e.b.coinReleases, 0);
  await assert.rejects(
    (async () => e.apply(e.b, { kind: 'close', cooperative: true }))(),
    (err: RsmcError) => err.code === 'BAD_STATE',
  );
});

test('an opener killed between storing funding_signed and signing its inputs signs and broadcasts after its restart (single and dual funded)', async () => {
  for (const remoteSat of [0n, 80_000n]) {
    const d = new RsmcDriver();
    const reason = remoteSat > 0n ? 'funding-tx-signed' : 'funding-signed';
    await d.killAfterPersist(d.a, (r, record) => r === reason && record.phase === 'funding_signed', () => d.open(100_000n, remoteSat, 0n, () => false));
    assert.equal(d.a.record!.phase, 'funding_signed');
    assert.equal(d.chain.mempool().length, 0, 'nothing broadcast before the kill');
    await d.reconnect();
    await d.deliverAll();
    await d.mine(1);
    await d.deliverAll();
    assert.equal(d.a.record!.phase, 'open', `remoteSat ${remoteSat}`);
    assert.equal(d.b.record!.phase, 'open', `remoteSat ${remoteSat}`);
  }
});

test('an opener told "unknown channel" for its funding_created (the accepter lost the open) gives the open up and releases its coins', async () => {
  const d = new RsmcDriver();
  await d.open(100_000n, 0n, 0n, (x) => x.b.inbox.some((m) => m.type === 'funding_created'));
  d.b.record = undefined; // B stopped before storing anything: it never heard of this channel
  d.b.inbox.length = 0;
  const temp = d.a.record!.tempChannelId;
  await d.apply(d.a, { kind: 'message', message: { type: 'warning', channelId: temp, code: 0x0201, message: 'unknown channel' } });
  assert.equal(d.a.record!.phase, 'aborted');
  assert.equal(d.a.coinReleases, 1);
  assert.equal(d.chain.mempool().length, 0);
  // Any other warning changes nothing.
  const e = new RsmcDriver();
  await e.open(100_000n, 0n, 0n, (x) => x.b.inbox.some((m) => m.type === 'funding_created'));
  await e.apply(e.a, { kind: 'message', message: { type: 'warning', channelId: e.a.record!.tempChannelId, code: 0x0101, message: 'slow down' } });
  assert.equal(e.a.record!.phase, 'funding_signed');
});

test('an opener resending funding_created to an accepter that abandoned the open learns so and gives it up too (single and dual funded)', async () => {
  for (const remoteSat of [0n, 80_000n]) {
    const d = new RsmcDriver();
    await d.open(100_000n, remoteSat, 0n, (x) => x.b.inbox.some((m) => m.type === 'funding_created'));
    d.b.inbox.length = 0; // lost with the session
    await d.reconnect(); // B, still negotiating, abandons the open on the disconnect; A sends funding_created again
    assert.equal(d.b.record!.phase, 'aborted');
    await d.deliverAll();
    assert.equal(d.a.record!.phase, 'aborted', `remoteSat ${remoteSat}`);
    assert.equal(d.a.coinReleases, 1);
    assert.equal(d.chain.mempool().length, 0);
  }
});

test('the opener can abandon an open it holds commitment 0 of, before signing its inputs; late funding signatures change nothing', async () => {
  // Found by the crash harness: an accepter restarted without the open left the opener in funding_signed
  // with its coins reserved and no way out.
  const d = new RsmcDriver();
  await d.open(100_000n, 80_000n, 0n, (x) => x.a.record?.phase === 'funding_signed' && x.a.record.localCommit !== undefined);
  await d.apply(d.a, { kind: 'close', cooperative: true });
  assert.equal(d.a.record!.phase, 'aborted');
  assert.ok(d.a.events.some((e) => e.type === 'failed'));
  await d.deliverAll(); // B's funding_tx_signatures, if it was still on its way, and B's view of the error
  assert.equal(d.a.record!.phase, 'aborted');
  assert.equal(d.chain.mempool().length, 0, 'no funding transaction broadcast');
});

test('the open timeout abandons an open at every step where nothing of ours can reach the chain, and changes nothing after', async () => {
  // Each side, after each message of the open (single and dual funded): abandonable → aborted with
  // TIMEOUT, coins released, and the funding never confirms; otherwise the input is a no-op and the
  // open completes as if nothing happened.
  let abandoned = 0;
  let kept = 0;
  for (const remoteSat of [0n, 80_000n]) {
    for (const side of ['a', 'b'] as const) {
      for (let k = 0; ; k++) {
        const d = new RsmcDriver();
        await d.open(100_000n, remoteSat, 0n, () => true);
        let i = 0;
        while (i < k && ((await d.deliverOne(d.a)) || (await d.deliverOne(d.b)))) i++;
        if (i < k) break; // every step of the open was tried
        const s = d[side];
        const before = s.record!;
        const at = `remoteSat ${remoteSat}, ${side} timed out after message ${k} (${before.phase})`;
        if (abandonableOpen(before)) {
          abandoned++;
          const hadCoins = before.localInputs.length > 0;
          await d.apply(s, { kind: 'open-timeout', afterMs: 600_000 });
          assert.equal(s.record!.phase, 'aborted', at);
          assert.equal(s.record!.failure?.code, 'TIMEOUT', at);
          assert.equal(s.coinReleases, hadCoins ? 1 : 0, at);
          assert.ok(s.events.some((e) => e.type === 'failed' && e.code === 'TIMEOUT'), at);
          await d.deliverAll();
          await d.mine(1);
          await d.deliverAll();
          const outpoint = d.a.record?.fundingOutpoint ?? d.b.record?.fundingOutpoint;
          if (outpoint) assert.equal(await d.chain.getUtxo(outpoint), undefined, `${at}: the funding must not exist`);
        } else {
          kept++;
          await d.apply(s, { kind: 'open-timeout', afterMs: 600_000 });
          assert.equal(s.record, before, `${at}: unchanged`);
          await d.deliverAll();
          await d.mine(1);
          await d.deliverAll();
          assert.ok(isLive(d.a.record!) && d.a.record!.phase === 'open' && d.b.record!.phase === 'open', `${at}: both open`);
        }
      }
    }
  }
  assert.ok(abandoned >= 6 && kept >= 6, `${abandoned} abandoned, ${kept} kept`);
});

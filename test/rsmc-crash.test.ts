/**
 * A revocable channel's node killed (a SIGKILL, in process) at each step of the BOLT 2 update exchange,
 * on each side, in both directions, then restarted on the same store (test/helpers/rsmc-parties.ts):
 *
 *   payer:  update_transfer → persist 'commitment-signed' → commitment_signed ─┐
 *   payee:  persist 'commitment-received' → revoke_and_ack → (signs back) ... ←┘
 *   payer:  persist 'revocation-received' → persist 'commitment-received' → revoke_and_ack
 *   payee:  persist 'revocation-received'
 *
 * The process dies right after the named durable commit (the afterPersist hook never returns) or right
 * after the named message is handed to the messenger (it goes out; nothing after it does). After each
 * restart:
 *  - the restarted side's stored commitment is one it has not revoked: the peer holds no secret for its
 *    number, and the peer would classify it as 'remote-latest', never 'remote-revoked', if it were broadcast;
 *  - both sides converge (each one's commitment is the other's view of it, same number and txid) and the
 *    capacity is conserved;
 *  - the payment in flight completed on both sides or on neither: on both once the payer had durably
 *    signed it, on neither when the payer died with only update_transfer sent (unsigned updates are not
 *    durable, BOLT 2); a surviving payer's pay() resolves exactly then;
 *  - counts: the payer's sentCount and the payee's receivedCount moved together.
 * After all of them, payments continue both ways and a cooperative close pays each side exactly.
 *
 * A second test checks that the watchtower callback still gets every revoked state when the node dies
 * right after storing a revocation (the entry is handed over before the revocation is stored, and the
 * peer's retransmitted revoke_and_ack exports it again after a crash in between).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transaction } from 'bitcoinjs-lib';
import type { RsmcChannel, RsmcPaymentReceipt } from '../src/channel/rsmc/channel.js';
import { classifyFundingSpend, type WatchtowerEntry } from '../src/channel/rsmc/onchain.js';
import type { RsmcPersistReason, RsmcRecord } from '../src/channel/rsmc/types.js';
import { equalBytes } from '../src/bytes.js';
import { commitmentIndex, PerCommitmentSecretStore } from '../src/onchain/rsmc/shachain.js';
import type { WireMessage } from '../src/wire/index.js';
import { memoryNet, openChannel, startRsmcPair, untilQuiescent, type RsmcPair, type RsmcParty } from './helpers/rsmc-parties.js';
import { until } from './helpers/session-nodes.js';

/**
 * What the dead side left on disk, relative to before the payment: how far its own and the peer's
 * commitments had moved, and whether a commitment it signed for the peer was outstanding. (The payer gets
 * the revocation before the payee's signature; the payee revokes before it signs back.)
 */
interface OnDisk {
  local: bigint;
  remote: bigint;
  remoteNext: boolean;
}
type CrashPoint = ({ at: 'persist'; reason: RsmcPersistReason } | { at: 'send'; type: WireMessage['type'] }) & {
  payer: OnDisk;
  /** undefined: the payee has no such point in this update. */
  payee: OnDisk | undefined;
};

const POINTS: CrashPoint[] = [
  // The payer's proposal is not durable yet (and the payee persists nothing for it).
  { at: 'send', type: 'update_transfer', payer: { local: 0n, remote: 0n, remoteNext: false }, payee: undefined },
  { at: 'persist', reason: 'commitment-signed', payer: { local: 0n, remote: 0n, remoteNext: true }, payee: { local: 1n, remote: 0n, remoteNext: true } },
  { at: 'send', type: 'commitment_signed', payer: { local: 0n, remote: 0n, remoteNext: true }, payee: { local: 1n, remote: 0n, remoteNext: true } },
  { at: 'persist', reason: 'commitment-received', payer: { local: 1n, remote: 1n, remoteNext: false }, payee: { local: 1n, remote: 0n, remoteNext: false } },
  { at: 'send', type: 'revoke_and_ack', payer: { local: 1n, remote: 1n, remoteNext: false }, payee: { local: 1n, remote: 0n, remoteNext: false } },
  { at: 'persist', reason: 'revocation-received', payer: { local: 0n, remote: 1n, remoteNext: false }, payee: { local: 1n, remote: 1n, remoteNext: false } },
];

function label(point: CrashPoint): string {
  return point.at === 'persist' ? `after persisting '${point.reason}'` : `after sending ${point.type}`;
}

const CAPACITY_SAT = 300_000n;

interface Ends {
  pair: RsmcPair;
  id: string;
}

function ch(party: RsmcParty, ends: Ends): RsmcChannel {
  return party.channel(ends.id);
}

function withTimeout<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms))),
  ]);
}

/** The restarted side's stored commitment is not revoked: the peer has no secret for it and would not punish it. */
function assertNotRevoked(stored: RsmcRecord, signedCommitment: Uint8Array, peer: Readonly<RsmcRecord>, who: string): void {
  const n = stored.localCommit!.number;
  const secrets = PerCommitmentSecretStore.fromJSON(peer.remoteSecrets);
  assert.equal(secrets.get(commitmentIndex(n)), undefined, `${who}: the peer holds no secret for its stored commitment ${n}`);
  assert.ok(n >= peer.remoteCommit!.number, `${who}: its commitment ${n} is not older than the peer's view ${peer.remoteCommit!.number}`);
  const tx = Transaction.fromBuffer(Buffer.from(signedCommitment));
  assert.equal(tx.getId(), stored.localCommit!.txid, `${who}: the commitment it would broadcast is the stored one`);
  const kind = classifyFundingSpend(peer, tx).kind;
  assert.notEqual(kind, 'remote-revoked', `${who}: broadcasting it would not be a breach`);
  assert.equal(kind, 'remote-latest');
}

async function crashOnce(ends: Ends, payer: RsmcParty, point: CrashPoint, victimIsPayer: boolean, amountMsat: bigint): Promise<string> {
  const { pair } = ends;
  const payee = payer === pair.a ? pair.b : pair.a;
  const victim = victimIsPayer ? payer : payee;
  const survivor = victimIsPayer ? payee : payer;
  await untilQuiescent(ch(pair.a, ends), ch(pair.b, ends), 'in sync before the crash');
  const victimBefore = ch(victim, ends).snapshot();
  const before = {
    payerMsat: ch(payer, ends).balances!.localMsat,
    payeeMsat: ch(payee, ends).balances!.localMsat,
    sent: ch(payer, ends).snapshot().sentCount,
    received: ch(payee, ends).snapshot().receivedCount,
  };

  if (point.at === 'persist') victim.process.killAfterPersist(point.reason);
  else victim.process.killAfterSend(point.type);
  const dying = victim.process;
  const paying = ch(payer, ends).pay(amountMsat);
  // A dead payer's caller is gone with it: that promise never settles.
  let receipt: RsmcPaymentReceipt | undefined;
  let payError: unknown;
  paying.then((r) => (receipt = r), (e: unknown) => (payError = e));
  const where = await withTimeout(dying.killed, `${victim.name} to reach the crash point`);

  // What the dead process left on disk, against what the survivor holds.
  const stored = await victim.stored(ch(victim, ends));
  assert.deepEqual(
    {
      local: stored.localCommit!.number - victimBefore.localCommit!.number,
      remote: stored.remoteCommit!.number - victimBefore.remoteCommit!.number,
      remoteNext: stored.remoteNext !== undefined,
    },
    victimIsPayer ? point.payer : point.payee,
    `${victim.name}'s disk ${where}`,
  );
  await victim.restart();
  const signed = await ch(victim, ends).signedLocalCommitment();
  assertNotRevoked(stored, signed, ch(survivor, ends).snapshot(), `${victim.name} restarted ${where}`);

  await untilQuiescent(ch(pair.a, ends), ch(pair.b, ends), `convergence after ${victim.name} died ${where}`);
  const a = ch(pair.a, ends).snapshot();
  const b = ch(pair.b, ends).snapshot();
  for (const r of [a, b]) {
    assert.equal(r.localCommit!.spec.localMsat + r.localCommit!.spec.remoteMsat, CAPACITY_SAT * 1000n, 'capacity conserved');
    assert.equal(r.failure, undefined, 'no failure');
  }
  assert.deepEqual(a.localCommit!.spec, { localMsat: b.remoteCommit!.spec.remoteMsat, remoteMsat: b.remoteCommit!.spec.localMsat }, 'A’s commitment is B’s view of it');
  assert.deepEqual(b.localCommit!.spec, { localMsat: a.remoteCommit!.spec.remoteMsat, remoteMsat: a.remoteCommit!.spec.localMsat }, 'B’s commitment is A’s view of it');
  assert.deepEqual(a.localCommit!.spec, { localMsat: b.localCommit!.spec.remoteMsat, remoteMsat: b.localCommit!.spec.localMsat }, 'both at the same balances');

  const moved = before.payerMsat - ch(payer, ends).balances!.localMsat;
  assert.equal(ch(payee, ends).balances!.localMsat - before.payeeMsat, moved, 'the payee gained what the payer lost');
  const completed = !(point.at === 'send' && point.type === 'update_transfer');
  assert.equal(moved, completed ? amountMsat : 0n, completed ? 'the durably signed payment completed on both sides' : 'the unsigned payment completed on neither side');
  assert.equal(ch(payer, ends).snapshot().sentCount - before.sent, completed ? 1n : 0n, 'payer sentCount');
  assert.equal(ch(payee, ends).snapshot().receivedCount - before.received, completed ? 1n : 0n, 'payee receivedCount');
  if (!victimIsPayer) {
    // The payer lived (and had signed): its caller hears that the payment went through.
    await withTimeout(paying.then(() => undefined, () => undefined), 'the surviving payer’s pay()');
    assert.equal(receipt?.amountMsat, amountMsat, `pay() resolved (${String(payError)})`);
  }
  return where;
}

test('a node killed at every step of an update, either side, both directions, converges without a revocable state; then it closes exactly', async (t) => {
  const pair = await startRsmcPair({ net: memoryNet() });
  t.after(() => pair.stop());
  const opened = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
  const ends: Ends = { pair, id: opened.a.id };
  assert.equal(opened.a.capacitySat, CAPACITY_SAT);

  let amount = 1_000_000n;
  let crashes = 0;
  for (const payer of [pair.a, pair.b]) {
    for (const point of POINTS) {
      for (const victimIsPayer of point.payee ? [true, false] : [true]) {
        const victim = victimIsPayer ? payer : payer === pair.a ? pair.b : pair.a;
        const name = `${payer.name} pays; ${victim.name} (${victimIsPayer ? 'payer' : 'payee'}) killed ${label(point)}`;
        await t.test(name, async () => {
          amount += 7_777n; // a different amount each time, so a lost or doubled update shows
          const where = await crashOnce(ends, payer, point, victimIsPayer, amount);
          assert.equal(where, label(point));
        });
        crashes++;
      }
    }
  }
  assert.equal(crashes, 22);

  // Payments continue, both ways, several in flight.
  const a = ch(pair.a, ends);
  const b = ch(pair.b, ends);
  const receipts = await Promise.all([a.pay(3_000_001n), b.pay(2_000_002n), a.pay(1_500n), b.pay(999n)]);
  assert.deepEqual(receipts.map((r) => r.amountMsat), [3_000_001n, 2_000_002n, 1_500n, 999n]);
  await untilQuiescent(a, b);
  const finalA = a.balances!.localMsat;
  const finalB = b.balances!.localMsat;
  assert.equal(finalA + finalB, CAPACITY_SAT * 1000n);
  // Every completed update, counted once on each side: 20 crash scenarios completed (the two
  // update_transfer ones did not), plus the four above.
  assert.equal(a.updates, 24n);
  assert.equal(b.updates, 24n);
  assert.equal(a.snapshot().sentCount, b.snapshot().receivedCount);
  assert.equal(b.snapshot().sentCount, a.snapshot().receivedCount);

  const closing = a.close({ cooperative: true });
  await until(() => pair.chain.mempool().length > 0, 'the closing transaction', 10_000);
  await pair.mine(1);
  const [outA, outB] = await Promise.all([closing, b.waitForOutcome()]);
  const tx = Transaction.fromBuffer(Buffer.from((await pair.chain.getTransaction(outA.closingTxid))!.tx));
  // The fee both signed (closing_signed); BOLT 3 rounds each output down and the sub-satoshi remainder
  // goes to the miner as well.
  const feeSat = b.snapshot().shutdown!.lastReceived!.feeSat;
  assert.equal(b.snapshot().shutdown!.lastProposedFeeSat, feeSat);
  assert.equal(a.snapshot().shutdown!.lastProposedFeeSat, feeSat);
  assert.equal(outA.kind, 'cooperative-close');
  assert.equal(outB.kind, 'cooperative-close');
  assert.equal(outB.localReceivedSat, finalB / 1000n, 'the accepter gets its balance, floored to the satoshi');
  assert.equal(outA.localReceivedSat, finalA / 1000n - feeSat, 'the opener gets its balance, floored, less the closing fee');
  const remainder = CAPACITY_SAT - finalA / 1000n - finalB / 1000n;
  assert.equal(CAPACITY_SAT - tx.outs.reduce((s, o) => s + o.value, 0n), feeSat + remainder, 'on chain: capacity = outputs + fee + rounding');
  const paid = (script: Uint8Array) => tx.outs.filter((o) => equalBytes(o.script, script)).reduce((s, o) => s + o.value, 0n);
  assert.equal(tx.outs.length, 2);
  assert.equal(paid(a.snapshot().payoutScript), outA.localReceivedSat);
  assert.equal(paid(b.snapshot().payoutScript), outB.localReceivedSat);
});

// TODO(node.ts/machine.ts): the watchtower export runs after the 'revocation-received' commit, outside the
// channel's queue, and nothing durable says it is owed: a crash in between loses that revoked state's
// penalty for good (the record keeps the peer's secret but not the revoked commitment's balances).
test('every revoked state reaches the watchtower, even when the node dies right after storing the revocation', async (t) => {
  const entries: WatchtowerEntry[] = [];
  const pair = await startRsmcPair({ net: memoryNet(), nodeA: { watchtower: (entry) => void entries.push(entry) } });
  t.after(() => pair.stop());
  const { a, b } = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
  await a.pay(1_000_000n);
  await b.pay(1_000n);
  await untilQuiescent(a, b);
  pair.a.process.killAfterPersist('revocation-received');
  void b.pay(2_000n);
  await withTimeout(pair.a.process.killed, 'A’s crash');
  await pair.a.restart();
  const a2 = pair.a.channel(a.id);
  await untilQuiescent(a2, b);
  await a2.pay(5_000n);
  await untilQuiescent(a2, b);
  // B had a to_local in every one of its commitments (it funded 100k): each revoked one is punishable.
  const revoked = b.snapshot().localCommit!.number;
  await until(() => entries.length >= Number(revoked), `${revoked} watchtower entries`, 3_000).catch((error: Error) => {
    throw new Error(`${error.message}; entries for commitments ${entries.map((e) => e.commitmentNumber).join(', ')}`);
  });
  assert.deepEqual([...new Set(entries.map((e) => e.commitmentNumber))].sort(), Array.from({ length: Number(revoked) }, (_, i) => BigInt(i)));
});

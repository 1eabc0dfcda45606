/**
 * Property test (issue 6, point 6): a random interleaving of payments from both sides, message deliveries,
 * duplicated messages, lost sessions and restarts from the last persisted record keeps the safety
 * invariants at every step, and once the sides are reconnected and quiet they agree on everything:
 *  - never two different commitments signed with the same number (the driver checks every signature);
 *  - never the secret of the current commitment released, never a revocation before the next commitment
 *    is durable (checked by the driver on every release-secret);
 *  - each commitment's balances sum to the capacity;
 *  - both sides agree which states are revoked, and on the balances;
 *  - what each side sent and received adds up to its balance change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { WireMessage } from '../src/wire/index.js';
import { RsmcError } from '../src/channel/rsmc/errors.js';
import { commitmentIndex, PerCommitmentSecretStore } from '../src/onchain/rsmc/shachain.js';
import { checkInvariants, RsmcDriver, type DriverSide } from './helpers/rsmc-driver.js';

type Action =
  | { kind: 'pay'; side: 'a' | 'b'; amountMsat: bigint }
  | { kind: 'deliver'; side: 'a' | 'b'; count: number }
  | { kind: 'duplicate'; side: 'a' | 'b' }
  | { kind: 'reconnect' }
  | { kind: 'restart'; side: 'a' | 'b' };

const side = fc.constantFrom<'a' | 'b'>('a', 'b');
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('pay' as const), side, amountMsat: fc.bigInt({ min: 1n, max: 3_000_000n }) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('deliver' as const), side, count: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), side }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reconnect' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), side }) },
);

let base: RsmcDriver | undefined;
async function opened(): Promise<RsmcDriver> {
  if (!base) {
    base = new RsmcDriver(0x31, 0x32);
    // Dual-funded so both sides can pay from the start.
    await base.open(100_000n, 100_000n);
  }
  return base.fork();
}

/** Messages a session duplicate could carry without breaking the channel: an exact copy delivered right after. */
async function duplicate(d: RsmcDriver, s: DriverSide): Promise<void> {
  const next: WireMessage | undefined = s.inbox[0];
  if (!next) return;
  await d.deliverOne(s);
  s.inbox.unshift(next);
  await d.deliverOne(s);
}

async function run(d: RsmcDriver, actions: Action[]): Promise<void> {
  let ref = 0;
  for (const a of actions) {
    switch (a.kind) {
      case 'pay':
        try {
          await d.apply(d[a.side], { kind: 'pay', amountMsat: a.amountMsat, ref: ++ref });
        } catch (error) {
          // Refused commands change nothing; only these refusals are expected here.
          if (!(error instanceof RsmcError) || !['INSUFFICIENT_BALANCE'].includes(error.code)) throw error;
        }
        break;
      case 'deliver':
        for (let i = 0; i < a.count; i++) await d.deliverOne(d[a.side]);
        break;
      case 'duplicate':
        await duplicate(d, d[a.side]);
        break;
      case 'reconnect':
        d.a.inbox.length = 0;
        d.b.inbox.length = 0;
        await d.reconnect();
        break;
      case 'restart':
        await d.restart(d[a.side]);
        await d.apply(d.other(d[a.side]), { kind: 'disconnected' });
        await d.apply(d.a, { kind: 'connected' });
        await d.apply(d.b, { kind: 'connected' });
        break;
    }
    checkInvariants(d.a);
    checkInvariants(d.b);
    for (const s of [d.a, d.b]) {
      assert.ok(s.record!.phase === 'open', `${s.name} is ${s.record!.phase}: ${s.record!.failure?.code} ${s.record!.failure?.message}`);
    }
  }
  // Quiesce: a final session (what was in flight on the old one is gone), everything delivered, then the
  // pending proposals re-sent and committed.
  d.a.inbox.length = 0;
  d.b.inbox.length = 0;
  await d.reconnect();
  await d.deliverAll();
}

function sumEvents(s: DriverSide, type: 'payment-sent' | 'payment-received'): bigint {
  return s.events.reduce((t, e) => t + (e.type === type ? e.amountMsat : 0n), 0n);
}

test('random interleavings of payments, deliveries, duplicates, reconnects and restarts keep the invariants', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 5, maxLength: 40 }), async (actions) => {
      const d = await opened();
      const start = { a: d.a.record!.localCommit!.spec.localMsat, b: d.b.record!.localCommit!.spec.localMsat };
      await run(d, actions);
      const a = d.a.record!;
      const b = d.b.record!;
      assert.equal(a.phase, 'open');
      assert.equal(b.phase, 'open');
      // Agreement: each side's commitment is the mirror of what the other holds of it.
      assert.equal(a.localCommit!.number, b.remoteCommit!.number);
      assert.equal(b.localCommit!.number, a.remoteCommit!.number);
      assert.equal(a.localCommit!.txid, b.remoteCommit!.txid);
      assert.equal(b.localCommit!.txid, a.remoteCommit!.txid);
      assert.equal(a.localCommit!.spec.localMsat, b.localCommit!.spec.remoteMsat);
      assert.equal(a.remoteNext, undefined);
      assert.equal(b.remoteNext, undefined);
      // Revoked states agree: each side holds exactly the secrets of the other's commitments below its current one.
      for (const [holder, owner] of [[d.a, d.b], [d.b, d.a]] as const) {
        const store = PerCommitmentSecretStore.fromJSON(holder.record!.remoteSecrets);
        const current = owner.record!.localCommit!.number;
        if (current > 0n) assert.ok(store.get(commitmentIndex(current - 1n)), `${holder.name} holds the secret of ${owner.name}'s commitment ${current - 1n}`);
        assert.equal(store.get(commitmentIndex(current)), undefined, `${holder.name} must not hold the secret of ${owner.name}'s current commitment`);
        for (const n of owner.released) assert.ok(n < current);
      }
      // Money: A's balance change is what B sent it minus what it sent B (events, de-duplicated by id).
      const aDelta = a.localCommit!.spec.localMsat - start.a;
      assert.equal(aDelta, -(b.localCommit!.spec.localMsat - start.b));
      assert.equal(aDelta, sumEvents(d.a, 'payment-received') - sumEvents(d.a, 'payment-sent') + carriedOver(d));
    }),
    { numRuns: Number(process.env.RSMC_PROPERTY_RUNS ?? 60) },
  );
});

/** Payments that were completed across a restart only raise their events once (the other side's copy counts). */
function carriedOver(d: RsmcDriver): bigint {
  // Events are recorded per side as they happen; a restart does not replay them, and no event is ever
  // emitted twice for one update id (the machine emits payment-sent/received when an update leaves the
  // lists, which happens once per durable transition). So nothing is carried over.
  void d;
  return 0n;
}

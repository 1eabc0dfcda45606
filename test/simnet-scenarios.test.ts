/**
 * Simnet scenarios from the foundation issue, run through the same code as `npm start`
 * (examples/scenarios.ts): each step's broadcast must end exactly as expected, and the key steps are
 * checked by name with Bitcoin Core's reject reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simnet } from '../src/chain/simnet/index.js';
import {
  asExpected,
  oneWayRefund,
  oneWaySettle,
  Party,
  Recorder,
  rsmcBreach,
  rsmcCooperativeClose,
  rsmcUnilateral,
  runWalkthrough,
  type StepRecord,
} from '../examples/scenarios.js';

async function run(scenario: (r: Recorder, a: Party, b: Party) => Promise<void>): Promise<StepRecord[]> {
  const r = new Recorder(new Simnet());
  await scenario(r, await Party.create('alice', 11), await Party.create('bob', 12));
  for (const step of r.steps) {
    assert.ok(asExpected(step), `${step.step}: expected ${step.expect}, got ${JSON.stringify(step.result)}`);
  }
  return r.steps;
}

function outcome(steps: StepRecord[], startsWith: string): string {
  const step = steps.find((s) => s.result && s.step.startsWith(startsWith));
  assert.ok(step?.result, `no step "${startsWith}"`);
  return step.result.accepted ? 'accepted' : step.result.reason;
}

test('one-way: refund before expiry is non-final; after the expiry height it confirms', async () => {
  const steps = await run(oneWayRefund);
  assert.equal(outcome(steps, 'funding tx'), 'accepted');
  assert.equal(outcome(steps, 'refund one block early'), 'non-final');
  assert.match(outcome(steps, 'refund with the payee signature missing'), /^mandatory-script-verify-flag-failed \(/);
  assert.equal(outcome(steps, 'refund once final'), 'accepted');
});

test('one-way: settle with the latest payment; older payment and the refund are double spends', async () => {
  const steps = await run(oneWaySettle);
  assert.equal(outcome(steps, 'refund before its nLockTime'), 'non-final');
  assert.equal(outcome(steps, 'payee settles with the latest payment'), 'accepted');
  assert.equal(outcome(steps, 'an older payment (2)'), 'txn-mempool-conflict');
  assert.equal(outcome(steps, 'refund after settlement'), 'bad-txns-inputs-missingorspent');
});

test('RSMC: to_local sweep is non-BIP68-final before to_self_delay, accepted after; HTLC txs wait for their locks', async () => {
  const steps = await run(rsmcUnilateral);
  assert.equal(outcome(steps, 'Alice broadcasts her current commitment'), 'accepted');
  assert.equal(outcome(steps, 'to_local sweep one block before to_self_delay'), 'non-BIP68-final');
  assert.equal(outcome(steps, 'to_local sweep in the block 12 after'), 'accepted');
  assert.equal(outcome(steps, 'HTLC-timeout before cltv_expiry'), 'non-final');
  assert.equal(outcome(steps, 'HTLC-timeout once the next block is above cltv_expiry'), 'accepted');
  assert.equal(
    outcome(steps, 'HTLC-success with a wrong preimage'),
    'mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)',
  );
  assert.equal(outcome(steps, 'HTLC-success with the preimage'), 'accepted');
});

test('RSMC: a revoked commitment is punished at once; a wrong revocation key is refused', async () => {
  const steps = await run(rsmcBreach);
  assert.equal(outcome(steps, 'Alice broadcasts revoked state 0'), 'accepted');
  assert.equal(outcome(steps, 'Alice sweeps to_local before to_self_delay'), 'non-BIP68-final');
  assert.equal(
    outcome(steps, 'penalty signed with the wrong revocation key'),
    'mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)',
  );
  // Immediately: the penalty goes in one block after the revoked commitment confirmed.
  assert.equal(outcome(steps, "Bob's penalty takes"), 'accepted');
  assert.equal(outcome(steps, 'Alice retries her sweep'), 'bad-txns-inputs-missingorspent');
});

test('RSMC: cooperative close confirms without delay', async () => {
  const steps = await run(rsmcCooperativeClose);
  assert.equal(outcome(steps, 'dual-funded funding tx'), 'accepted');
  assert.equal(outcome(steps, 'closing tx'), 'accepted');
});

test('the npm start walk-through: every broadcast ends as expected', async () => {
  const steps = await runWalkthrough();
  const broadcasts = steps.filter((s) => s.result);
  assert.ok(broadcasts.length >= 20);
  assert.deepEqual(broadcasts.filter((s) => !asExpected(s)), []);
  assert.ok(broadcasts.some((s) => s.result && !s.result.accepted), 'shows rejections too');
});

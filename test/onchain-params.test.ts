/** Parameter checks of the builders that the interpreter cannot see: witness programs, dust, HTLC ids. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hexToBytes } from '../src/bytes.js';
import { dustThresholdSat, witnessVersion } from '../src/onchain/script.js';
import { buildCommitmentTransaction } from '../src/onchain/rsmc/commitment.js';
import { TxBuildError } from '../src/errors.js';
import { makeRsmcScenario } from './helpers/parties.js';

test('witnessVersion recognises BIP 141 programs and nothing else', () => {
  assert.equal(witnessVersion(hexToBytes('0014' + '11'.repeat(20))), 0);
  assert.equal(witnessVersion(hexToBytes('0020' + '11'.repeat(32))), 0);
  assert.equal(witnessVersion(hexToBytes('5120' + '11'.repeat(32))), 1);
  assert.equal(witnessVersion(hexToBytes('6002' + 'beef')), 16);
  assert.equal(witnessVersion(hexToBytes('76a914' + '11'.repeat(20) + '88ac')), -1); // P2PKH
  assert.equal(witnessVersion(hexToBytes('0015' + '11'.repeat(20))), -1); // push length disagrees
  assert.equal(witnessVersion(hexToBytes('4f02beef')), -1); // OP_1NEGATE is not a version
});

test("dust thresholds match Bitcoin Core's at 3 sat/vB (BOLT 3 §7)", () => {
  assert.equal(dustThresholdSat(hexToBytes('0014' + '11'.repeat(20))), 294n);
  assert.equal(dustThresholdSat(hexToBytes('0020' + '11'.repeat(32))), 330n);
  assert.equal(dustThresholdSat(hexToBytes('76a914' + '11'.repeat(20) + '88ac')), 546n);
  assert.equal(dustThresholdSat(hexToBytes('a914' + '11'.repeat(20) + '87')), 540n);
  assert.equal(dustThresholdSat(hexToBytes('6a00')), 0n);
});

test('commitment builder rejects a negative or duplicate HTLC id', async () => {
  const s = await makeRsmcScenario();
  const [first] = s.params.htlcs;
  assert.ok(first);
  const negative = { ...s.params, htlcs: s.params.htlcs.map((h, i) => (i === 0 ? { ...h, id: -1n } : h)) };
  assert.throws(() => buildCommitmentTransaction(negative), (e: unknown) => e instanceof TxBuildError && e.field === 'htlcs[0].id');
  const duplicate = {
    ...s.params,
    htlcs: [...s.params.htlcs, { ...first, amountMsat: 0n }],
  };
  assert.throws(() => buildCommitmentTransaction(duplicate), (e: unknown) => e instanceof TxBuildError && /duplicate/.test(e.message));
});

/**
 * `npm start -- --scenario rsmc|breach`: two `trickle peer` processes on the demo's broker and simnet,
 * driven by `trickle rsmc` commands. The summary is checked against the chain itself (the test hands the
 * demo its Simnet): a dual-funded channel, payments both ways and a cooperative close whose outputs are
 * the two final balances; a breach whose revoked commitment is spent by the honest side's penalty, so
 * the cheater ends with nothing and the honest side with the capacity less the fees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Transaction } from 'bitcoinjs-lib';
import { Simnet } from '../src/chain/simnet/simnet.js';
import { hashToTxid } from '../src/onchain/tx.js';
import { runDemo } from '../examples/demo.js';

const root = fileURLToPath(new URL('..', import.meta.url));

async function txOf(simnet: Simnet, txid: string): Promise<Transaction> {
  const status = await simnet.getTransaction(txid);
  assert.ok(status?.blockHeight !== undefined, `${txid} confirmed`);
  return Transaction.fromBuffer(Buffer.from(status.tx));
}

async function feeOf(simnet: Simnet, tx: Transaction): Promise<bigint> {
  let inSat = 0n;
  for (const input of tx.ins) inSat += (await txOf(simnet, hashToTxid(input.hash))).outs[input.index]!.value;
  return inSat - tx.outs.reduce((sum, o) => sum + o.value, 0n);
}

test('npm start -- --scenario rsmc: dual-funded, payments both ways, a cooperative close paying both balances', async () => {
  const simnet = new Simnet();
  const s = await runDemo({ scenario: 'rsmc', quiet: true, chain: { kind: 'simnet', simnet } });
  assert.equal(s.scenario, 'rsmc');
  assert.equal(s.chain, 'simnet');
  assert.equal(s.outcome, 'cooperative-close');
  assert.deepEqual(s.fundingSat, { a: '200000', b: '100000' }, 'both sides funded the channel');
  assert.equal(s.capacitySat, '300000');
  assert.ok(s.updatesSent!.a > 0 && s.updatesSent!.b > 0, 'updates committed in both directions');
  assert.equal(s.updates, s.updatesSent!.a + s.updatesSent!.b);
  assert.equal(s.updates, s.payments);
  assert.equal(s.paidMsat, String(10n * 2_000_000n + 5n * 1_500_000n));
  assert.equal(s.payeeReceivedSat, null);
  assert.equal(s.units, null);
  assert.ok(s.wireBytesPerPayment > 0);

  // Two transactions: the funding (both sides' inputs) and the closing transaction.
  assert.equal(s.onchainTxs, 2);
  const [fundingTxid, closingTxid] = s.txids as [string, string];
  const funding = await txOf(simnet, fundingTxid);
  assert.ok(funding.ins.length >= 2, 'dual-funded: inputs of both wallets');
  const closing = await txOf(simnet, closingTxid);
  const closingFee = await feeOf(simnet, closing);
  const a = BigInt(s.finalBalancesSat!.a);
  const b = BigInt(s.finalBalancesSat!.b);
  assert.equal(a + b + closingFee, 300_000n, 'the final balances are the capacity less the closing fee');
  assert.deepEqual(closing.outs.map((o) => o.value).sort(), [a, b].sort(), 'the closing transaction pays exactly those balances');
  // B accepted, so A (the opener) pays the fee: B gets 100,000 + 10 × 2,000 − 5 × 1,500 exactly.
  assert.equal(b, 112_500n);
  assert.equal(BigInt(s.feesSat), (await feeOf(simnet, funding)) + closingFee);
  assert.equal(s.cheaterReceivedSat, undefined);
});

test('npm start -- --scenario breach: the revoked commitment is punished; the cheater gets nothing', async () => {
  const simnet = new Simnet();
  const s = await runDemo({ scenario: 'breach', quiet: true, chain: { kind: 'simnet', simnet } });
  assert.equal(s.outcome, 'penalty');
  assert.equal(s.cheaterReceivedSat, '0');
  assert.equal(s.finalBalancesSat!.b, '0');
  assert.ok(s.updatesSent!.a > 0 && s.updatesSent!.b > 0);

  // Funding, B's revoked commitment, and what A spent its outputs with (the penalty, the to_remote sweep).
  const [fundingTxid, commitmentTxid, ...resolutions] = s.txids as [string, string, ...string[]];
  assert.equal(s.onchainTxs, 4);
  const commitment = await txOf(simnet, commitmentTxid);
  assert.equal(hashToTxid(commitment.ins[0]!.hash), fundingTxid, 'the commitment spends the funding output');
  let spent = 0;
  let fees = await feeOf(simnet, commitment);
  let received = 0n;
  for (const txid of resolutions) {
    const tx = await txOf(simnet, txid);
    assert.ok(tx.ins.every((i) => hashToTxid(i.hash) === commitmentTxid), 'each resolution spends the commitment');
    spent += tx.ins.length;
    fees += await feeOf(simnet, tx);
    received += tx.outs.reduce((sum, o) => sum + o.value, 0n);
  }
  assert.equal(spent, commitment.outs.length, 'every output of the revoked commitment went to A');
  const a = BigInt(s.finalBalancesSat!.a);
  assert.equal(a, received);
  assert.equal(a + fees, 300_000n, 'A holds the whole capacity less the fees');
  assert.ok(a > 290_000n, `A received ${a}`);
});

test('trickle rsmc: one-line errors without a running peer, and --breach needs two payments', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trickle-rsmc-cli-'));
  try {
    const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: root, encoding: 'utf8' });
    const noPeer = run(['rsmc', 'close', '--data-dir', dir]);
    assert.equal(noPeer.status, 1);
    assert.match(noPeer.stderr, /^trickle rsmc: NO_PEER: no trickle peer runs on .*\n$/);
    const breach = run(['rsmc', 'pay', '--data-dir', dir, '--amount-msat', '1000', '--breach']);
    assert.equal(breach.status, 2);
    assert.match(breach.stderr, /--breach needs --payments 2 or more/);
    const misplaced = run(['rsmc', 'close', '--data-dir', dir, '--breach']);
    assert.equal(misplaced.status, 2);
    assert.match(misplaced.stderr, /--breach goes with trickle rsmc pay/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the demo and trickle help list the revocable scenarios and commands', () => {
  const demo = spawnSync(process.execPath, ['--import', 'tsx', 'examples/demo.ts', '--help'], { cwd: root, encoding: 'utf8' });
  assert.equal(demo.status, 0);
  assert.match(demo.stdout, /--scenario oneway\|refund\|rsmc\|breach/);
  const cli = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--help'], { cwd: root, encoding: 'utf8' });
  for (const text of ['trickle peer', 'trickle rsmc open', 'trickle rsmc pay', 'trickle rsmc close', '--max-contribution-sat', '--to-self-delay', '--breach (DEMO ONLY']) {
    assert.ok(cli.stdout.includes(text), text);
  }
});

test('npm start -- --scenario rsmc --signer emulator: A signs on the Trickle key’s emulator; the same balances', async () => {
  const simnet = new Simnet();
  const s = await runDemo({ scenario: 'rsmc', quiet: true, signer: 'emulator', chain: { kind: 'simnet', simnet } });
  assert.equal(s.signer, 'emulator');
  assert.match(s.keySerial!, /^[0-9A-F]{16}$/);
  assert.equal(s.keyRefusals, 0);
  assert.equal(s.outcome, 'cooperative-close');
  assert.equal(s.updates, 15);
  assert.equal(s.finalBalancesSat!.b, '112500');
});

test('npm start -- --scenario breach --signer emulator: the penalty is signed on the key', async () => {
  const simnet = new Simnet();
  const s = await runDemo({ scenario: 'breach', quiet: true, signer: 'emulator', chain: { kind: 'simnet', simnet } });
  assert.equal(s.outcome, 'penalty');
  assert.equal(s.cheaterReceivedSat, '0');
  assert.equal(s.keyRefusals, 0);
});

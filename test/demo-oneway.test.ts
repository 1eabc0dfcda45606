/**
 * `npm start` as a user runs it: examples/demo.ts spawns provider and device processes over loopback MQTT
 * and a served simnet. Its --json summary must report the channel's two confirmed transactions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function demo(args: string[]): Record<string, unknown> {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'examples/demo.ts', '--json', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  const last = result.stdout.trim().split('\n').pop()!;
  return JSON.parse(last) as Record<string, unknown>;
}

test('npm start -- --json: settled with 2 on-chain transactions', () => {
  const s = demo(['--gb', '10']);
  assert.equal(s['scenario'], 'oneway');
  assert.equal(s['chain'], 'simnet');
  assert.equal(s['outcome'], 'settled');
  assert.equal(s['onchainTxs'], 2);
  assert.equal((s['txids'] as string[]).length, 2);
  assert.equal(s['paidMsat'], '10000000', '10 GB at 1000 sat per GB');
  assert.equal(s['payeeReceivedSat'], '10000');
  assert.ok(Number(s['payments']) >= 9);
  assert.ok(BigInt(String(s['feesSat'])) > 0n);
  assert.ok(Number(s['wireBytesPerPayment']) > 0);
  assert.ok(BigInt(String(s['providerServedUnits'])) <= BigInt(String(s['providerPaidUnits'])), 'the provider never served unpaid units');
  for (const key of ['durationMs', 'txids', 'payments']) assert.ok(key in s);
});

test('npm start -- --scenario refund: the provider vanishes, the device is refunded after expiry', () => {
  const s = demo(['--scenario', 'refund', '--gb', '40']);
  assert.equal(s['outcome'], 'refunded');
  assert.equal(s['onchainTxs'], 2);
  assert.equal(s['payeeReceivedSat'], '0');
});

test('npm start -- --signer emulator: the device’s channel keys on the Trickle key’s emulator, settled', () => {
  const s = demo(['--gb', '10', '--signer', 'emulator']);
  assert.equal(s['signer'], 'emulator');
  assert.match(String(s['keySerial']), /^[0-9A-F]{16}$/);
  assert.equal(s['keyRefusals'], 0);
  assert.equal(s['outcome'], 'settled');
  assert.equal(s['payeeReceivedSat'], '10000');
});

test('npm start -- --scenario refund --signer emulator: the refund is signed on the key', () => {
  const s = demo(['--scenario', 'refund', '--gb', '40', '--signer', 'emulator']);
  assert.equal(s['outcome'], 'refunded');
  assert.equal(s['keyRefusals'], 0);
});

test('npm start -- --help lists the scenarios', () => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'examples/demo.ts', '--help'], { cwd: root, encoding: 'utf8' });
  assert.equal(result.status, 0);
  assert.match(result.stdout, /--scenario oneway\|refund/);
  assert.match(result.stdout, /--json/);
  assert.match(result.stdout, /--signer software\|emulator/);
});

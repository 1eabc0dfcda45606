/**
 * Crash tests (issue 4): provider and device are separate `trickle` processes on loopback MQTT and a
 * served simnet, with LMDB stores on disk. A process is killed with SIGKILL at an exact point (the
 * TRICKLE_CRASH_AT hook) and restarted from its data directory. After the restart no acknowledged payment
 * is lost, none is counted twice, the channel continues and settles on chain for exactly what was bought.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Simnet } from '../src/chain/simnet/index.js';
import { serveSimnet } from '../src/chain/simnet/server.js';
import { hexToBytes } from '../src/bytes.js';
import { startEmbeddedBroker } from '../src/transport/mqtt/broker.js';
import { runCli, stopCli, type CliProcess } from './helpers/cli-process.js';

const TARIFF_MSAT = 100_000n; // 100 sat per unit, so the settlement output is far above dust
const UNITS = 12n;

interface Rig {
  brokerUrl: string;
  chainUrl: string;
  simnet: Simnet;
  dir: string;
  providerArgs: string[];
  payArgs: (providerId: string) => string[];
  close(): Promise<void>;
}

async function rig(): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'trickle-crash-'));
  const broker = await startEmbeddedBroker();
  const simnet = new Simnet();
  const chain = await serveSimnet(simnet, { autoMine: { intervalMs: 50 } });
  const common = ['--broker', broker.url, '--chain', chain.url];
  return {
    brokerUrl: broker.url,
    chainUrl: chain.url,
    simnet,
    dir,
    providerArgs: ['provider', '--data-dir', join(dir, 'provider'), '--unit', 'reading', '--tariff-msat', TARIFF_MSAT.toString(), '--window', '4', ...common],
    payArgs: (providerId) => ['pay', '--data-dir', join(dir, 'device'), '--provider', providerId, '--units', UNITS.toString(),
      '--step', '1', '--rate', '20', '--expiry-blocks', '144', ...common],
    async close() {
      await chain.close();
      await broker.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function fundDevice(r: Rig): Promise<void> {
  const init = runCli(['init', '--data-dir', join(r.dir, 'device')]);
  const info = await init.waitFor((e) => e['event'] === 'init', 'init');
  await init.exited;
  await r.simnet.faucet(hexToBytes(String(info['walletScript'])), 1_000_000n);
  await r.simnet.mine(1);
}

async function providerStatus(r: Rig): Promise<Record<string, unknown>> {
  const status = runCli(['status', '--data-dir', join(r.dir, 'provider')]);
  const event = await status.waitFor((e) => e['event'] === 'status', 'status');
  await status.exited;
  const channels = event['channels'] as Array<Record<string, unknown>>;
  assert.equal(channels.length, 1);
  return channels[0]!;
}

/**
 * Payment numbers the provider reported storing, across all its runs: strictly increasing, so none was
 * taken twice. (A payment stored just before a SIGKILL is never reported by the run that died: the
 * report comes after the commit the crash follows.)
 */
function assertNoPaymentTwice(runs: CliProcess[]): void {
  const numbers = runs.flatMap((p) => p.events.filter((e) => e['event'] === 'payment').map((e) => Number(e['number'])));
  for (let i = 1; i < numbers.length; i++) assert.ok(numbers[i]! > numbers[i - 1]!, `provider stored payments ${numbers.join(',')}`);
}

function assertSettledInFull(summary: Record<string, unknown>): void {
  const outcome = summary['outcome'] as Record<string, string>;
  assert.equal(summary['paidMsat'], (UNITS * TARIFF_MSAT).toString(), 'the device paid exactly what it bought');
  assert.equal(outcome['kind'], 'settled');
  assert.equal(outcome['payeeValueSat'], ((UNITS * TARIFF_MSAT) / 1000n).toString(), 'the provider got exactly that on chain');
}

async function payeeCrash(crashAt: string): Promise<void> {
  const r = await rig();
  const runs: CliProcess[] = [];
  let device: CliProcess | undefined;
  try {
    await fundDevice(r);
    const first = runCli(r.providerArgs, { TRICKLE_CRASH_AT: crashAt });
    runs.push(first);
    const ready = await first.waitFor((e) => e['event'] === 'ready', 'provider ready');
    const providerId = String(ready['nodeId']);
    device = runCli(r.payArgs(providerId));
    const killed = await first.exited;
    assert.equal(killed.signal, 'SIGKILL', `the provider died at ${crashAt}`);
    const stored = runs[0]!.events.filter((e) => e['event'] === 'payment').length;
    assert.ok(stored >= 4, 'the crash came after several payments');

    const second = runCli(r.providerArgs);
    runs.push(second);
    await second.waitFor((e) => e['event'] === 'ready', 'provider back');
    const summary = await device.waitFor((e) => e['event'] === 'summary', 'device summary', 120_000);
    assert.equal((await device.exited).code, 0);
    assertSettledInFull(summary);
    assertNoPaymentTwice(runs);
    const status = await providerStatus(r);
    assert.equal(status['paidMsat'], (UNITS * TARIFF_MSAT).toString());
    assert.equal(status['payments'], summary['payments'], 'both sides count the same payments');
    assert.equal(status['phase'], 'closed');
  } finally {
    if (device) await stopCli(device);
    for (const p of runs) await stopCli(p);
    await r.close();
  }
}

async function payerCrash(crashAt: string): Promise<void> {
  const r = await rig();
  const provider = runCli(r.providerArgs);
  const devices: CliProcess[] = [];
  try {
    await fundDevice(r);
    const ready = await provider.waitFor((e) => e['event'] === 'ready', 'provider ready');
    const providerId = String(ready['nodeId']);
    const first = runCli(r.payArgs(providerId), { TRICKLE_CRASH_AT: crashAt });
    devices.push(first);
    assert.equal((await first.exited).signal, 'SIGKILL', `the device died at ${crashAt}`);

    const second = runCli(r.payArgs(providerId));
    devices.push(second);
    await second.waitFor((e) => e['event'] === 'resume', 'device resumes its channel');
    const summary = await second.waitFor((e) => e['event'] === 'summary', 'device summary', 120_000);
    assert.equal((await second.exited).code, 0);
    assertSettledInFull(summary);
    assertNoPaymentTwice([provider]);
    const status = await providerStatus(r);
    assert.equal(status['paidMsat'], (UNITS * TARIFF_MSAT).toString());
    assert.equal(status['payments'], summary['payments']);
  } finally {
    for (const d of devices) await stopCli(d);
    await stopCli(provider);
    await r.close();
  }
}

test('payee killed after storing payment 5, before acknowledging it: restart, nothing lost or doubled', () =>
  payeeCrash('payment-accepted:5'));

test('payee killed right after acknowledging payment 5: restart, nothing lost or doubled', () =>
  payeeCrash('sent:oneway_pay_ack:5'));

test('payer killed after storing payment 5, before sending it: restart resends that very payment', () =>
  payerCrash('payment-signed:5'));

test('payer killed after sending payment 5, before the ack: restart, nothing lost or doubled', () =>
  payerCrash('sent:oneway_pay:5'));

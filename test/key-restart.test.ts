/**
 * The key's state survives a SIGKILL of the emulator between any two commands. One HidSigner drives a
 * one-way channel and an RSMC channel through every kind of command; before each command the emulator
 * process is killed and started again on the same state directory. The signer notices, reconnects to
 * the same serial and goes on; at the end the key still refuses what its stored state forbids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { HidSigner, KeyRefusedError, type HidSignerStatus } from '../src/signer/hid/signer.js';
import { SocketHidConnector } from '../src/signer/hid/transport.js';
import { hostSigner } from './helpers/key-fixtures.js';
import { KEY_INDEX, onewayChannelOn, rsmcChannelOn, spec } from './helpers/key-channels.js';

const EMULATOR = join(import.meta.dirname, '..', 'firmware-bridge', 'emulator.ts');

interface Emulator {
  proc: ChildProcess;
  serial: string;
}

async function startEmulatorProcess(socket: string, state: string): Promise<Emulator> {
  const proc = spawn(process.execPath, ['--import', 'tsx', EMULATOR, '--socket', socket, '--state', state], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr!.resume();
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    lines.once('line', (line) => resolve(JSON.parse(line) as Record<string, unknown>));
    proc.once('exit', (code) => reject(new Error(`the emulator exited (${code}) before it was ready`)));
  });
  return { proc, serial: String(ready['serial']) };
}

function kill(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill('SIGKILL');
  });
}

test('the key’s state survives a SIGKILL of the emulator between any two commands', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'trickle-key-restart-'));
  const socket = join(dir, 'key.sock');
  const state = join(dir, 'state');
  let emulator = await startEmulatorProcess(socket, state);
  const serial = emulator.serial;
  t.after(async () => {
    await kill(emulator.proc);
    await rm(dir, { recursive: true, force: true });
  });
  const statuses: HidSignerStatus[] = [];
  const hid = await HidSigner.connect({ connector: new SocketHidConnector({ path: socket }), hostSigner, reconnectIntervalMs: 50, onStatus: (s) => statuses.push(s) });
  t.after(() => hid.close());
  const oneway = await onewayChannelOn(hid);
  const rsmc = await rsmcChannelOn(hid);

  // Every kind of command, in the order channels issue them.
  const steps: Array<[string, () => Promise<unknown>]> = [
    ['set policy', () => hid.setPolicy({ maxPaymentMsat: 50_000_000n, maxPeriodMsat: 500_000_000n, periodSeconds: 86_400, expirySafetyBlocks: 6 })],
    ['one-way setup', () => oneway.setup()],
    ['payment 1', () => oneway.pay(1n, 10_000_000n)],
    ['payment 2', () => oneway.pay(2n, 20_000_000n)],
    ['RSMC setup', () => rsmc.setup()],
    ['their commitment 0', () => rsmc.signTheirs(0n, spec(600_000n))],
    ['our commitment 0', () => rsmc.validateOurs(0n, spec(600_000n))],
    ['their commitment 1', () => rsmc.signTheirs(1n, spec(590_000n))],
    ['their revocation of 0', () => rsmc.peerRevokes(0n)],
    ['our commitment 1', () => rsmc.validateOurs(1n, spec(590_000n))],
    ['revoke our 0', () => rsmc.revoke(0n)],
    ['their commitment 2', () => rsmc.signTheirs(2n, spec(580_000n))],
    ['their revocation of 1', () => rsmc.peerRevokes(1n)],
    ['our commitment 2', () => rsmc.validateOurs(2n, spec(580_000n))],
    ['revoke our 1', () => rsmc.revoke(1n)],
    ['payment 3', () => oneway.pay(3n, 30_000_000n)],
  ];
  let restarts = 0;
  for (const [i, [, step]] of steps.entries()) {
    if (i > 0) {
      await kill(emulator.proc);
      emulator = await startEmulatorProcess(socket, state);
      assert.equal(emulator.serial, serial, 'the same key after a restart');
      restarts++;
    }
    await step();
  }
  t.diagnostic(`${steps.length} commands, ${restarts} SIGKILLs and restarts`);
  assert.equal(statuses.filter((s) => s.kind === 'disconnected').length, restarts);

  // What the key stored, across all those restarts.
  await kill(emulator.proc);
  emulator = await startEmulatorProcess(socket, state);
  const info = await hid.info();
  assert.equal(info.serial, serial);
  assert.equal(info.policy.maxPaymentMsat, 50_000_000n);
  assert.equal(info.channels, 2);
  assert.deepEqual(await hid.channelState(0), { kind: 'oneway', stateNumber: 3n, amountMsat: 30_000_000n });
  assert.deepEqual(await hid.channelState(KEY_INDEX), { kind: 'rsmc', holderNumber: 2n, holderRevoked: 1n, counterpartyNumber: 2n, counterpartyRevoked: 1n });
  const refused = (reason: string) => (e: unknown) => e instanceof KeyRefusedError && e.reason === reason;
  await assert.rejects(oneway.pay(3n, 35_000_000n), refused('policy-oneway-state-not-increasing'));
  await assert.rejects(rsmc.signTheirs(1n, spec(500_000n)), refused('policy-rsmc-commitment-revoked'));
  await assert.rejects(rsmc.revoke(2n), refused('policy-rsmc-revoke-current'));
  await assert.rejects(oneway.pay(4n, 90_000_000n), refused('policy-limit-per-payment'));
});

/**
 * Channel sessions with the paying side's keys on the Trickle key. The emulator (firmware-bridge/
 * emulator.ts, over its Unix socket and the real HID framing) signs for the one-way payer and for the
 * RSMC opener through whole sessions; then the key is pulled out in the middle of a signature and the
 * channel waits for it, reconnects and carries on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Simnet } from '../src/chain/simnet/index.js';
import { InMemoryBroker } from '../src/transport/memory.js';
import { HidSigner, type HidSignerStatus } from '../src/signer/hid/signer.js';
import { SocketHidConnector, type HidConnector } from '../src/signer/hid/transport.js';
import { KeyCommand } from '../src/signer/hid/commands.js';
import { startEmulator, type RunningEmulator } from '../firmware-bridge/emulator.js';
import { until } from './helpers/session-nodes.js';
import { OFFER, memoryTransport, openOnewayChannel, seeded, startParty, stopParty } from './helpers/oneway-parties.js';
import { memoryNet, openChannel, startRsmcPair, untilQuiescent } from './helpers/rsmc-parties.js';
import { MemoryKey } from './helpers/key-fixtures.js';
import { fundingScriptOf, paymentTransaction } from '../src/channel/oneway/terms.js';

async function emulated(t: { after(fn: () => Promise<void>): void }): Promise<{ connector: SocketHidConnector; emulator: RunningEmulator; refusals: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'trickle-key-'));
  const refusals: string[] = [];
  const emulator = await startEmulator({ socketPath: join(dir, 'key.sock'), stateDir: join(dir, 'state'), confirm: 'auto', log: (line) => / refused: /.test(line) && refusals.push(line) });
  t.after(async () => {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { connector: new SocketHidConnector({ path: join(dir, 'key.sock') }), emulator, refusals };
}

/** A HidSigner whose host keys (wallet, identity) are the party's software signer of `seed`. */
function keySigner(connector: HidConnector, seed: number, statuses: HidSignerStatus[] = []): Promise<HidSigner> {
  return HidSigner.connect({ connector, hostSigner: seeded(seed).signer, reconnectIntervalMs: 20, onStatus: (s) => statuses.push(s) });
}

async function onewaySession(signer: HidSigner) {
  const chain = new Simnet();
  const broker = new InMemoryBroker();
  const provider = await startParty({ seed: 1, chain, transport: memoryTransport(broker), offers: [OFFER] });
  const device = await startParty({ seed: 2, chain, transport: memoryTransport(broker), node: { signer } });
  const channel = await openOnewayChannel(chain, provider, device);
  return { chain, broker, provider, device, channel };
}

test('one-way: the payer’s keys on the emulated key through a whole session; the payee settles', async (t) => {
  const { connector, refusals } = await emulated(t);
  const signer = await keySigner(connector, 2);
  const { chain, provider, device, channel } = await onewaySession(signer);
  for (let i = 0; i < 20; i++) await channel.pay(1_000_000n);
  assert.deepEqual(await signer.channelState(channel.snapshot().fundingKeyIndex), { kind: 'oneway', stateNumber: 20n, amountMsat: 20_000_000n });
  const closing = channel.close();
  await until(() => chain.mempool().length > 0, 'settlement broadcast');
  await chain.mine(1);
  const outcome = await closing;
  assert.equal(outcome?.kind, 'settled');
  assert.equal(outcome?.kind === 'settled' && outcome.payeeValueSat, 20_000n);
  assert.deepEqual(refusals, []);
  await stopParty(device);
  await stopParty(provider);
  await signer.close();
});

test('RSMC: the opener’s keys on the emulated key; payments both ways, a cooperative close with exact balances', async (t) => {
  const { connector, refusals } = await emulated(t);
  const signer = await keySigner(connector, 0xa1);
  const pair = await startRsmcPair({ net: memoryNet(), nodeA: { signer } });
  const { a, b } = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
  for (let i = 0; i < 10; i++) await a.pay(2_000_000n);
  for (let i = 0; i < 5; i++) await b.pay(1_500_000n);
  await untilQuiescent(a, b);
  assert.deepEqual(a.balances, { localMsat: 187_500_000n, remoteMsat: 112_500_000n });
  const state = await signer.channelState(a.snapshot().keyIndex);
  assert.equal(state.holderNumber, a.snapshot().localCommit!.number);
  assert.equal(state.holderRevoked, state.holderNumber! - 1n);
  const closing = a.close({ cooperative: true });
  await until(() => pair.chain.mempool().length > 0, 'closing broadcast');
  await pair.mine(1);
  const outcome = await closing;
  assert.equal(outcome.kind, 'cooperative-close');
  assert.equal(outcome.localBalanceMsat, 187_500_000n);
  // The opener pays the closing fee out of its 187,500 sat; B gets its 112,500 exactly.
  assert.ok(outcome.localReceivedSat < 187_500n && outcome.localReceivedSat > 185_000n);
  const closingTx = (await pair.chain.getTransaction(outcome.closingTxid))!.tx;
  assert.ok(closingTx.length > 0);
  await until(() => pair.b.node.channel(a.id)?.phase === 'closed', 'B closed');
  assert.deepEqual(refusals, []);
  await pair.stop();
  await signer.close();
});

test('RSMC: the key pulled out in the middle of a signature; the channel waits, reconnects and carries on', async () => {
  const key = await MemoryKey.create();
  const statuses: HidSignerStatus[] = [];
  const signer = await keySigner(key, 0xa1, statuses);
  const pair = await startRsmcPair({ net: memoryNet(), nodeA: { signer } });
  const { a, b } = await openChannel(pair, { localSat: 200_000n });
  await a.pay(1_000_000n);
  // The next commitment signature is made and stored on the key, but the cable goes before the answer.
  let pulled = false;
  key.afterCommand = (command) => {
    if (pulled || command !== KeyCommand.SIGN_COUNTERPARTY_COMMITMENT) return;
    pulled = true;
    key.plugged = false;
    key.unplug();
    setTimeout(() => (key.plugged = true), 300);
  };
  const paying = a.pay(2_000_000n);
  await until(() => statuses.some((s) => s.kind === 'disconnected'), 'the disconnect reported');
  assert.equal(key.plugged, false);
  await paying;
  await untilQuiescent(a, b);
  assert.deepEqual(a.balances, { localMsat: 197_000_000n, remoteMsat: 3_000_000n });
  assert.deepEqual(statuses.map((s) => s.kind).filter((k) => k !== 'waiting-for-user'), ['connected', 'disconnected', 'connected'], 'connected, away, back once');
  await a.pay(500_000n);
  await untilQuiescent(a, b);
  assert.equal(b.balances!.localMsat, 3_500_000n);
  await pair.stop();
  await signer.close();
});

test('one-way: the key pulled out in the middle of a payment signature; the payment goes through once it is back', async () => {
  const key = await MemoryKey.create();
  const statuses: HidSignerStatus[] = [];
  const signer = await keySigner(key, 2, statuses);
  const { provider, device, channel } = await onewaySession(signer);
  await channel.pay(1_000_000n);
  let pulled = false;
  key.afterCommand = (command) => {
    if (pulled || command !== KeyCommand.SIGN_ONEWAY_PAYMENT) return;
    pulled = true;
    key.plugged = false;
    key.unplug();
    setTimeout(() => (key.plugged = true), 300);
  };
  await channel.pay(1_000_000n);
  assert.ok(statuses.some((s) => s.kind === 'disconnected'));
  await channel.pay(1_000_000n);
  assert.equal(channel.snapshot().payment.amountMsat, 3_000_000n);
  await until(() => provider.node.channel(channel.id)?.snapshot().payment.amountMsat === 3_000_000n, 'the payee has all three');
  await stopParty(device);
  await stopParty(provider);
  await signer.close();
});

test('one-way: a payer that stopped after the key signed a payment but before storing it sends that payment on restart', async () => {
  const key = await MemoryKey.create();
  const signer = await keySigner(key, 2);
  const { chain, broker, provider, device, channel } = await onewaySession(signer);
  await channel.pay(1_000_000n);
  const record = channel.snapshot();
  // What a crash between the key's commit and ours leaves: the key has signed payment 2, our record has 1.
  await signer.signInput({
    key: { family: 'funding', index: record.fundingKeyIndex },
    context: { kind: 'oneway-payment', stateNumber: 2n, amountMsat: 2_500_000n, tipHeight: await chain.tipHeight() },
    tx: paymentTransaction(record, 2_500_000n).toBuffer(),
    inputIndex: 0,
    scriptCode: fundingScriptOf(record),
    valueSat: record.capacitySat,
  });
  await stopParty(device);
  const restarted = await startParty({ seed: 2, chain, transport: memoryTransport(broker), store: device.store, node: { signer } });
  const again = restarted.node.channel(channel.id)!;
  await until(() => again.snapshot().payment.amountMsat === 2_500_000n, 'the signed payment adopted');
  await until(() => provider.node.channel(channel.id)?.snapshot().payment.amountMsat === 2_500_000n, 'and sent to the payee');
  await again.pay(500_000n);
  assert.equal(again.snapshot().payment.number, 3n);
  await stopParty(restarted);
  await stopParty(provider);
  await signer.close();
});

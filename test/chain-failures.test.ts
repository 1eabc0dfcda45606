/**
 * A one-way channel whose chain misbehaves: both parties talk to bitcoind over JSON-RPC (a loopback
 * server answering as bitcoind does, backed by a Simnet) while it answers garbage, hangs, drops the
 * connection, fails with HTTP 500, goes away entirely, and reorganises. Payments need no chain and go on;
 * every failure is a reported ChainClientError, never a crash; no channel state is lost; once the chain
 * is back the close completes. A wrong password is a clear CHAIN_AUTH, from the library and the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Simnet } from '../src/chain/simnet/simnet.js';
import { serveBitcoindRpc, type BitcoindServer } from '../src/chain/simnet/bitcoind-server.js';
import { BitcoindChain } from '../src/chain/bitcoind/index.js';
import { ChainClientError } from '../src/chain/errors.js';
import { InMemoryBroker } from '../src/transport/memory.js';
import { decodeRecord, recordKey } from '../src/channel/oneway/state.js';
import { until } from './helpers/session-nodes.js';
import { OFFER, fundWallet, memoryTransport, startParty, stopParty, type ChainWithCoins } from './helpers/oneway-parties.js';
import { runCli } from './helpers/cli-process.js';

const AUTH = { user: 'trickle', password: 'correct horse' };

/** A party's chain: ChainSource calls go to bitcoind; coins and blocks come from the simnet behind it. */
function overBitcoind(chain: BitcoindChain, simnet: Simnet): ChainWithCoins {
  return {
    tipHeight: () => chain.tipHeight(),
    broadcast: (tx) => chain.broadcast(tx),
    getTransaction: (txid) => chain.getTransaction(txid),
    getUtxo: (o) => chain.getUtxo(o),
    getSpend: (o) => chain.getSpend(o),
    estimateFeeratePerKw: (t) => chain.estimateFeeratePerKw(t),
    watchOutpoint: (o) => chain.watchOutpoint(o),
    subscribe: (l) => chain.subscribe(l),
    faucet: (script, valueSat) => simnet.faucet(script, valueSat),
    utxosForScript: (script) => simnet.utxosForScript(script),
    mine: (count) => simnet.mine(count),
  };
}

test('a channel rides out garbage, hangs, drops, HTTP 500s, an outage and a reorg of its bitcoind', async () => {
  const simnet = new Simnet();
  let server: BitcoindServer = await serveBitcoindRpc(simnet, { auth: AUTH });
  const port = Number(new URL(server.url).port);
  const errors: unknown[] = [];
  const connect = () =>
    BitcoindChain.connect({ url: server.url, auth: AUTH, network: 'regtest', pollIntervalMs: 50, timeoutMs: 400, onError: (e) => errors.push(e) });
  const [payeeChain, payerChain] = [await connect(), await connect()];
  const broker = new InMemoryBroker();
  const node = { closeDepth: 2 };
  const provider = await startParty({ seed: 1, chain: overBitcoind(payeeChain, simnet), transport: memoryTransport(broker), offers: [OFFER], node });
  const device = await startParty({ seed: 2, chain: overBitcoind(payerChain, simnet), transport: memoryTransport(broker), node });
  try {
    await fundWallet(overBitcoind(payerChain, simnet), device, 1_000_000n);
    await until(() => device.messenger.directory().has(provider.messenger.nodeId), 'announcement');
    const opening = device.node.open(provider.messenger.nodeId, { capacitySat: 200_000n, expiryBlocks: 100 });
    await until(() => simnet.mempool().length > 0, 'funding broadcast', 20_000);
    await simnet.mine(1);
    const channel = await opening;
    await channel.pay(1_000_000n);

    // Every kind of bad answer, several times over; payments need no chain and go on meanwhile.
    for (let round = 0; round < 3; round++) for (const kind of ['garbage', 'hang', 'drop', 'http500-empty'] as const) server.faults.next(kind);
    for (let i = 0; i < 3; i++) await channel.pay(1_000_000n);
    const codes = () => new Set(errors.map((e) => (e instanceof ChainClientError ? e.code : `not a ChainClientError: ${String(e)}`)));
    await until(() => ['CHAIN_BAD_RESPONSE', 'CHAIN_TIMEOUT', 'CHAIN_UNREACHABLE', 'CHAIN_HTTP_ERROR'].every((c) => codes().has(c)), 'each failure reported', 20_000);
    assert.ok([...codes()].every((c) => c.startsWith('CHAIN_')), [...codes()].join(', '));

    // The node goes away. The payee is asked to close while the chain is down: its broadcast fails and
    // is retried at a later block; nothing of the channel is lost.
    await server.close();
    errors.length = 0;
    await channel.pay(1_000_000n);
    const closing = channel.close();
    await until(() => errors.some((e) => e instanceof ChainClientError && e.code === 'CHAIN_UNREACHABLE'), 'outage reported');
    const stored = decodeRecord((await provider.store.get(recordKey('payee', channel.snapshot().tempChannelId)))!);
    assert.equal(stored.payment.amountMsat, 5_000_000n, 'the payee still holds the latest payment');
    assert.ok(['open', 'closing'].includes(stored.phase), stored.phase);

    server = await serveBitcoindRpc(simnet, { auth: AUTH, port });
    await simnet.mine(1);
    await until(() => simnet.mempool().length > 0, 'settlement broadcast once the node is back', 20_000);
    const [settlementTxid] = simnet.mempool();
    const [first] = await simnet.mine(1);
    assert.equal((await simnet.getTransaction(settlementTxid!))?.confirmations, 1);
    await new Promise((r) => setTimeout(r, 300)); // several polls: the parties have seen the confirmation
    assert.equal(channel.phase, 'closing', 'one confirmation of two');

    // A reorg removes the settlement's block; the channel waits and settles in the new chain.
    simnet.invalidateBlock(first!);
    await simnet.mine(1);
    await until(() => simnet.mempool().length === 0 || simnet.mempool().includes(settlementTxid!), 'mempool settled');
    if (simnet.mempool().length > 0) await simnet.mine(1);
    await simnet.mine(2);
    const outcome = await closing;
    assert.equal(outcome?.kind, 'settled');
    assert.equal(outcome?.txid, settlementTxid);
    assert.equal(outcome?.payeeValueSat, 5000n);
    await until(() => provider.node.channel(channel.id)?.phase === 'closed', 'payee closed');
  } finally {
    await stopParty(device);
    await stopParty(provider);
    payeeChain.close();
    payerChain.close();
    await server.close();
  }
});

test('a wrong password is CHAIN_AUTH from the library, and a clear one-line error from the CLI', async () => {
  const simnet = new Simnet();
  const server = await serveBitcoindRpc(simnet, { auth: AUTH });
  const dir = await mkdtemp(join(tmpdir(), 'trickle-auth-'));
  try {
    await assert.rejects(BitcoindChain.connect({ url: server.url, auth: { user: 'trickle', password: 'wrong' } }), (e: unknown) => {
      assert.ok(e instanceof ChainClientError);
      assert.equal(e.code, 'CHAIN_AUTH');
      assert.ok(!e.message.includes('wrong'), 'the password never appears in messages');
      return true;
    });
    const init = runCli(['init', '--data-dir', dir]);
    await init.exited;
    const cli = runCli(['wallet', '--data-dir', dir, '--chain', 'bitcoind', '--rpc-url', server.url, '--rpc-user', 'trickle', '--rpc-pass', 'wrong']);
    const { code } = await cli.exited;
    assert.equal(code, 1);
    assert.ok(cli.events.some((e) => e['event'] === 'error' && e['code'] === 'CHAIN_AUTH'), JSON.stringify(cli.events));
    assert.ok(!cli.stderr.join('\n').includes('wrong'), 'the password never appears in output');
    assert.ok(!cli.stderr.join('\n').includes('    at '), 'no stack trace');

    const unreachable = runCli(['wallet', '--data-dir', dir, '--chain', 'bitcoind', '--rpc-url', 'http://127.0.0.1:9', '--rpc-user', 'a', '--rpc-pass', 'b']);
    assert.equal((await unreachable.exited).code, 1);
    assert.ok(unreachable.events.some((e) => e['code'] === 'CHAIN_UNREACHABLE'), JSON.stringify(unreachable.events));

    await simnet.mine(5);
    const ok = runCli(['wallet', '--data-dir', dir, '--chain', 'bitcoind', '--rpc-url', server.url, '--rpc-user', AUTH.user, '--rpc-pass', AUTH.password]);
    assert.equal((await ok.exited).code, 0, ok.stderr.join('\n'));
    const wallet = ok.events.find((e) => e['event'] === 'wallet')!;
    assert.match(String(wallet['address']), /^bcrt1q/);
    assert.equal(wallet['spendableSat'], '0');
    // The wallet scanned the regtest chain from its birth height (0) and said so as it went.
    assert.ok(ok.events.some((e) => e['event'] === 'catching-up' && e['height'] === 5 && e['tipHeight'] === 5), JSON.stringify(ok.events));
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

/**
 * The demo (examples/demo.ts) against the other chain backends: the provider and device processes
 * talk to a bitcoind JSON-RPC server or an Esplora server on loopback (both backed by a Simnet that
 * answers as those APIs do), while the demo funds the device with generatetoaddress and mines blocks
 * over RPC, as it does against a real regtest node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Simnet } from '../src/chain/simnet/simnet.js';
import { serveBitcoindRpc } from '../src/chain/simnet/bitcoind-server.js';
import { serveEsplora } from '../src/chain/simnet/esplora-server.js';
import { runDemo } from '../examples/demo.js';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the demo help documents the chain flags', () => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'examples/demo.ts', '--help'], { cwd: root, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  for (const flag of ['--chain simnet', '--chain bitcoind', '--rpc-url', '--rpc-user', '--rpc-pass', '--rpc-cookie', '--chain esplora', '--esplora-url']) {
    assert.ok(result.stdout.includes(flag), flag);
  }
  const cli = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--help'], { cwd: root, encoding: 'utf8' });
  for (const flag of ['--chain bitcoind', '--rpc-cookie', '--chain esplora', '--esplora-url', '--network', '--wallet-birth-height']) {
    assert.ok(cli.stdout.includes(flag), `trickle --help: ${flag}`);
  }
});

test('demo on bitcoind (regtest, cookie auth, no fee estimates): settled, both transactions confirmed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trickle-demo-bitcoind-'));
  const cookieFile = join(dir, '.cookie');
  const simnet = new Simnet();
  const server = await serveBitcoindRpc(simnet, { auth: { cookieFile }, feeEstimates: 'none' });
  try {
    const s = await runDemo({ scenario: 'oneway', gb: 10n, rateGbPerSec: 8n, quiet: true, chain: { kind: 'bitcoind', rpcUrl: server.url, auth: { cookieFile }, blockMs: 200 } });
    assert.equal(s.chain, 'bitcoind (regtest)');
    assert.equal(s.outcome, 'settled');
    assert.equal(s.onchainTxs, 2);
    assert.equal(s.paidMsat, '10000000');
    assert.equal(s.payeeReceivedSat, '10000');
    // The settlement pays the provider on the regtest chain itself.
    const settlement = await simnet.getTransaction(s.txids[1]!);
    assert.ok(settlement?.blockHeight !== undefined);
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('demo refund scenario on bitcoind: the provider vanishes, the device is refunded at expiry', async () => {
  const simnet = new Simnet();
  const server = await serveBitcoindRpc(simnet, { auth: { user: 'demo', password: 'regtest-only' } });
  try {
    const s = await runDemo({
      scenario: 'refund', gb: 40n, rateGbPerSec: 8n, quiet: true,
      chain: { kind: 'bitcoind', rpcUrl: server.url, auth: { user: 'demo', password: 'regtest-only' }, blockMs: 200 },
    });
    assert.equal(s.outcome, 'refunded');
    assert.equal(s.onchainTxs, 2);
    assert.equal(s.payeeReceivedSat, '0');
  } finally {
    await server.close();
  }
});

test('demo on Esplora (regtest; blocks mined over the node\'s RPC): settled, both transactions confirmed', async () => {
  const simnet = new Simnet();
  const rpc = await serveBitcoindRpc(simnet, { auth: { user: 'demo', password: 'regtest-only' } });
  const esplora = await serveEsplora(simnet);
  try {
    const s = await runDemo({
      scenario: 'oneway', gb: 10n, rateGbPerSec: 8n, quiet: true,
      chain: { kind: 'esplora', esploraUrl: esplora.url, rpcUrl: rpc.url, auth: { user: 'demo', password: 'regtest-only' }, blockMs: 200 },
    });
    assert.equal(s.chain, 'esplora (regtest)');
    assert.equal(s.outcome, 'settled');
    assert.equal(s.onchainTxs, 2);
    assert.equal(s.payeeReceivedSat, '10000');
  } finally {
    await esplora.close();
    await rpc.close();
  }
});

/**
 * The bitcoind JSON-RPC adapter (src/chain/bitcoind): (a) against recorded-style exchanges replayed by a
 * loopback server that asserts every request (method, params, id sequence, Authorization), with answers
 * hand-assembled from Core's RPC documentation (test/fixtures/bitcoind/rpc.json says which); (b) end to
 * end against serveBitcoindRpc over a real Simnet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { address, networks, Transaction } from 'bitcoinjs-lib';
import { BitcoindChain, BitcoindRpc, type BitcoindChainOptions } from '../src/chain/bitcoind/index.js';
import { ChainClientError } from '../src/chain/errors.js';
import { Simnet } from '../src/chain/simnet/simnet.js';
import { serveBitcoindRpc, type BitcoindServer, type BitcoindServerOptions } from '../src/chain/simnet/bitcoind-server.js';
import type { ChainEvent, OutPoint } from '../src/chain/port.js';
import { ManualClock } from '../src/clock.js';
import { hexToBytes, reverseBytes } from '../src/bytes.js';
import { SoftwareSigner } from '../src/signer/software.js';
import { encodeScriptSignature, p2wpkhOutput, p2wpkhScriptCode } from '../src/onchain/script.js';

// ---- (a) Fixture replay ------------------------------------------------------------------------------

const fixtureDir = fileURLToPath(new URL('./fixtures/bitcoind/', import.meta.url));
const blocks = JSON.parse(readFileSync(join(fixtureDir, 'blocks.json'), 'utf8')) as Record<string, Record<string, string>> & { funding: Record<string, string> };
const rpcFixture = JSON.parse(readFileSync(join(fixtureDir, 'rpc.json'), 'utf8')) as {
  authorization: string;
  info: Record<string, Exchange>;
  scenarios: Record<string, Exchange[]>;
};
const USER_AUTH = { user: 'trickle', password: 'correct horse battery staple' };

interface Exchange {
  request: { method: string; params: unknown[] };
  response: { status: number; body: unknown };
  authorization?: string;
}

/** "$blocks.a.b" → blocks.json's a.b, anywhere in a fixture value. */
function resolve<T>(value: T): T {
  if (typeof value === 'string' && value.startsWith('$blocks.')) {
    const found = value.slice(8).split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], blocks);
    assert.equal(typeof found, 'string', `fixture placeholder ${value}`);
    return found as T;
  }
  if (Array.isArray(value)) return value.map(resolve) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)])) as T;
  return value;
}

interface Replay {
  url: string;
  /** Requests that did not match the fixture, and exchanges never asked for. */
  problems(): string[];
  close(): Promise<void>;
}

/** A loopback server answering `exchanges` in order and checking each request against them. */
async function replay(exchanges: Exchange[]): Promise<Replay> {
  const script = resolve(exchanges);
  const problems: string[] = [];
  let next = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const index = next++;
      const expected = script[index];
      let body: { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown } = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        problems.push(`request ${index}: body is not JSON`);
      }
      if (!expected) {
        problems.push(`request ${index}: unexpected ${String(body.method)} ${JSON.stringify(body.params)}`);
        res.writeHead(500).end();
        return;
      }
      const check = (what: string, actual: unknown, wanted: unknown): void => {
        try {
          assert.deepStrictEqual(actual, wanted);
        } catch {
          problems.push(`request ${index} (${expected.request.method}) ${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(wanted)}`);
        }
      };
      check('method', body.method, expected.request.method);
      check('params', body.params, expected.request.params);
      check('jsonrpc', body.jsonrpc, '1.0');
      check('id', body.id, index + 1); // one BitcoindRpc per scenario: ids 1, 2, 3, …
      check('authorization', req.headers.authorization, expected.authorization ?? rpcFixture.authorization);
      check('http method', req.method, 'POST');
      const { status, body: answer } = expected.response;
      const text = typeof answer === 'string' ? answer : JSON.stringify({ id: body.id, ...(answer as object) });
      res.writeHead(status, { 'content-type': typeof answer === 'string' ? 'text/html' : 'application/json' }).end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    problems: () => [...problems, ...script.slice(next).map((e, i) => `exchange ${next + i} (${e.request.method}) never requested`)],
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Replay `scenario` (after a regtest getblockchaininfo unless `connect: false`) against a BitcoindChain. */
async function withReplay(
  scenario: string,
  body: (ctx: { chain: BitcoindChain; url: string }) => Promise<void>,
  options: Partial<BitcoindChainOptions> & { connect?: boolean } = {},
): Promise<void> {
  const exchanges = rpcFixture.scenarios[scenario];
  assert.ok(exchanges, `no scenario ${scenario}`);
  const server = await replay(options.connect === false ? exchanges : [rpcFixture.info.regtest!, ...exchanges]);
  try {
    if (options.connect === false) {
      await body({ chain: undefined as unknown as BitcoindChain, url: server.url });
    } else {
      const chain = await BitcoindChain.connect({ url: server.url, auth: USER_AUTH, clock: new ManualClock(), ...options });
      try {
        await body({ chain, url: server.url });
      } finally {
        chain.close();
      }
    }
    assert.deepEqual(server.problems(), []);
  } finally {
    await server.close();
  }
}

function isChainError(code: string, extra: (e: ChainClientError) => void = () => {}) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof ChainClientError, `expected a ChainClientError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    extra(e);
    return true;
  };
}

const F = blocks.funding.txid!;

test('connect: getblockchaininfo on regtest gives the network', async () => {
  await withReplay('connect-regtest', async ({ url }) => {
    const chain = await BitcoindChain.connect({ url, auth: USER_AUTH, network: 'regtest' });
    assert.equal(chain.network, 'regtest');
    chain.close();
  }, { connect: false });
});

test('connect: a node on another network is CHAIN_WRONG_NETWORK', async () => {
  await withReplay('wrong-network', async ({ url }) => {
    await assert.rejects(BitcoindChain.connect({ url, auth: USER_AUTH, network: 'regtest' }), isChainError('CHAIN_WRONG_NETWORK', (e) => assert.match(e.message, /"main", not regtest/)));
  }, { connect: false });
});

test('getblockhash + getblock <hash> 0: parsed locally, checked, the last blocks cached', async () => {
  await withReplay('block-raw', async ({ chain }) => {
    const block = await chain.block(101);
    assert.equal(block.hash, blocks.blockA!.hash);
    assert.equal(block.txs.length, 2);
    assert.equal(block.txs[1]!.getId(), blocks.blockA!.spenderTxid);
    const again = await chain.block(101); // cache: getblockhash only
    assert.equal(again.txs[1]!.getId(), blocks.blockA!.spenderTxid);
    await assert.rejects(chain.block(102), isChainError('CHAIN_RPC_ERROR', (e) => assert.equal(e.rpcCode, -8)));
  });
});

test('getblock: a block without witness data and no commitment parses', async () => {
  await withReplay('block-legacy', async ({ chain }) => {
    const block = await chain.block(101);
    assert.equal(block.txs[0]!.getId(), blocks.legacy!.coinbaseTxid);
  });
});

test('getblock: a block whose header is not the hash asked for is CHAIN_BAD_RESPONSE', async () => {
  await withReplay('block-hash-mismatch', async ({ chain }) => {
    await assert.rejects(chain.block(101), isChainError('CHAIN_BAD_RESPONSE', (e) => assert.match(e.message, /header hashes to/)));
  });
});

test('getblock: transactions not matching the merkle root are CHAIN_BAD_RESPONSE', async () => {
  await withReplay('block-bad-merkle', async ({ chain }) => {
    await assert.rejects(chain.block(101), isChainError('CHAIN_BAD_RESPONSE', (e) => assert.match(e.message, /merkle root/)));
  });
});

test('gettxout: present (height from bestblock), null, mempool; BTC amounts to sat exactly', async () => {
  await withReplay('gettxout', async ({ chain }) => {
    const utxo = await chain.getUtxo({ txid: F, vout: 0 });
    assert.equal(utxo?.output.valueSat, 100_000n);
    assert.equal(utxo?.blockHeight, 101);
    assert.equal(utxo?.confirmations, 3);
    assert.equal(utxo?.output.script.length, 22);
    assert.equal(await chain.getUtxo({ txid: F, vout: 1 }), undefined);
    const mempool = await chain.getUtxo({ txid: F, vout: 0 });
    assert.deepEqual(mempool, { output: { valueSat: 2_100_000_000_000_000n, script: Uint8Array.of(0x51) }, blockHeight: undefined, confirmations: 0 });
  });
});

test('gettxout: the tip moving between reads is read again once', async () => {
  await withReplay('gettxout-tip-moved', async ({ chain }) => {
    const utxo = await chain.getUtxo({ txid: F, vout: 0 });
    assert.equal(utxo?.blockHeight, 101);
    assert.equal(utxo?.confirmations, 4);
  });
});

test('gettxout: a value that is not a JSON number is CHAIN_BAD_RESPONSE naming the field', async () => {
  await withReplay('gettxout-bad-value', async ({ chain }) => {
    await assert.rejects(chain.getUtxo({ txid: F, vout: 0 }), isChainError('CHAIN_BAD_RESPONSE', (e) => assert.match(e.message, /gettxout\.value/)));
  });
});

test("sendrawtransaction: success, and Core's errors as rejections with the node's reason", async () => {
  await withReplay('sendrawtransaction', async ({ chain }) => {
    const tx = hexToBytes(blocks.funding.hex!);
    assert.deepEqual(await chain.broadcast(tx), { accepted: true, txid: F });
    const reject = (code: string, reason: string) => ({ accepted: false, txid: F, code, reason });
    assert.deepEqual(await chain.broadcast(tx), reject('non-BIP68-final', 'non-BIP68-final'));
    assert.deepEqual(
      await chain.broadcast(tx),
      reject('mandatory-script-verify-flag-failed', 'mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)'),
    );
    assert.deepEqual(await chain.broadcast(tx), reject('bad-txns-inputs-missingorspent', 'Inputs missing or spent'));
    assert.deepEqual(await chain.broadcast(tx), reject('txn-already-known', 'Transaction outputs already in utxo set'));
    assert.deepEqual(await chain.broadcast(tx), reject('other', 'min relay fee not met, 100 < 141'));
    const garbage = await chain.broadcast(Uint8Array.of(0));
    assert.deepEqual(garbage, { accepted: false, txid: '', code: 'tx-decode-failed', reason: 'TX decode failed. Make sure the tx has at least one input.' });
    // Not about the transaction: thrown, not a rejection.
    await assert.rejects(chain.broadcast(tx), isChainError('CHAIN_RPC_ERROR', (e) => assert.equal(e.rpcCode, -28)));
    // Not bytes: no request at all.
    assert.equal((await chain.broadcast('00' as unknown as Uint8Array)).accepted, false);
  });
});

test('estimatesmartfee: BTC/kvB to sat/kw rounded up, floor 253, fallback when the node has no estimate', async () => {
  await withReplay('estimatesmartfee', async ({ chain }) => {
    assert.equal(await chain.estimateFeeratePerKw(6), 3087n); // 12345 sat/kvB / 4, rounded up
    assert.equal(await chain.estimateFeeratePerKw(1), 253n); // 1000 sat/kvB = 250 sat/kw: BOLT's floor
    assert.equal(await chain.estimateFeeratePerKw(5000), 253n); // asked beyond Core's 1008 horizon: 1001/4 → 251 → 253
    assert.equal(await chain.estimateFeeratePerKw(6), 5000n); // errors: the fallback
  }, { fallbackFeeratePerKw: 5000n });
  await withReplay('estimatesmartfee-none', async ({ chain }) => {
    await assert.rejects(chain.estimateFeeratePerKw(6), isChainError('CHAIN_NO_FEE_ESTIMATE', (e) => assert.match(e.message, /Insufficient data/)));
  });
});

test('401 is CHAIN_AUTH; neither the password nor URL userinfo reaches the message', async () => {
  await withReplay('auth-401', async ({ url }) => {
    const withCredentials = url.replace('http://', 'http://trickle:wrong%20password@');
    await assert.rejects(BitcoindChain.connect({ url: withCredentials }), isChainError('CHAIN_AUTH', (e) => {
      assert.doesNotMatch(e.message, /wrong|password@|trickle:/);
      assert.equal(e.status, 401);
    }));
  }, { connect: false });
});

test('cookie auth: read lazily, read again once after a 401 (bitcoind restarted)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trickle-cookie-'));
  try {
    const cookieFile = join(dir, '.cookie');
    writeFileSync(cookieFile, `__cookie__:${'a1'.repeat(32)}`);
    await withReplay('cookie', async ({ url }) => {
      const chain = await BitcoindChain.connect({ url, auth: { cookieFile } });
      writeFileSync(cookieFile, `__cookie__:${'b2'.repeat(32)}\n`);
      assert.equal(await chain.tipHeight(), 102);
      chain.close();
    }, { connect: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed answers: non-JSON, wrong id, wrong shape are CHAIN_BAD_RESPONSE; other statuses typed', async () => {
  await withReplay('malformed', async ({ chain }) => {
    await assert.rejects(chain.tipHeight(), isChainError('CHAIN_BAD_RESPONSE'));
    await assert.rejects(chain.tipHeight(), isChainError('CHAIN_BAD_RESPONSE', (e) => assert.match(e.message, /\.id/)));
    await assert.rejects(chain.tipHeight(), isChainError('CHAIN_BAD_RESPONSE', (e) => assert.match(e.message, /getblockcount/)));
    await assert.rejects(chain.tipHeight(), isChainError('CHAIN_HTTP_ERROR', (e) => assert.equal(e.status, 502)));
    await assert.rejects(chain.tipHeight(), isChainError('CHAIN_RPC_ERROR', (e) => assert.equal(e.rpcCode, -32601)));
    await assert.rejects(chain.blockHash(101), isChainError('CHAIN_BAD_RESPONSE', (e) => assert.match(e.message, /getblockhash/)));
  });
});

test('reorg: the spend indexed in the orphaned block disappears, the new block\'s spend appears', async () => {
  const outpoint = { txid: F, vout: 0 };
  await withReplay('reorg', async ({ chain }) => {
    const hashA = await chain.blockHash(101); // poll 1 sees block A
    assert.equal((await chain.broadcast(hexToBytes(blocks.blockA!.spenderHex!))).accepted, true);
    await chain.connectBlock(101, hashA);
    await chain.connectBlock(101, hashA); // idempotent, and cached: no second getblock
    assert.deepEqual(await chain.getSpend(outpoint), { txid: blocks.blockA!.spenderTxid, inputIndex: 0, blockHeight: 101 });

    const hashB = await chain.blockHash(101); // poll 2: another block at 101
    assert.notEqual(hashB, hashA);
    await chain.disconnectBlock(101, hashA);
    await chain.disconnectBlock(101, hashA); // idempotent
    // Our spend is back in the node's mempool: unconfirmed again.
    assert.deepEqual(await chain.getSpend(outpoint), { txid: blocks.blockA!.spenderTxid, inputIndex: 0, blockHeight: undefined });
    await chain.connectBlock(101, hashB);
    assert.deepEqual(await chain.getSpend(outpoint), { txid: blocks.blockB!.spenderTxid, inputIndex: 0, blockHeight: 101 });
  }, { maxRescanBlocks: 0 });
});

test('BitcoindRpc: misuse is a TypeError/RangeError, before any request', () => {
  assert.throws(() => new BitcoindRpc({ url: 'ftp://x' , auth: USER_AUTH }), TypeError);
  assert.throws(() => new BitcoindRpc({ url: 'http://127.0.0.1:1' }), TypeError);
  assert.throws(() => new BitcoindRpc({ url: 'http://127.0.0.1:1', auth: USER_AUTH, timeoutMs: 0 }), RangeError);
});

// ---- (b) Against serveBitcoindRpc over a real Simnet ------------------------------------------------

const signer = SoftwareSigner.fromSeed(new Uint8Array(32).fill(9));
const pubkeys = await Promise.all([0, 1].map((index) => signer.getPublicKey({ family: 'wallet', index })));
const script0 = p2wpkhOutput(pubkeys[0]!);
const script1 = p2wpkhOutput(pubkeys[1]!);
const address0 = address.fromOutputScript(script0, networks.regtest);
const address1 = address.fromOutputScript(script1, networks.regtest);
const COINBASE_SAT = 5_000_000_000n;

async function spendCoin(outpoint: OutPoint, valueSat: bigint): Promise<Uint8Array> {
  const tx = new Transaction();
  tx.version = 2;
  tx.addInput(reverseBytes(hexToBytes(outpoint.txid)), outpoint.vout, 0xfffffffd);
  tx.addOutput(script1, valueSat - 10_000n);
  const sig = await signer.signInput({ key: { family: 'wallet', index: 0 }, tx: tx.toBuffer(), inputIndex: 0, scriptCode: p2wpkhScriptCode(pubkeys[0]!), valueSat });
  tx.setWitness(0, [encodeScriptSignature(sig), pubkeys[0]!]);
  return tx.toBuffer();
}

async function withNode(
  body: (ctx: { simnet: Simnet; server: BitcoindServer; chain: BitcoindChain }) => Promise<void>,
  serverOptions: Partial<BitcoindServerOptions> = {},
  chainOptions: Partial<BitcoindChainOptions> = {},
): Promise<void> {
  const simnet = new Simnet();
  const server = await serveBitcoindRpc(simnet, { auth: USER_AUTH, ...serverOptions });
  const chain = await BitcoindChain.connect({ url: server.url, auth: USER_AUTH, network: 'regtest', clock: new ManualClock(), ...chainOptions });
  try {
    await body({ simnet, server, chain });
  } finally {
    chain.close();
    await server.close();
  }
}

test('served: a closed port is CHAIN_UNREACHABLE', async () => {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((r) => probe.close(() => r()));
  await assert.rejects(BitcoindChain.connect({ url: `http://127.0.0.1:${port}`, auth: USER_AUTH }), isChainError('CHAIN_UNREACHABLE'));
});

test('served: faults are typed errors (hang → CHAIN_TIMEOUT, garbage → CHAIN_BAD_RESPONSE, empty 500, dropped socket)', async () => {
  await withNode(async ({ server }) => {
    const rpc = new BitcoindRpc({ url: server.url, auth: USER_AUTH, timeoutMs: 200 });
    server.faults.next('hang');
    await assert.rejects(rpc.call('getblockcount'), isChainError('CHAIN_TIMEOUT'));
    server.faults.next('garbage');
    await assert.rejects(rpc.call('getblockcount'), isChainError('CHAIN_BAD_RESPONSE'));
    server.faults.next('http500-empty');
    await assert.rejects(rpc.call('getblockcount'), isChainError('CHAIN_HTTP_ERROR', (e) => assert.equal(e.status, 500)));
    server.faults.next('drop');
    await assert.rejects(rpc.call('getblockcount'), isChainError('CHAIN_UNREACHABLE'));
    // Transient failures are retried when asked to.
    const retrying = new BitcoindRpc({ url: server.url, auth: USER_AUTH, timeoutMs: 5000, retry: { attempts: 2, baseDelayMs: 1 } });
    server.faults.next('drop');
    assert.equal(await retrying.call('getblockcount'), 0);
    assert.equal(await rpc.call('getblockcount'), 0);
  });
});

test('served: wrong password is CHAIN_AUTH; Core-shaped errors for bad calls', async () => {
  await withNode(async ({ server }) => {
    await assert.rejects(BitcoindChain.connect({ url: server.url, auth: { user: 'trickle', password: 'nope' } }), isChainError('CHAIN_AUTH'));
    const rpc = new BitcoindRpc({ url: server.url, auth: USER_AUTH });
    await assert.rejects(rpc.call('getblockhash', [5]), isChainError('CHAIN_RPC_ERROR', (e) => assert.equal(e.rpcCode, -8)));
    await assert.rejects(rpc.call('getblock', ['00'.repeat(32), 0]), isChainError('CHAIN_RPC_ERROR', (e) => assert.equal(e.rpcCode, -5)));
    await assert.rejects(rpc.call('getnetworkinfo'), isChainError('CHAIN_RPC_ERROR', (e) => {
      assert.equal(e.rpcCode, -32601);
      assert.equal(e.status, 404);
    }));
    await assert.rejects(rpc.call('generatetoaddress', [1, 'not-an-address']), isChainError('CHAIN_RPC_ERROR', (e) => assert.equal(e.rpcCode, -5)));
  });
});

test('served: cookie auth, and a rotated cookie is read again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trickle-cookie-'));
  try {
    const cookieFile = join(dir, '.cookie');
    await withNode(async ({ server }) => {
      assert.equal(statSync(cookieFile).mode & 0o777, 0o600);
      assert.match(readFileSync(cookieFile, 'utf8'), /^__cookie__:[0-9a-f]{64}$/);
      const chain = await BitcoindChain.connect({ url: server.url, auth: { cookieFile }, network: 'regtest' });
      assert.equal(await chain.tipHeight(), 0);
      await server.rotateCookie();
      assert.equal(await chain.tipHeight(), 0);
      chain.close();
    }, { auth: { cookieFile } }, { auth: { cookieFile } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('served: fee estimates from the simnet, or none as a fresh regtest node', async () => {
  await withNode(async ({ chain }) => {
    assert.equal(await chain.estimateFeeratePerKw(6), 2500n);
  });
  await withNode(async ({ chain }) => {
    await assert.rejects(chain.estimateFeeratePerKw(6), isChainError('CHAIN_NO_FEE_ESTIMATE'));
  }, { feeEstimates: 'none' });
});

test('served: mine to an address, spend the matured coinbase, watch it spent in the mempool and confirmed', async () => {
  await withNode(async ({ simnet, chain }) => {
    const events: ChainEvent[] = [];
    chain.subscribe((e) => events.push(e));
    await chain.poll();

    const [first] = await chain.generateToAddress(1, address0);
    const block1 = await chain.block(1);
    assert.equal(block1.hash, first);
    const coinbase: OutPoint = { txid: block1.txs[0]!.getId(), vout: 0 };
    assert.equal(simnet.isMinedCoinbase(coinbase.txid), true);
    const utxo = await chain.getUtxo(coinbase);
    assert.equal(utxo?.output.valueSat, COINBASE_SAT);
    assert.equal(utxo?.blockHeight, 1);
    assert.deepEqual(utxo?.output.script, script0);

    // Immature: Core's premature-spend rule is not one of ours, so 'other' with the node's reason.
    const tx = await spendCoin(coinbase, COINBASE_SAT);
    const premature = await chain.broadcast(tx);
    assert.equal(premature.accepted, false);
    assert.ok(!premature.accepted && premature.code === 'other' && /premature-spend-of-coinbase/.test(premature.reason), JSON.stringify(premature));

    assert.equal((await chain.generateToAddress(100, address1)).length, 100);
    chain.watchOutpoint(coinbase);
    const txid = Transaction.fromBuffer(tx).getId();
    assert.deepEqual(await chain.broadcast(tx), { accepted: true, txid });
    assert.deepEqual(await chain.broadcast(tx), { accepted: true, txid }); // already in the mempool: Core answers the txid
    await chain.poll();
    const spentEvents = () => events.filter((e) => e.type === 'spent');
    assert.deepEqual(spentEvents(), [{ type: 'spent', outpoint: coinbase, spend: { txid, inputIndex: 0, blockHeight: undefined } }]);
    assert.deepEqual(await chain.getSpend(coinbase), { txid, inputIndex: 0, blockHeight: undefined });
    assert.equal(await chain.getUtxo(coinbase), undefined);
    const pending = await chain.getTransaction(txid);
    assert.equal(pending?.blockHeight, undefined);
    assert.equal(pending?.confirmations, 0);
    assert.deepEqual(pending?.tx, tx);
    assert.equal((await chain.getUtxo({ txid, vout: 0 }))?.confirmations, 0);

    const [hash102] = await chain.generateToAddress(1, address1);
    await chain.poll();
    assert.deepEqual(spentEvents().at(-1), { type: 'spent', outpoint: coinbase, spend: { txid, inputIndex: 0, blockHeight: 102 } });
    assert.ok(events.some((e) => e.type === 'block' && e.height === 102 && e.hash === hash102));
    await chain.connectBlock(102, hash102!); // what the poller calls; the index then answers
    assert.deepEqual(await chain.getSpend(coinbase), { txid, inputIndex: 0, blockHeight: 102 });
    const confirmed = await chain.getTransaction(txid);
    assert.equal(confirmed?.blockHeight, 102);
    assert.equal(confirmed?.confirmations, 1);
    const created = await chain.getUtxo({ txid, vout: 0 });
    assert.deepEqual({ height: created?.blockHeight, confs: created?.confirmations, value: created?.output.valueSat }, { height: 102, confs: 1, value: COINBASE_SAT - 10_000n });
    assert.equal(await chain.tipHeight(), 102);
    // Someone else's confirmed tx without -txindex (Core answers -5 without a block hash): found by
    // reading recent blocks, within maxTxScanBlocks (144 by default).
    const found = await chain.getTransaction(coinbase.txid);
    assert.deepEqual([found?.blockHeight, found?.confirmations], [1, 102]);
    assert.equal(await chain.getTransaction('ab'.repeat(32)), undefined);
  });
});

test('served with txindex: a confirmed tx found without its block, its height from gettxout; others\' spends seen once confirmed', async () => {
  await withNode(async ({ simnet, chain }) => {
    await chain.generateToAddress(3, address0);
    const coinbaseTxid = (await chain.block(2)).txs[0]!.getId();
    const status = await chain.getTransaction(coinbaseTxid);
    assert.equal(status?.blockHeight, 2);
    assert.equal(status?.confirmations, 2);
    // An outpoint spent by someone else (not through this adapter): unseen in the mempool, found by a scan once confirmed.
    const coin: OutPoint = { txid: (await chain.block(1)).txs[0]!.getId(), vout: 0 };
    assert.equal(await chain.getSpend(coin), undefined);
    await chain.generateToAddress(100, address1);
    const tx = await spendCoin(coin, COINBASE_SAT);
    assert.equal((await simnet.broadcast(tx)).accepted, true);
    assert.equal(await chain.getSpend(coin), undefined);
    await simnet.mine(1);
    const spend = { txid: Transaction.fromBuffer(tx).getId(), inputIndex: 0, blockHeight: 104 };
    assert.deepEqual(await chain.getSpend(coin), spend);
    assert.deepEqual(await chain.getSpend(coin), spend); // remembered
  }, { txindex: true });
});

test('generateToAddress on a node that is not regtest is refused before any request', async () => {
  await withReplay('wrong-network', async ({ url }) => {
    const chain = await BitcoindChain.connect({ url, auth: USER_AUTH });
    assert.equal(chain.network, 'mainnet');
    await assert.rejects(chain.generateToAddress(1, address0), TypeError);
    chain.close();
  }, { connect: false });
});

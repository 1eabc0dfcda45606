/**
 * The Esplora adapter (src/chain/esplora): first against recorded exchanges replayed by a loopback
 * server that also checks every request sent (method, path, body, chosen headers), then end to end
 * against serveEsplora over a real Simnet (faults, and a signed P2WPKH spend followed through the chain).
 * Fixtures: test/fixtures/esplora/*.json, hand-assembled from the Esplora API documentation (see their
 * "source" field), with real transactions and a real block built with bitcoinjs-lib.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Block } from 'bitcoinjs-lib';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EsploraChain, type EsploraChainOptions } from '../src/chain/esplora/index.js';
import { ChainClientError, type ChainClientErrorCode } from '../src/chain/errors.js';
import type { ChainEvent } from '../src/chain/port.js';
import { Simnet } from '../src/chain/simnet/simnet.js';
import { serveEsplora, type EsploraServer, type EsploraServerOptions } from '../src/chain/simnet/esplora-server.js';
import { ManualClock, systemClock } from '../src/clock.js';
import { bytesToHex, hexToBytes } from '../src/bytes.js';
import { compileScript, opcodes } from '../src/onchain/script.js';
import { P2wpkhKeys, accepted, rejected, txidOf } from './helpers/p2wpkh.js';

// ---- Fixture replay ---------------------------------------------------------------------------------

interface Exchange {
  request: { method: 'GET' | 'POST'; path: string; body?: string; headers?: Record<string, string> };
  response: { status: number; contentType: string; body?: string; bodyHex?: string } | { drop: true };
}

interface Fixture {
  source: string;
  cases: Record<string, Exchange[]>;
  [key: string]: unknown;
}

function fixture(name: string): Fixture {
  const f = JSON.parse(readFileSync(new URL(`./fixtures/esplora/${name}.json`, import.meta.url), 'utf8')) as Fixture;
  assert.match(f.source, /not captured from a live server/i);
  return f;
}

const blocks = fixture('blocks');
const transactions = fixture('transactions');
const broadcasts = fixture('broadcast');
const fees = fixture('fee-estimates');
const addressUtxo = fixture('address-utxo');
const malformed = fixture('malformed');
const http = fixture('http');
const reorg = fixture('reorg');

const block = blocks.block as { height: number; hash: string; prevHash: string; hex: string; txids: string[] };
const { fund: FUND, spend: SPEND } = transactions.transactions as Record<'fund' | 'spend', { txid: string; hex: string }>;

function exchanges(f: Fixture, name: string): Exchange[] {
  const list = f.cases[name];
  assert.ok(list, `no fixture case "${name}"`);
  return list;
}

/** What the replay server saw of one request: the fields its fixture asserts. */
interface Seen {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function stop(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Serve `script` in order; a request beyond it gets 500. Returns the requests seen, shaped like the
 * fixture's requests (headers only those the fixture names), to compare with deepEqual.
 */
async function replayServer(script: Exchange[]): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  let next = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const exchange = script[next++];
      const body = Buffer.concat(chunks).toString('utf8');
      const entry: Seen = { method: req.method ?? '', path: req.url ?? '' };
      if (body !== '') entry.body = body;
      const wanted = exchange?.request.headers;
      if (wanted) entry.headers = Object.fromEntries(Object.keys(wanted).map((k) => [k, String(req.headers[k] ?? '')]));
      seen.push(entry);
      if (!exchange) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('replay: unexpected request');
        return;
      }
      const response = exchange.response;
      if ('drop' in response) {
        req.socket.destroy();
        return;
      }
      const payload = response.bodyHex !== undefined ? Buffer.from(response.bodyHex, 'hex') : Buffer.from(response.body ?? '', 'utf8');
      res.writeHead(response.status, { 'content-type': response.contentType, 'content-length': payload.length }).end(payload);
    });
  });
  const url = await listen(server);
  return { url, seen, close: () => stop(server) };
}

/** Run `fn` with an EsploraChain on the replay of `script`, then check exactly these requests were sent. */
async function replay<T>(
  script: Exchange[],
  fn: (chain: EsploraChain) => Promise<T>,
  options: Partial<EsploraChainOptions> & { path?: string; userinfo?: string } = {},
): Promise<T> {
  const server = await replayServer(script);
  const { path = '', userinfo, ...rest } = options;
  const url = userinfo ? server.url.replace('http://', `http://${userinfo}@`) : server.url;
  const chain = new EsploraChain({ url: url + path, network: 'regtest', retry: { attempts: 1 }, clock: new ManualClock(), ...rest });
  try {
    const result = await fn(chain);
    assert.deepEqual(server.seen, script.map((e) => e.request), 'requests sent');
    return result;
  } finally {
    chain.close();
    await server.close();
  }
}

async function rejectsWith(promise: Promise<unknown>, code: ChainClientErrorCode, extra: { status?: number; rpcCode?: number; message?: RegExp } = {}): Promise<ChainClientError> {
  let error: unknown;
  await assert.rejects(promise, (e) => {
    error = e;
    return true;
  });
  assert.ok(error instanceof ChainClientError, `expected a ChainClientError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  if (extra.status !== undefined) assert.equal(error.status, extra.status);
  if (extra.rpcCode !== undefined) assert.equal(error.rpcCode, extra.rpcCode);
  if (extra.message) assert.match(error.message, extra.message);
  return error;
}

const bad = (f: Fixture, name: string, call: (chain: EsploraChain) => Promise<unknown>) =>
  replay(exchanges(f, name), (chain) => rejectsWith(call(chain), 'CHAIN_BAD_RESPONSE'));

describe('Esplora fixtures: blocks', () => {
  test('tip height, block hash by height, 404 above the tip', async () => {
    assert.equal(await replay(exchanges(blocks, 'tip height'), (c) => c.tipHeight()), 105);
    assert.equal(await replay(exchanges(blocks, 'block hash at a height'), (c) => c.blockHash(100)), block.hash);
    await replay(exchanges(blocks, 'no block above the tip'), (c) => rejectsWith(c.blockHash(106), 'CHAIN_HTTP_ERROR', { status: 404 }));
  });

  test('a raw block is returned once its header hash and merkle root check out', async () => {
    const raw = await replay(exchanges(blocks, 'raw block'), (c) => c.rawBlock(block.hash));
    assert.equal(bytesToHex(raw), block.hex);
  });

  test('raw blocks that do not match: another hash, a changed transaction, cut short, trailing bytes, unknown', async () => {
    await bad(blocks, 'raw block answered for another hash', (c) => c.rawBlock(block.prevHash));
    await bad(blocks, 'raw block with an output value changed', (c) => c.rawBlock(block.hash));
    await bad(blocks, 'raw block cut short', (c) => c.rawBlock(block.hash));
    await bad(blocks, 'raw block with bytes after it', (c) => c.rawBlock(block.hash));
    await replay(exchanges(blocks, 'raw block unknown'), (c) => rejectsWith(c.rawBlock(block.prevHash), 'CHAIN_HTTP_ERROR', { status: 404 }));
  });

  test('witness data without a witness commitment is a bad response (witnesses are outside the merkle root)', async () => {
    // The fixture block with its coinbase's commitment output turned into another OP_RETURN, the merkle
    // root redone: header and txids consistent, witnesses unvouched for.
    const b = Block.fromHex(block.hex);
    const coinbase = b.transactions![0]!;
    coinbase.outs[1]!.script = compileScript([opcodes.OP_RETURN, Uint8Array.of(1, 2, 3)]);
    b.merkleRoot = Block.calculateMerkleRoot(b.transactions!);
    const hash = b.getId();
    const script: Exchange[] = [{ request: { method: 'GET', path: `/block/${hash}/raw` }, response: { status: 200, contentType: 'application/octet-stream', bodyHex: b.toHex() } }];
    await replay(script, (c) => rejectsWith(c.rawBlock(hash), 'CHAIN_BAD_RESPONSE', { message: /witness commitment/ }));
  });
});

describe('Esplora fixtures: transactions, outputs and spends', () => {
  test('getTransaction: confirmed (depth from the tip), unconfirmed, unknown', async () => {
    assert.deepEqual(await replay(exchanges(transactions, 'confirmed transaction'), (c) => c.getTransaction(SPEND.txid)), {
      tx: hexToBytes(SPEND.hex), blockHeight: 100, confirmations: 6,
    });
    assert.deepEqual(await replay(exchanges(transactions, 'unconfirmed transaction'), (c) => c.getTransaction(SPEND.txid)), {
      tx: hexToBytes(SPEND.hex), blockHeight: undefined, confirmations: 0,
    });
    assert.equal(await replay(exchanges(transactions, 'unknown transaction'), (c) => c.getTransaction(SPEND.txid)), undefined);
  });

  test('getTransaction: hex of another transaction or not hex is a bad response', async () => {
    await bad(transactions, 'hex of another transaction', (c) => c.getTransaction(SPEND.txid));
    await bad(transactions, 'odd-length hex', (c) => c.getTransaction(SPEND.txid));
  });

  test('getUtxo: confirmed and unconfirmed outputs; spent, out of range, OP_RETURN and unknown are undefined', async () => {
    const keys = await P2wpkhKeys.create(0x5c); // the fixture's keys
    const output = { valueSat: 99_000n, script: keys.scripts[1]! };
    assert.deepEqual(await replay(exchanges(transactions, 'utxo confirmed and unspent'), (c) => c.getUtxo({ txid: SPEND.txid, vout: 0 })), {
      output, blockHeight: 100, confirmations: 6,
    });
    assert.deepEqual(await replay(exchanges(transactions, 'utxo unconfirmed'), (c) => c.getUtxo({ txid: SPEND.txid, vout: 0 })), {
      output, blockHeight: undefined, confirmations: 0,
    });
    assert.equal(await replay(exchanges(transactions, 'utxo spent'), (c) => c.getUtxo({ txid: FUND.txid, vout: 0 })), undefined);
    assert.equal(await replay(exchanges(transactions, 'utxo output index out of range'), (c) => c.getUtxo({ txid: SPEND.txid, vout: 2 })), undefined);
    assert.equal(await replay(exchanges(transactions, 'utxo OP_RETURN output'), (c) => c.getUtxo({ txid: SPEND.txid, vout: 1 })), undefined);
    assert.equal(await replay(exchanges(transactions, 'utxo of an unknown transaction'), (c) => c.getUtxo({ txid: SPEND.txid, vout: 0 })), undefined);
  });

  test('getSpend from outspend: confirmed, in the mempool, none', async () => {
    const outpoint = { txid: FUND.txid, vout: 0 };
    assert.deepEqual(await replay(exchanges(transactions, 'spend confirmed'), (c) => c.getSpend(outpoint)), { txid: SPEND.txid, inputIndex: 0, blockHeight: 100 });
    assert.deepEqual(await replay(exchanges(transactions, 'spend in the mempool'), (c) => c.getSpend(outpoint)), { txid: SPEND.txid, inputIndex: 0, blockHeight: undefined });
    assert.equal(await replay(exchanges(transactions, 'no spend'), (c) => c.getSpend(outpoint)), undefined);
  });

  test('arguments are checked before any request', async () => {
    await replay([], async (c) => {
      await assert.rejects(c.getTransaction('xyz'), TypeError);
      await assert.rejects(c.getSpend({ txid: FUND.txid, vout: -1 }), TypeError);
      await assert.rejects(c.blockHash(-1), RangeError);
      await assert.rejects(c.rawBlock('00'), TypeError);
      await assert.rejects(c.estimateFeeratePerKw(0), RangeError);
      await assert.rejects(c.addressUtxos('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'), TypeError); // mainnet address on regtest
    });
  });
});

describe('Esplora fixtures: broadcast', () => {
  const tx = hexToBytes(SPEND.hex);
  const refusal = (name: string) => replay(exchanges(broadcasts, name), (c) => c.broadcast(tx));

  test('accepted: the hex is POSTed as text and the answered txid checked', async () => {
    assert.deepEqual(await refusal('accepted'), { accepted: true, txid: SPEND.txid });
    await replay(exchanges(broadcasts, 'accepted under another txid'), (c) => rejectsWith(c.broadcast(tx), 'CHAIN_BAD_RESPONSE'));
  });

  test("bitcoind's errors relayed in a 400 map to reject codes", async () => {
    const cases: Array<[string, string, string]> = [
      ['non-BIP68-final', 'non-BIP68-final', 'non-BIP68-final'],
      ['mandatory-script-verify-flag-failed', 'mandatory-script-verify-flag-failed', 'mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)'],
      ['inputs missing or spent', 'bad-txns-inputs-missingorspent', 'Inputs missing or spent'],
      ['outputs already in utxo set', 'txn-already-known', 'Transaction outputs already in utxo set'],
      ['decode failed', 'tx-decode-failed', 'TX decode failed. Make sure the tx has at least one input.'],
      ['min relay fee not met', 'other', 'min relay fee not met, 110 < 141'],
    ];
    for (const [name, code, reason] of cases) {
      assert.deepEqual(await refusal(name), { accepted: false, txid: SPEND.txid, code, reason }, name);
    }
  });

  test('a 400 without an RPC error is an "other" rejection; a broken RPC error a bad response', async () => {
    assert.deepEqual(await refusal('other 400 text'), {
      accepted: false, txid: SPEND.txid, code: 'other', reason: 'Transaction rejected by a relay policy of this server',
    });
    await replay(exchanges(broadcasts, 'RPC error that is not JSON'), (c) => rejectsWith(c.broadcast(tx), 'CHAIN_BAD_RESPONSE'));
  });

  test('a node error that is not about the transaction is CHAIN_RPC_ERROR; a 500 is thrown, not retried', async () => {
    await replay(exchanges(broadcasts, 'node warming up'), (c) => rejectsWith(c.broadcast(tx), 'CHAIN_RPC_ERROR', { rpcCode: -28 }));
    await replay(exchanges(broadcasts, 'server error'), (c) => rejectsWith(c.broadcast(tx), 'CHAIN_HTTP_ERROR', { status: 500 }), {
      retry: { attempts: 3, baseDelayMs: 1 },
    });
  });

  test('bytes that do not decode are refused without asking the server', async () => {
    assert.deepEqual(await replay([], (c) => c.broadcast(Uint8Array.of(1, 2, 3))), { accepted: false, txid: '', code: 'tx-decode-failed', reason: 'TX decode failed' });
  });
});

describe('Esplora fixtures: fee estimates', () => {
  const estimate = (name: string, target: number, options: Partial<EsploraChainOptions> = {}) =>
    replay(exchanges(fees, name), (c) => c.estimateFeeratePerKw(target), options);

  test("the documented example: the largest listed target <= the request, else the shortest, ceil(sat/vB × 250)", async () => {
    assert.equal(await estimate('documented example', 6), 17_072n); // 68.285 × 250 = 17071.25
    assert.equal(await estimate('documented example', 5), 20_283n); // 81.129
    assert.equal(await estimate('documented example', 7), 17_072n); // no "7": the more conservative "6"
    assert.equal(await estimate('documented example', 143), 257n); // "25": 1.027 × 250 = 256.75
    assert.equal(await estimate('documented example', 5000), 257n); // "1008"
    assert.equal(await estimate('documented example', 1), 21_971n); // shortest listed is "2": 87.882 × 250 = 21970.5
  });

  test('exact decimal conversion (8.028 × 250 is 2007, not float 2007.0000000000002), the 253 floor, exponents', async () => {
    assert.ok(Math.ceil(8.028 * 250) === 2008, 'the float product drifts; the adapter must not use it');
    assert.equal(await estimate('exact decimals', 2), 2007n);
    assert.equal(await estimate('exact decimals', 6), 253n); // 0.5 sat/vB = 125, floored
    assert.equal(await estimate('exact decimals', 144), 3750n); // 1.5e1
  });

  test('no estimates ({} on regtest): the fallback (floored), else CHAIN_NO_FEE_ESTIMATE', async () => {
    assert.equal(await estimate('empty', 6, { fallbackFeeratePerKw: 1000n }), 1000n);
    assert.equal(await estimate('empty', 6, { fallbackFeeratePerKw: 100n }), 253n);
    await replay(exchanges(fees, 'empty'), (c) => rejectsWith(c.estimateFeeratePerKw(6), 'CHAIN_NO_FEE_ESTIMATE'));
  });

  test('malformed estimates are bad responses', async () => {
    for (const name of ['value as a string', 'negative value', 'absurd value', 'not an object', 'target twice', 'not JSON']) {
      await bad(fees, name, (c) => c.estimateFeeratePerKw(2));
    }
  });
});

describe('Esplora fixtures: address UTXOs', () => {
  const address = addressUtxo.address as string;

  test('confirmed and unconfirmed coins, amounts as bigint', async () => {
    assert.deepEqual(await replay(exchanges(addressUtxo, 'two coins'), (c) => c.addressUtxos(address)), [
      { outpoint: { txid: SPEND.txid, vout: 0 }, valueSat: 99_000n, blockHeight: 100 },
      { outpoint: { txid: 'c4a1f0e2b3d4958677a8b9c0d1e2f30415263748596a7b8c9dadbecf00112233', vout: 1 }, valueSat: 25_000n, blockHeight: undefined },
    ]);
    assert.deepEqual(await replay(exchanges(addressUtxo, 'no coins'), (c) => c.addressUtxos(address)), []);
  });

  test('wrong field types and ranges are bad responses', async () => {
    for (const name of ['value as a string', 'fractional value', 'value above 21 million BTC', 'short txid', 'vout above uint32', 'not an array']) {
      await bad(addressUtxo, name, (c) => c.addressUtxos(address));
    }
  });

  test('addressOf encodes output scripts for the configured network', async () => {
    const keys = await P2wpkhKeys.create(0x5c); // the fixture's keys
    await replay([], async (c) => {
      assert.equal(c.addressOf(keys.scripts[1]!), address);
      assert.match(c.addressOf(hexToBytes(`5120${'11'.repeat(32)}`)), /^bcrt1p/);
      assert.throws(() => c.addressOf(compileScript([opcodes.OP_RETURN, Uint8Array.of(1)])), TypeError);
      assert.equal(c.network, 'regtest');
    });
    const signet = new EsploraChain({ url: 'https://example.invalid/signet/api', network: 'signet' });
    assert.match(signet.addressOf(hexToBytes(`0014${'00'.repeat(20)}`)), /^tb1q/);
    const mainnet = new EsploraChain({ url: 'https://example.invalid/api', network: 'mainnet' });
    assert.equal(mainnet.addressOf(hexToBytes(`76a914${'00'.repeat(20)}88ac`)), '1111111111111111111114oLvT2');
  });
});

describe('Esplora fixtures: malformed answers and HTTP statuses', () => {
  test('malformed text and JSON, wrong field types', async () => {
    await bad(malformed, 'tip height is a web page', (c) => c.tipHeight());
    await bad(malformed, 'tip height negative', (c) => c.tipHeight());
    await bad(malformed, 'block hash not hex', (c) => c.blockHash(100));
    await bad(malformed, 'status confirmed is a string', (c) => c.getTransaction(SPEND.txid));
    await bad(malformed, 'status is broken JSON', (c) => c.getTransaction(SPEND.txid));
    await bad(malformed, 'confirmed without a height', (c) => c.getTransaction(SPEND.txid));
    await bad(malformed, 'outspend vin is a string', (c) => c.getSpend({ txid: FUND.txid, vout: 0 }));
    await bad(malformed, 'outspend spent without a status', (c) => c.getSpend({ txid: FUND.txid, vout: 0 }));
    await bad(malformed, 'outspend spent is a number', (c) => c.getSpend({ txid: FUND.txid, vout: 0 }));
  });

  test('401/403 are CHAIN_AUTH; credentials in the URL go as Basic auth and never into messages', async () => {
    await replay(exchanges(http, 'unauthorized'), (c) => rejectsWith(c.tipHeight(), 'CHAIN_AUTH', { status: 401 }));
    await replay(exchanges(http, 'forbidden'), (c) => rejectsWith(c.tipHeight(), 'CHAIN_AUTH', { status: 403 }));
    const error = await replay(exchanges(http, 'credentials in the URL'), (c) => rejectsWith(c.tipHeight(), 'CHAIN_AUTH'), { userinfo: 'user:s3cret' });
    assert.doesNotMatch(error.message, /s3cret|user:/);
  });

  test('a base URL with a path keeps it; a 404 where it means nothing is CHAIN_HTTP_ERROR', async () => {
    assert.equal(await replay(exchanges(http, 'base path kept'), (c) => c.tipHeight(), { path: '/api/' }), 105);
    await replay(exchanges(http, 'not found where it means nothing'), (c) => rejectsWith(c.estimateFeeratePerKw(2), 'CHAIN_HTTP_ERROR', { status: 404 }));
  });

  test('retry with back-off: a 503 or a dropped connection, then the answer', async () => {
    // Real 1-2 ms back-offs (the replay's chain otherwise runs on a ManualClock that never moves).
    const retry = { attempts: 2, baseDelayMs: 1, maxDelayMs: 2, clock: systemClock };
    assert.equal(await replay(exchanges(http, '503 then an answer'), (c) => c.tipHeight(), { retry }), 105);
    assert.equal(await replay(exchanges(http, 'dropped then an answer'), (c) => c.tipHeight(), { retry }), 105);
    assert.deepEqual(
      await replay(exchanges(http, 'broadcast after a dropped connection'), (c) => c.broadcast(hexToBytes(SPEND.hex)), { retry }),
      { accepted: true, txid: SPEND.txid },
    );
    await replay(exchanges(http, '503 every time'), (c) => rejectsWith(c.tipHeight(), 'CHAIN_HTTP_ERROR', { status: 503 }), { retry });
  });

  test('retry back-off runs on the injected clock', async () => {
    const clock = new ManualClock();
    await replay(exchanges(http, '503 then an answer'), async (c) => {
      const tip = c.tipHeight();
      while (clock.pendingTimers === 0) await new Promise((r) => setImmediate(r));
      clock.advance(10_000);
      assert.equal(await tip, 105);
    }, { clock, retry: { attempts: 2 } });
  });
});

describe('Esplora fixtures: events', () => {
  test("a block replaced at the tip between two polls: the poller's reorg, the new block, the spend again", async () => {
    const { A102, B102 } = reorg.hashes as Record<string, string>;
    const outpoint = reorg.outpoint as { txid: string; vout: number };
    const spendTxid = reorg.spendTxid as string;
    const events: ChainEvent[] = [];
    const progress: unknown[] = [];
    await replay(exchanges(reorg, 'a block replaced at the tip'), async (chain) => {
      chain.subscribe((e) => events.push(e)); // starts polling: the baseline poll
      chain.watchOutpoint(outpoint);
      await chain.poll();
      assert.deepEqual(events, [
        { type: 'spent', outpoint, spend: { txid: spendTxid, inputIndex: 0, blockHeight: 102 } },
        { type: 'block', height: 102, hash: A102 },
      ]);
      events.length = 0;
      await chain.poll();
      assert.deepEqual(events, [
        { type: 'reorg', forkHeight: 101, disconnected: [{ height: 102, hash: A102 }] },
        { type: 'block', height: 102, hash: B102 },
        { type: 'spent', outpoint, spend: { txid: spendTxid, inputIndex: 0, blockHeight: undefined } },
      ]);
    }, { onProgress: (p) => progress.push(p) });
    assert.deepEqual(progress, [], 'one block per poll: no progress reports');
  });
});

// ---- Against serveEsplora over a Simnet -------------------------------------------------------------

interface Rig {
  simnet: Simnet;
  server: EsploraServer;
  chain: EsploraChain;
  events: ChainEvent[];
}

async function withRig(fn: (rig: Rig) => Promise<void>, options: { server?: EsploraServerOptions; chain?: Partial<EsploraChainOptions> } = {}): Promise<void> {
  const simnet = new Simnet();
  const server = await serveEsplora(simnet, { network: 'regtest', ...options.server });
  const chain = new EsploraChain({ url: server.url, network: 'regtest', clock: new ManualClock(), retry: { attempts: 1 }, ...options.chain });
  const events: ChainEvent[] = [];
  const unsubscribe = chain.subscribe((e) => events.push(e));
  try {
    await chain.poll(); // the baseline
    await fn({ simnet, server, chain, events });
  } finally {
    unsubscribe();
    chain.close();
    await server.close();
  }
}

describe('Esplora adapter against serveEsplora', () => {
  test('nothing listening is CHAIN_UNREACHABLE', async () => {
    const server = createServer();
    const url = await listen(server);
    await stop(server);
    const chain = new EsploraChain({ url, network: 'regtest', retry: { attempts: 1 } });
    await rejectsWith(chain.tipHeight(), 'CHAIN_UNREACHABLE');
  });

  test("faults: 'hang' is CHAIN_TIMEOUT, 'garbage' CHAIN_BAD_RESPONSE, 'http503' CHAIN_HTTP_ERROR, 'drop' CHAIN_UNREACHABLE", async () => {
    await withRig(async ({ server, chain }) => {
      server.faults.next('hang');
      await rejectsWith(chain.tipHeight(), 'CHAIN_TIMEOUT');
      server.faults.next('garbage');
      await rejectsWith(chain.tipHeight(), 'CHAIN_BAD_RESPONSE');
      server.faults.next('garbage');
      await rejectsWith(chain.getSpend({ txid: 'ab'.repeat(32), vout: 0 }), 'CHAIN_BAD_RESPONSE');
      server.faults.next('http503');
      await rejectsWith(chain.tipHeight(), 'CHAIN_HTTP_ERROR', { status: 503 });
      server.faults.next('drop');
      await rejectsWith(chain.tipHeight(), 'CHAIN_UNREACHABLE');
      assert.equal(server.faults.pending, 0);
      assert.equal(await chain.tipHeight(), 0);
    }, { chain: { timeoutMs: 300 } });
  });

  test('transient faults are retried', async () => {
    await withRig(async ({ server, chain }) => {
      server.faults.next('http503');
      server.faults.next('drop');
      assert.equal(await chain.tipHeight(), 0);
      assert.equal(server.faults.pending, 0);
    }, { chain: { retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2, clock: systemClock } } });
  });

  test('a signed P2WPKH spend end to end: address coins, broadcast, spent events, confirmation, raw block', async () => {
    const keys = await P2wpkhKeys.create(0x5c);
    const progress: Array<{ height: number; tipHeight: number }> = [];
    await withRig(async ({ simnet, chain, events }) => {
      const address0 = chain.addressOf(keys.scripts[0]!);
      const address1 = chain.addressOf(keys.scripts[1]!);
      assert.deepEqual(await chain.addressUtxos(address0), []);

      const coin = await simnet.faucet(keys.scripts[0]!, 100_000n);
      const coinHeight = await simnet.tipHeight();
      assert.equal(await chain.tipHeight(), coinHeight);
      assert.deepEqual(await chain.addressUtxos(address0), [{ outpoint: coin, valueSat: 100_000n, blockHeight: coinHeight }]);
      assert.deepEqual(await chain.getUtxo(coin), { output: { valueSat: 100_000n, script: keys.scripts[0] }, blockHeight: coinHeight, confirmations: 1 });
      chain.watchOutpoint(coin);
      await chain.poll();
      assert.deepEqual(events, [{ type: 'block', height: coinHeight, hash: simnet.getBlock(coinHeight)!.hash }]);
      events.length = 0;

      // A relative lock not yet met, then the real spend.
      const locked = await keys.spend([{ outpoint: coin, valueSat: 100_000n, sequence: 5 }], [{ script: keys.scripts[1]!, valueSat: 99_000n }]);
      assert.deepEqual(await chain.broadcast(locked), { accepted: false, txid: txidOf(locked), code: 'non-BIP68-final', reason: 'non-BIP68-final' });
      const raw = await keys.spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: keys.scripts[1]!, valueSat: 99_000n }]);
      const txid = accepted(await chain.broadcast(raw));
      assert.equal(txid, txidOf(raw));
      assert.deepEqual(await chain.broadcast(raw), { accepted: true, txid }, 'again while in the mempool: the txid, as bitcoind answers');
      const conflict = await keys.spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: keys.scripts[1]!, valueSat: 98_000n }]);
      assert.equal(rejected(await chain.broadcast(conflict)).code, 'txn-mempool-conflict');
      const badSig = await keys.spend([{ outpoint: { txid, vout: 0 }, valueSat: 99_000n, signWith: 2 }], [{ script: keys.scripts[2]!, valueSat: 98_000n }]);
      assert.equal(rejected(await chain.broadcast(badSig)).code, 'mandatory-script-verify-flag-failed');

      assert.deepEqual(await chain.getSpend(coin), { txid, inputIndex: 0, blockHeight: undefined });
      assert.deepEqual(await chain.getTransaction(txid), { tx: raw, blockHeight: undefined, confirmations: 0 });
      assert.equal(await chain.getUtxo(coin), undefined);
      assert.deepEqual(await chain.addressUtxos(address0), []);
      assert.deepEqual(await chain.addressUtxos(address1), [{ outpoint: { txid, vout: 0 }, valueSat: 99_000n, blockHeight: undefined }]);
      await chain.poll();
      assert.deepEqual(events, [{ type: 'spent', outpoint: coin, spend: { txid, inputIndex: 0, blockHeight: undefined } }]);
      events.length = 0;

      await simnet.mine(2);
      await chain.poll();
      const height = coinHeight + 1;
      const hash = simnet.getBlock(height)!.hash;
      assert.deepEqual(events, [
        { type: 'spent', outpoint: coin, spend: { txid, inputIndex: 0, blockHeight: height } },
        { type: 'block', height, hash },
        { type: 'block', height: height + 1, hash: simnet.getBlock(height + 1)!.hash },
      ]);
      assert.deepEqual(progress, [{ height, tipHeight: height + 1 }, { height: height + 1, tipHeight: height + 1 }], 'progress while catching up');
      assert.deepEqual(await chain.getSpend(coin), { txid, inputIndex: 0, blockHeight: height });
      assert.deepEqual(await chain.getTransaction(txid), { tx: raw, blockHeight: height, confirmations: 2 });
      assert.deepEqual(await chain.getUtxo({ txid, vout: 0 }), { output: { valueSat: 99_000n, script: keys.scripts[1] }, blockHeight: height, confirmations: 2 });
      assert.deepEqual(await chain.addressUtxos(address1), [{ outpoint: { txid, vout: 0 }, valueSat: 99_000n, blockHeight: height }]);
      assert.equal(await chain.blockHash(height), hash);
      const rawBlock = await chain.rawBlock(hash);
      assert.deepEqual(rawBlock, simnet.rawBlock(hash));
      assert.ok(bytesToHex(rawBlock).includes(bytesToHex(raw)), 'the spend is in its block');
      assert.equal(rejected(await chain.broadcast(raw)).code, 'txn-already-known');
      await rejectsWith(chain.blockHash(height + 2), 'CHAIN_HTTP_ERROR', { status: 404 });
    }, { chain: { onProgress: (p) => progress.push(p) } });
  });

  test("fee estimates: the Simnet's feerate through sat/vB and back; none → fallback or CHAIN_NO_FEE_ESTIMATE", async () => {
    await withRig(async ({ simnet, chain }) => {
      assert.equal(await chain.estimateFeeratePerKw(6), 2500n);
      assert.equal(await chain.estimateFeeratePerKw(1), 2500n);
      simnet.setFeeratePerKw(2501n); // 10.004 sat/vB
      assert.equal(await chain.estimateFeeratePerKw(6), 2501n);
    });
    await withRig(async ({ chain }) => {
      await rejectsWith(chain.estimateFeeratePerKw(6), 'CHAIN_NO_FEE_ESTIMATE');
    }, { server: { feeEstimates: 'none' } });
    await withRig(async ({ chain }) => {
      assert.equal(await chain.estimateFeeratePerKw(6), 5000n);
    }, { server: { feeEstimates: 'none' }, chain: { fallbackFeeratePerKw: 5000n } });
  });

  test('the server answers as Esplora: content types, 404 texts, unknown txids, RPC errors', async () => {
    await withRig(async ({ server, simnet }) => {
      const get = async (path: string, init?: RequestInit) => {
        const res = await fetch(server.url + path, init);
        return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
      };
      assert.deepEqual(await get('/blocks/tip/height'), { status: 200, type: 'text/plain', body: '0' });
      assert.deepEqual(await get(`/tx/${'ab'.repeat(32)}/hex`), { status: 404, type: 'text/plain', body: 'Transaction not found' });
      assert.deepEqual(await get(`/tx/${'ab'.repeat(32)}/status`), { status: 200, type: 'application/json', body: '{"confirmed":false}' });
      assert.deepEqual(await get(`/tx/${'ab'.repeat(32)}/outspend/0`), { status: 200, type: 'application/json', body: '{"spent":false}' });
      assert.deepEqual(await get('/block-height/1'), { status: 404, type: 'text/plain', body: 'Block not found' });
      assert.equal((await get('/block-height/x')).status, 400);
      assert.equal((await get('/address/notanaddress/utxo')).status, 400);
      assert.equal((await get(`/block/${simnet.getBlock(0)!.hash}/raw`)).type, 'application/octet-stream');
      assert.deepEqual(await get('/tx', { method: 'POST', body: 'zz' }), {
        status: 400, type: 'text/plain', body: 'sendrawtransaction RPC error: {"code":-22,"message":"TX decode failed. Make sure the tx has at least one input."}',
      });
      assert.match((await get('/fee-estimates')).body, /^\{"2":10,"3":10,.*"1008":10\}$/);
      assert.equal((await get('/nothing')).status, 404);
    });
  });
});

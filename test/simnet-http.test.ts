/**
 * The simnet over loopback HTTP: serveSimnet + SimnetClient answer exactly as the in-process Simnet,
 * events arrive through the ChainPoller with the Simnet's semantics, and every failure is a typed
 * ChainClientError (or an HTTP error body) rather than a crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Transaction } from 'bitcoinjs-lib';
import { Simnet, type BroadcastResult, type ChainEvent, type OutPoint, type SpendInfo } from '../src/chain/simnet/index.js';
import { serveSimnet, type SimnetServer } from '../src/chain/simnet/server.js';
import { ChainClientError, SimnetClient } from '../src/chain/simnet-client.js';
import { ChainPoller, type PollableChain } from '../src/chain/poller.js';
import { ManualClock } from '../src/clock.js';
import { hexToBytes, reverseBytes } from '../src/bytes.js';
import { SoftwareSigner } from '../src/signer/software.js';
import { encodeScriptSignature, p2wpkhOutput, p2wpkhScriptCode } from '../src/onchain/script.js';

const signer = SoftwareSigner.fromSeed(new Uint8Array(32).fill(7));
const pubkeys = await Promise.all([0, 1].map((index) => signer.getPublicKey({ family: 'wallet', index })));
const script0 = p2wpkhOutput(pubkeys[0]!);
const script1 = p2wpkhOutput(pubkeys[1]!);

/** A signed P2WPKH spend of a 100k-sat coin of key 0, paying `valueSat` to key 1. */
async function spend(outpoint: OutPoint, opts: { valueSat?: bigint; signWith?: number } = {}): Promise<Uint8Array> {
  const tx = new Transaction();
  tx.version = 2;
  tx.addInput(reverseBytes(hexToBytes(outpoint.txid)), outpoint.vout, 0xfffffffd);
  tx.addOutput(script1, opts.valueSat ?? 99_000n);
  const sig = await signer.signInput({
    key: { family: 'wallet', index: opts.signWith ?? 0 },
    tx: tx.toBuffer(),
    inputIndex: 0,
    scriptCode: p2wpkhScriptCode(pubkeys[0]!),
    valueSat: 100_000n,
  });
  tx.setWitness(0, [encodeScriptSignature(sig), pubkeys[0]!]);
  return tx.toBuffer();
}

/** Run `body` against a served Simnet and a client, closing both afterwards. */
async function withServer<T>(
  body: (ctx: { simnet: Simnet; server: SimnetServer; client: SimnetClient }) => Promise<T>,
  options: { autoMine?: { intervalMs: number }; client?: ConstructorParameters<typeof SimnetClient>[1] } = {},
): Promise<T> {
  const simnet = new Simnet();
  const server = await serveSimnet(simnet, options.autoMine ? { autoMine: options.autoMine } : {});
  const client = new SimnetClient(server.url, options.client);
  try {
    return await body({ simnet, server, client });
  } finally {
    client.close();
    await server.close();
  }
}

/** Wait until `condition` holds, polling every 10 ms; fail after a generous bound (no timing asserted). */
async function waitFor(condition: () => boolean | Promise<boolean>, what: string, boundMs = 5000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function rejectsWith(promise: Promise<unknown>, code: ChainClientError['code'], extra: Partial<ChainClientError> = {}): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof ChainClientError, `expected ChainClientError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const [key, value] of Object.entries(extra)) assert.equal(e[key as keyof ChainClientError], value, key);
    return true;
  });
}

/** Both Simnet and SimnetClient fit this; utxosForScript and mempool are synchronous on the Simnet. */
type TestChain = Pick<Simnet, 'tipHeight' | 'broadcast' | 'getTransaction' | 'getUtxo' | 'getSpend' | 'estimateFeeratePerKw' | 'mine' | 'faucet' | 'faucetToPubkey'> & {
  utxosForScript(script: Uint8Array): ReturnType<Simnet['utxosForScript']> | Promise<ReturnType<Simnet['utxosForScript']>>;
  mempool(): string[] | Promise<string[]>;
};

/** The same actions on any chain; the log of every answer. */
async function exercise(chain: TestChain): Promise<{ log: unknown[]; results: BroadcastResult[] }> {
  const log: unknown[] = [await chain.tipHeight(), await chain.estimateFeeratePerKw(6)];
  const coin = await chain.faucet(script0, 100_000n);
  const other = await chain.faucetToPubkey(pubkeys[0]!, 100_000n);
  log.push(coin, other, await chain.getUtxo(coin), await chain.getTransaction(coin.txid), await chain.utxosForScript(script0));

  const raw = await spend(coin);
  const results = [
    await chain.broadcast(raw),
    await chain.broadcast(raw), // txn-already-in-mempool
    await chain.broadcast(await spend(coin, { valueSat: 98_000n })), // txn-mempool-conflict
    await chain.broadcast(await spend(other, { signWith: 1 })), // script failure, with Core's message
    await chain.broadcast(await spend({ txid: 'ab'.repeat(32), vout: 0 })), // bad-txns-inputs-missingorspent
    await chain.broadcast(new Uint8Array([1, 2, 3])), // tx-decode-failed, txid ''
  ];
  const txid = results[0]!.txid;
  log.push(results, await chain.mempool(), await chain.getSpend(coin), await chain.getUtxo(coin));
  log.push(await chain.getUtxo({ txid, vout: 0 }), await chain.getTransaction(txid), await chain.utxosForScript(script1));

  log.push(await chain.mine(2), await chain.mine(0), await chain.tipHeight(), await chain.mempool());
  log.push(await chain.getSpend(coin), await chain.getSpend(other), await chain.getTransaction(txid.toUpperCase()));
  log.push(await chain.getUtxo({ txid, vout: 0 }), await chain.getTransaction('cd'.repeat(32)), await chain.utxosForScript(script1));
  log.push(await chain.broadcast(raw)); // txn-already-known
  return { log, results };
}

test('every method answers over HTTP exactly as the Simnet does in process', async () => {
  const direct = await exercise(new Simnet());
  const [accepted, inMempool, conflict, badSig, missing, undecodable] = direct.results;
  assert.equal(accepted?.accepted, true);
  assert.deepEqual([inMempool, conflict, missing, undecodable].map((r) => r?.accepted === false && r.code), [
    'txn-already-in-mempool', 'txn-mempool-conflict', 'bad-txns-inputs-missingorspent', 'tx-decode-failed',
  ]);
  assert.deepEqual(badSig?.accepted === false && [badSig.code, badSig.reason], [
    'mandatory-script-verify-flag-failed', 'mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)',
  ]);

  await withServer(async ({ simnet, client }) => {
    const remote = await exercise(client);
    // The Simnet is deterministic: the same actions give the same txids, hashes and answers.
    assert.deepEqual(remote, direct);
    for (let height = 0; height <= (await simnet.tipHeight()); height++) {
      assert.equal(await client.blockHash(height), simnet.getBlock(height)!.hash);
    }
    await rejectsWith(client.blockHash(99), 'CHAIN_HTTP_ERROR', { status: 400, remoteCode: 'BAD_FIELD' });
    // The Simnet's own refusal (an amount above 21e6 BTC) comes back as a 400.
    await rejectsWith(client.faucet(script0, 2_100_000_000_000_001n), 'CHAIN_HTTP_ERROR', { status: 400, remoteCode: 'BAD_FIELD' });
    // Misuse is caught before any request, with the Simnet's error classes.
    await assert.rejects(client.getSpend({ txid: 'xyz', vout: 0 }), TypeError);
    await assert.rejects(client.estimateFeeratePerKw(0), RangeError);
    await assert.rejects(client.mine(-1), RangeError);
    assert.throws(() => client.watchOutpoint({ txid: 'ab'.repeat(32), vout: -1 }), TypeError);
  });
});

test('events through the client: spent unconfirmed, spent confirmed, one block event per height', async () => {
  // A ManualClock that never advances: only the first (baseline) poll and our poll() calls run.
  await withServer(async ({ simnet, client }) => {
    const coin = await client.faucetToPubkey(pubkeys[0]!, 100_000n);
    const unwatched = await client.faucetToPubkey(pubkeys[0]!, 100_000n);
    const events: ChainEvent[] = [];
    client.subscribe((e) => events.push(e));
    client.watchOutpoint(coin);
    const { txid } = await client.broadcast(await spend(coin)); // waits for the baseline poll
    await client.broadcast(await spend(unwatched));
    await client.poll();
    assert.deepEqual(events, [{ type: 'spent', outpoint: coin, spend: { txid, inputIndex: 0, blockHeight: undefined } }]);
    await client.poll();
    assert.equal(events.length, 1, 'an unchanged spend is not reported again');

    const hashes = await client.mine(3);
    await client.poll();
    assert.deepEqual(events.slice(1), [
      { type: 'spent', outpoint: coin, spend: { txid, inputIndex: 0, blockHeight: 3 } },
      { type: 'block', height: 3, hash: hashes[0] },
      { type: 'block', height: 4, hash: hashes[1] },
      { type: 'block', height: 5, hash: hashes[2] },
    ]);
    assert.deepEqual(hashes, [3, 4, 5].map((h) => simnet.getBlock(h)!.hash));
    await client.mine();
    await client.poll();
    assert.deepEqual(events.at(-1), { type: 'block', height: 6, hash: simnet.getBlock(6)!.hash });
    assert.equal(events.length, 6, 'a confirmed spend is reported once');
  }, { client: { clock: new ManualClock() } });
});

test('autoMine confirms a broadcast by itself, and polling delivers the events by itself', async () => {
  await withServer(async ({ simnet, client }) => {
    const coin = await client.faucetToPubkey(pubkeys[0]!, 100_000n);
    const start = await client.tipHeight();
    const events: ChainEvent[] = [];
    client.watchOutpoint(coin);
    client.subscribe((e) => events.push(e));
    const { txid } = await client.broadcast(await spend(coin));
    const confirmed = () => events.some((e) => e.type === 'spent' && e.spend.blockHeight !== undefined);
    await waitFor(confirmed, 'the confirmed spend event');
    assert.equal((await client.getTransaction(txid))?.confirmations !== 0, true);
    assert.deepEqual(await client.mempool(), []);
    // Nothing else was in the mempool, so exactly one block was mined for it.
    assert.equal(await client.getSpend(coin).then((s) => s?.blockHeight), start + 1);
    await waitFor(() => events.some((e) => e.type === 'block'), 'the block event');
    assert.deepEqual(events.find((e) => e.type === 'block'), { type: 'block', height: start + 1, hash: simnet.getBlock(start + 1)!.hash });
  }, { autoMine: { intervalMs: 30 }, client: { pollIntervalMs: 20 } });
});

test('the server answers bad requests with an HTTP error and a JSON {error: {code, message}}', async () => {
  await withServer(async ({ server, client }) => {
    const post = async (path: string, body: NonNullable<RequestInit['body']>, init: RequestInit = {}) => {
      const res = await fetch(`${server.url}/${path}`, { method: 'POST', body, ...init });
      return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
    };
    const code = async (path: string, body: NonNullable<RequestInit['body']>, init?: RequestInit) => {
      const r = await post(path, body, init);
      assert.equal(typeof r.body.error?.message, 'string');
      return [r.status, r.body.error?.code];
    };
    assert.deepEqual(await code('nope', '{}'), [404, 'NOT_FOUND']);
    assert.deepEqual(await code('constructor', '{}'), [404, 'NOT_FOUND']);
    assert.deepEqual(await code('tipHeight', '', { method: 'GET', body: null }), [405, 'METHOD_NOT_ALLOWED']);
    assert.deepEqual(await code('tipHeight', '{"oops'), [400, 'BAD_JSON']);
    assert.deepEqual(await code('tipHeight', '[1]'), [400, 'BAD_JSON']);
    assert.deepEqual(await code('getUtxo', JSON.stringify({ outpoint: { txid: 'zz', vout: 0 } })), [400, 'BAD_FIELD']);
    assert.deepEqual(await code('getUtxo', JSON.stringify({ outpoint: { txid: 'ab'.repeat(32), vout: 1.5 } })), [400, 'BAD_FIELD']);
    assert.deepEqual(await code('faucet', JSON.stringify({ scriptHex: '0014', valueSat: 1000 })), [400, 'BAD_FIELD']);
    assert.deepEqual(await code('broadcast', JSON.stringify({ txHex: 'abc' })), [400, 'BAD_FIELD']);
    assert.deepEqual(await code('mine', JSON.stringify({ count: 1001 })), [400, 'BAD_FIELD']);
    // Over 1 MiB: refused whether the length is declared or the body is chunked.
    const oversize = JSON.stringify({ txHex: '00'.repeat(600 * 1024) });
    assert.deepEqual(await code('broadcast', oversize), [413, 'BODY_TOO_LARGE']);
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 20; i++) controller.enqueue(new Uint8Array(64 * 1024).fill(0x20));
        controller.close();
      },
    });
    assert.deepEqual(await code('broadcast', chunked, { duplex: 'half' } as RequestInit), [413, 'BODY_TOO_LARGE']);
    // An empty body is {} and the server is still serving.
    assert.deepEqual(await post('tipHeight', ''), { status: 200, body: { result: 0 } });
    assert.equal(await client.tipHeight(), 0);
    await rejectsWith(new SimnetClient(`${server.url}/v2`).tipHeight(), 'CHAIN_HTTP_ERROR', { status: 404, remoteCode: 'NOT_FOUND' });
  });
});

test('a server that is down is CHAIN_UNREACHABLE; one that does not answer is CHAIN_TIMEOUT', async () => {
  const server = await serveSimnet(new Simnet());
  await server.close();
  await rejectsWith(new SimnetClient(server.url).tipHeight(), 'CHAIN_UNREACHABLE');

  const silent = await fakeServer(() => {}); // accepts, never answers
  try {
    await rejectsWith(new SimnetClient(silent.url, { timeoutMs: 200 }).tipHeight(), 'CHAIN_TIMEOUT');
  } finally {
    await silent.close();
  }
});

test('malformed answers are CHAIN_BAD_RESPONSE, never a crash or a wrong value', async () => {
  const answers: Record<string, string> = {
    tipHeight: 'not json',
    getTransaction: JSON.stringify({ result: { txHex: 'ABC', blockHeight: null, confirmations: 0 } }),
    getUtxo: JSON.stringify({ result: { output: { valueSat: 100000, scriptHex: '00' }, blockHeight: null, confirmations: 0 } }),
    getSpend: JSON.stringify({ result: { txid: 'ab'.repeat(32), inputIndex: -1, blockHeight: null } }),
    estimateFeeratePerKw: JSON.stringify({ result: '1e3' }),
    mine: JSON.stringify({ result: ['ab'.repeat(32)] }), // asked for 2
    broadcast: JSON.stringify({ result: { accepted: false, txid: '', code: 'made-up', reason: 'x' } }),
    mempool: JSON.stringify({ results: [] }),
    blockHash: JSON.stringify({ result: 'ab'.repeat(31) }),
  };
  const fake = await fakeServer((req, res) => {
    const body = answers[req.url!.slice(1)] ?? '{}';
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  const client = new SimnetClient(fake.url);
  const outpoint = { txid: 'ab'.repeat(32), vout: 0 };
  try {
    await rejectsWith(client.tipHeight(), 'CHAIN_BAD_RESPONSE');
    await rejectsWith(client.getTransaction('ab'.repeat(32)), 'CHAIN_BAD_RESPONSE');
    await rejectsWith(client.getUtxo(outpoint), 'CHAIN_BAD_RESPONSE');
    await rejectsWith(client.getSpend(outpoint), 'CHAIN_BAD_RESPONSE');
    await rejectsWith(client.estimateFeeratePerKw(1), 'CHAIN_BAD_RESPONSE');
    await rejectsWith(client.mine(2), 'CHAIN_BAD_RESPONSE');
    await rejectsWith(client.broadcast(new Uint8Array(1)), 'CHAIN_BAD_RESPONSE');
    await rejectsWith(client.mempool(), 'CHAIN_BAD_RESPONSE');
    await rejectsWith(client.blockHash(1), 'CHAIN_BAD_RESPONSE');
  } finally {
    client.close();
    await fake.close();
  }
});

test('only http:// URLs, and only loopback hosts unless allowRemote', async () => {
  assert.throws(() => new SimnetClient('https://127.0.0.1:1'), TypeError);
  assert.throws(() => new SimnetClient('not a url'), TypeError);
  await assert.rejects(serveSimnet(new Simnet(), { host: '0.0.0.0' }), RangeError);
  await assert.rejects(serveSimnet(new Simnet(), { host: '192.168.1.10' }), RangeError);
});

test('the client\'s import graph stays clear of src/chain/simnet/ and bitcore-lib', () => {
  // bitcore-lib is loaded lazily even by the Simnet, so a runtime probe would prove nothing:
  // walk the static imports (type-only ones too) instead.
  const graph = (entry: string): Set<string> => {
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const [, spec] of source.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        if (spec!.startsWith('.')) visit(fileURLToPath(new URL(spec!.replace(/\.js$/, '.ts'), pathToFileURL(file))));
        else seen.add(spec!);
      }
    };
    visit(fileURLToPath(new URL(entry, import.meta.url)));
    return seen;
  };
  const offending = (entry: string) => [...graph(entry)].filter((f) => f.includes('/src/chain/simnet/') || f.includes('bitcore'));
  assert.deepEqual(offending('../src/chain/simnet-client.ts'), []);
  assert.notDeepEqual(offending('../src/chain/simnet/server.ts'), [], 'the walk does see the simnet from the server');
});

// ---- ChainPoller with a ManualClock and a fake chain ---------------------------------------------

class FakeChain implements PollableChain {
  tip = 0;
  readonly spends = new Map<string, SpendInfo>();
  failure: Error | undefined;
  async tipHeight(): Promise<number> {
    if (this.failure) throw this.failure;
    return this.tip;
  }
  async blockHash(height: number): Promise<string> {
    return height.toString(16).padStart(64, '0');
  }
  async getSpend(outpoint: OutPoint): Promise<SpendInfo | undefined> {
    return this.spends.get(`${outpoint.txid}:${outpoint.vout}`);
  }
}

const op = (n: number): OutPoint => ({ txid: n.toString(16).padStart(2, '0').repeat(32), vout: n });
const block = (height: number): ChainEvent => ({ type: 'block', height, hash: height.toString(16).padStart(64, '0') });
/** Let every pending promise chain run (the fake chain does no I/O). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('ChainPoller: one block event per height when the tip jumps; the first poll is only a baseline', async () => {
  const chain = new FakeChain();
  chain.tip = 10;
  const poller = new ChainPoller(chain, { clock: new ManualClock() });
  const events: ChainEvent[] = [];
  poller.subscribe((e) => events.push(e));
  await poller.poll();
  assert.deepEqual(events, []);
  chain.tip = 15;
  await poller.poll();
  assert.deepEqual(events, [11, 12, 13, 14, 15].map(block));
  await poller.poll();
  assert.equal(events.length, 5);
});

test('ChainPoller: a spend first seen confirmed is reported once, before its block', async () => {
  const chain = new FakeChain();
  const poller = new ChainPoller(chain, { clock: new ManualClock() });
  const events: ChainEvent[] = [];
  poller.subscribe((e) => events.push(e));
  poller.watchOutpoint(op(1));
  poller.watchOutpoint(op(2));
  await poller.poll();
  chain.tip = 3;
  const confirmed: SpendInfo = { txid: 'cc'.repeat(32), inputIndex: 1, blockHeight: 2 };
  const unconfirmed: SpendInfo = { txid: 'dd'.repeat(32), inputIndex: 0, blockHeight: undefined };
  chain.spends.set(`${op(1).txid}:1`, confirmed);
  chain.spends.set(`${op(2).txid}:2`, unconfirmed);
  await poller.poll();
  assert.deepEqual(events, [
    block(1),
    { type: 'spent', outpoint: op(1), spend: confirmed },
    block(2),
    block(3),
    { type: 'spent', outpoint: op(2), spend: unconfirmed },
  ]);
  chain.tip = 4;
  chain.spends.set(`${op(2).txid}:2`, { ...unconfirmed, blockHeight: 4 });
  await poller.poll();
  await poller.poll();
  assert.deepEqual(events.slice(5), [{ type: 'spent', outpoint: op(2), spend: { ...unconfirmed, blockHeight: 4 } }, block(4)]);
});

test('ChainPoller: a throwing listener stops neither the others nor the poller', async () => {
  const chain = new FakeChain();
  const errors: unknown[] = [];
  const clock = new ManualClock();
  const poller = new ChainPoller(chain, { clock, intervalMs: 100, onError: (e) => errors.push(e) });
  poller.subscribe(() => {
    throw new Error('listener bug');
  });
  const heights: number[] = [];
  poller.subscribe((e) => heights.push(e.type === 'block' ? e.height : -1));
  poller.start();
  await settle();
  chain.tip = 2;
  clock.advance(100);
  await settle();
  chain.tip = 3;
  clock.advance(100);
  await settle();
  assert.deepEqual(heights, [1, 2, 3]);
  assert.deepEqual(errors.map((e) => (e as Error).message), ['listener bug', 'listener bug', 'listener bug']);
  poller.stop();
  assert.equal(clock.pendingTimers, 0);
});

test('ChainPoller: a failed poll goes to onError, loses nothing, and the next interval recovers', async () => {
  const chain = new FakeChain();
  const errors: unknown[] = [];
  const clock = new ManualClock();
  const poller = new ChainPoller(chain, { clock, intervalMs: 1000, onError: (e) => errors.push(e) });
  const events: ChainEvent[] = [];
  poller.subscribe((e) => events.push(e));
  poller.start();
  poller.start(); // idempotent: still one timer
  await settle();
  assert.equal(clock.pendingTimers, 1);
  chain.tip = 2;
  chain.failure = new Error('ECONNREFUSED');
  clock.advance(1000);
  await settle();
  assert.deepEqual(errors, [chain.failure]);
  assert.deepEqual(events, []);
  assert.equal(clock.pendingTimers, 1, 'retried at the next interval');
  await assert.rejects(poller.poll(), /ECONNREFUSED/); // a direct poll() reports to its caller
  chain.failure = undefined;
  clock.advance(1000);
  await settle();
  assert.deepEqual(events, [block(1), block(2)]);
  assert.equal(errors.length, 1);
  poller.stop();
  clock.advance(5000);
  await settle();
  assert.equal(clock.pendingTimers, 0);
});

async function fakeServer(handler: Parameters<typeof createServer>[1] & {}): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * BitcoindChain: the ChainSource port over Bitcoin Core's JSON-RPC, using only calls every Core since
 * 0.17 answers (and most Core-compatible nodes): getblockchaininfo, getblockcount, getblockhash,
 * getblock <hash> 0, getrawtransaction <txid> false [blockhash], sendrawtransaction, gettxout,
 * estimatesmartfee, and generatetoaddress on regtest. Blocks and transactions are fetched raw and parsed
 * here with bitcoinjs-lib; every field of every answer is checked (CHAIN_BAD_RESPONSE names the field).
 *
 * Core has no spend index and we do not use getrawmempool, so spends are found three ways:
 *   1. an in-memory index filled by connectBlock (the ChainPoller calls it for each new block): for
 *      watched outpoints and outpoints our own broadcasts spend, who spent them in which block; for our
 *      broadcasts and the spenders found, the block that confirmed them. disconnectBlock undoes a block;
 *   2. our own broadcasts, while their spender is still known to the node (mempool);
 *   3. a bounded scan back from the tip (at most maxRescanBlocks, and never below the block that
 *      created the outpoint), remembered so the next scan reads only newer blocks.
 * Hence a spend by someone else is seen once it confirms: without getrawmempool there is no view of
 * other people's mempool transactions.
 *
 * Without -txindex, getrawtransaction finds confirmed transactions only given their block, so
 * getTransaction finds a confirmed tx when the index knows its block (ours and the spenders found) or
 * the node has -txindex; its height comes from the index, from gettxout of one of its outputs, or from a
 * bounded scan.
 *
 * @example
 * const chain = await BitcoindChain.connect({ url: 'http://127.0.0.1:8332', auth: { cookieFile }, network: 'mainnet' });
 * chain.subscribe((event) => node.chainEvent(event));
 * chain.watchOutpoint(fundingOutpoint);
 * // …
 * chain.close();
 */
import { Transaction } from 'bitcoinjs-lib';
import type {
  BroadcastResult, ChainEvent, ChainSource, OutPoint, SpendInfo, TxStatus, UtxoStatus,
} from '../port.js';
import { ChainPoller, type PollableChain } from '../poller.js';
import { ChainClientError, badResponse } from '../errors.js';
import { object, outpointArg, parseCheckedBlock, parseTransaction, txidArg, uint } from '../validate.js';
import { rejectionFromNodeError } from '../node-errors.js';
import { BitcoindRpc, BitcoindRpcError, type BitcoindRpcOptions } from './rpc.js';
import { bytesToHex, hexToBytes } from '../../bytes.js';
import { hashToTxid } from '../../onchain/tx.js';
import type { Clock } from '../../clock.js';

export type BitcoindNetwork = 'regtest' | 'signet' | 'testnet' | 'mainnet';

export interface BitcoindChainOptions extends BitcoindRpcOptions {
  /** The network expected; connect fails with CHAIN_WRONG_NETWORK if the node is on another. */
  network?: BitcoindNetwork;
  /** Delay between event polls; default 5000 ms. */
  pollIntervalMs?: number;
  /** Used when the node has no fee estimate (a fresh node, regtest); without it CHAIN_NO_FEE_ESTIMATE. */
  fallbackFeeratePerKw?: bigint;
  /** Deepest scan back from the tip looking for a spend or a transaction; default 2016 blocks. */
  maxRescanBlocks?: number;
  /**
   * getTransaction of a confirmed transaction the node cannot return (no -txindex) and we never saw:
   * how many recent blocks to read looking for it; default 144 (a day). 0 disables.
   */
  maxTxScanBlocks?: number;
  /** Failed background polls (retried at the next interval) and exceptions from listeners. */
  onError?: (error: unknown) => void;
  /** Each block read while indexing or scanning. */
  onProgress?: (progress: { height: number; tipHeight: number }) => void;
  /** Drives polling and retry back-off; default systemClock. */
  clock?: Clock;
}

export interface BitcoindBlock {
  height: number;
  hash: string;
  /** Parsed from the node's raw block; shared with the cache, so treat them as read-only. */
  txs: Transaction[];
}

/** BOLT 2's floor for feerate_per_kw: 253 sat/kw is 1012 sat/kvB, just above Core's default min relay fee. */
const MIN_FEERATE_PER_KW = 253n;
/** Core's estimatesmartfee horizon (ParseConfirmTarget refuses more). */
const MAX_CONF_TARGET = 1008;
/** Outputs tried with gettxout when locating a transaction. */
const MAX_OUTPUTS_PROBED = 8;
const BLOCK_CACHE_SIZE = 2;
const NO_SUCH_TX = -5; // RPC_INVALID_ADDRESS_OR_KEY: unknown tx, block or address

const CHAIN_NAMES: Record<string, BitcoindNetwork> = {
  main: 'mainnet',
  test: 'testnet',
  testnet4: 'testnet',
  signet: 'signet',
  regtest: 'regtest',
};

interface Place {
  height: number;
  hash: string;
}

interface IndexedSpend extends Place {
  txid: string;
  inputIndex: number;
}

export class BitcoindChain implements ChainSource, PollableChain {
  readonly #rpc: BitcoindRpc;
  readonly #network: BitcoindNetwork;
  readonly #fallbackFeeratePerKw: bigint | undefined;
  readonly #maxRescanBlocks: number;
  readonly #maxTxScanBlocks: number;
  readonly #onProgress: ((p: { height: number; tipHeight: number }) => void) | undefined;
  readonly #poller: ChainPoller;
  /** Outpoints whose spends connectBlock indexes: watched ones. */
  readonly #watched = new Set<string>();
  /** Our accepted broadcasts: raw bytes and the tip when sent (it cannot have confirmed at or below it). */
  readonly #ours = new Map<string, { raw: Uint8Array; sentAtHeight: number }>();
  /** Outpoints our broadcasts spend → the spender. */
  readonly #ourSpends = new Map<string, { txid: string; inputIndex: number }>();
  /** Confirmed spends found (by connectBlock or a scan), keyed "txid:vout". */
  readonly #spends = new Map<string, IndexedSpend>();
  /** Where our broadcasts and the spenders found confirmed. */
  readonly #confirmed = new Map<string, Place>();
  /** Scans that found nothing: for a key ("s:txid:vout" or "t:txid"), every block at or below this height was read. */
  readonly #scannedTo = new Map<string, number>();
  readonly #blockCache: BitcoindBlock[] = [];
  #lastTip = 0;

  private constructor(rpc: BitcoindRpc, network: BitcoindNetwork, options: BitcoindChainOptions) {
    this.#rpc = rpc;
    this.#network = network;
    this.#fallbackFeeratePerKw = options.fallbackFeeratePerKw;
    this.#maxRescanBlocks = options.maxRescanBlocks ?? 2016;
    this.#maxTxScanBlocks = Math.min(options.maxTxScanBlocks ?? 144, this.#maxRescanBlocks);
    this.#onProgress = options.onProgress;
    this.#poller = new ChainPoller(this, {
      intervalMs: options.pollIntervalMs ?? 5000,
      ...(options.clock && { clock: options.clock }),
      ...(options.onError && { onError: options.onError }),
    });
  }

  /**
   * Check the node answers and is on `options.network` (getblockchaininfo), then return the adapter.
   * Polling starts with the first subscribe or watchOutpoint.
   */
  static async connect(options: BitcoindChainOptions): Promise<BitcoindChain> {
    if (!options || typeof options !== 'object') throw new TypeError('"options" expected an object');
    if (options.network !== undefined && !Object.values(CHAIN_NAMES).includes(options.network)) {
      throw new TypeError('"network" expected regtest, signet, testnet or mainnet');
    }
    if (options.fallbackFeeratePerKw !== undefined && (typeof options.fallbackFeeratePerKw !== 'bigint' || options.fallbackFeeratePerKw < MIN_FEERATE_PER_KW)) {
      throw new RangeError(`"fallbackFeeratePerKw" expected a bigint >= ${MIN_FEERATE_PER_KW}`);
    }
    const maxRescan = options.maxRescanBlocks ?? 2016;
    if (!Number.isSafeInteger(maxRescan) || maxRescan < 0) throw new RangeError('"maxRescanBlocks" expected an integer >= 0');
    const maxTxScan = options.maxTxScanBlocks ?? 144;
    if (!Number.isSafeInteger(maxTxScan) || maxTxScan < 0) throw new RangeError('"maxTxScanBlocks" expected an integer >= 0');
    const pollIntervalMs = options.pollIntervalMs ?? 5000;
    if (!Number.isFinite(pollIntervalMs) || pollIntervalMs < 0) throw new RangeError('"pollIntervalMs" expected a number >= 0');
    const rpc = new BitcoindRpc(options);
    const info = object(await rpc.call('getblockchaininfo'), 'getblockchaininfo');
    if (typeof info.chain !== 'string') throw badResponse('getblockchaininfo.chain', 'a string');
    const network = Object.hasOwn(CHAIN_NAMES, info.chain) ? CHAIN_NAMES[info.chain] : undefined;
    if (options.network !== undefined && network !== options.network) {
      throw new ChainClientError('CHAIN_WRONG_NETWORK', `bitcoind at ${rpc.origin} is on ${JSON.stringify(info.chain.slice(0, 20))}, not ${options.network}`);
    }
    if (!network) throw badResponse('getblockchaininfo.chain', 'main, test, testnet4, signet or regtest');
    const chain = new BitcoindChain(rpc, network, options);
    chain.#lastTip = uint(info.blocks, 'getblockchaininfo.blocks');
    return chain;
  }

  /** The node's network (from getblockchaininfo). */
  get network(): BitcoindNetwork {
    return this.#network;
  }

  // ---- ChainSource -------------------------------------------------------------------------------

  async tipHeight(): Promise<number> {
    const tip = uint(await this.#rpc.call('getblockcount'), 'getblockcount');
    this.#lastTip = tip;
    return tip;
  }

  async broadcast(tx: Uint8Array): Promise<BroadcastResult> {
    if (!(tx instanceof Uint8Array)) return { accepted: false, txid: '', code: 'tx-decode-failed', reason: 'TX decode failed' };
    await this.#poller.baseline;
    const raw = Uint8Array.from(tx);
    let parsed: Transaction | undefined;
    try {
      parsed = Transaction.fromBuffer(raw);
    } catch {
      parsed = undefined; // the node decides; it will answer -22
    }
    const localTxid = parsed?.getId() ?? '';
    const sentAtHeight = this.#lastTip;
    let answer: unknown;
    try {
      answer = await this.#rpc.call('sendrawtransaction', [bytesToHex(raw)]);
    } catch (e) {
      if (e instanceof BitcoindRpcError && e.rpcCode !== undefined) {
        const rejection = rejectionFromNodeError(e.rpcCode, e.rpcMessage);
        if (rejection) return { accepted: false, txid: localTxid, ...rejection };
      }
      throw e;
    }
    const txid = hash(answer, 'sendrawtransaction');
    if (!parsed || txid !== localTxid) throw badResponse('sendrawtransaction', `the txid of the transaction sent (${localTxid || 'undecodable'})`);
    this.#remember(txid, raw, parsed, sentAtHeight);
    return { accepted: true, txid };
  }

  async getTransaction(txid: string): Promise<TxStatus | undefined> {
    const id = txidArg(txid);
    let raw: Uint8Array | undefined;
    const place = this.#confirmed.get(id);
    if (place) raw = await this.#rawTransaction(id, place.hash);
    raw ??= await this.#rawTransaction(id);
    const nodeHasIt = raw !== undefined;
    raw ??= this.#ours.get(id)?.raw; // ours, confirmed but not indexed yet and no -txindex: locate it below
    if (!raw) {
      // Someone else's, confirmed, and no -txindex: only reading recent blocks can find it.
      const found = await this.#scan(`t:${id}`, this.#maxTxScanBlocks, (block) => {
        const tx = block.txs.find((t) => t.getId() === id);
        return tx && { place: { height: block.height, hash: block.hash }, raw: Uint8Array.from(tx.toBuffer()) };
      });
      if (!found) return undefined;
      this.#confirmed.set(id, found.place);
      const tip = await this.tipHeight();
      return { tx: found.raw, blockHeight: found.place.height, confirmations: Math.max(0, tip - found.place.height + 1) };
    }
    const tx = parseTransaction(raw, 'getrawtransaction');
    if (tx.getId() !== id) throw badResponse('getrawtransaction', `the transaction ${id}`);
    const located = this.#confirmed.get(id) ?? (await this.#locate(id, tx));
    if (located === 'mempool') {
      // Our own tx that the node does not have and that we could not find in a block: evicted or replaced.
      if (!nodeHasIt) return undefined;
      return { tx: raw, blockHeight: undefined, confirmations: 0 };
    }
    const tip = await this.tipHeight();
    return { tx: raw, blockHeight: located.height, confirmations: Math.max(0, tip - located.height + 1) };
  }

  async getUtxo(outpoint: OutPoint): Promise<UtxoStatus | undefined> {
    const { txid, vout } = outpointArg(outpoint);
    for (let attempt = 0; ; attempt++) {
      const answer = await this.#rpc.call('gettxout', [txid, vout, true]);
      if (answer === null) return undefined;
      const out = txOut(answer, 'gettxout');
      if (out.confirmations === 0) return { output: out.output, blockHeight: undefined, confirmations: 0 };
      const tip = await this.tipHeight();
      if ((await this.blockHash(tip)) === out.bestblock) {
        const height = tip - out.confirmations + 1;
        if (height < 0) throw badResponse('gettxout.confirmations', `at most ${tip + 1}`);
        return { output: out.output, blockHeight: height, confirmations: out.confirmations };
      }
      // A block arrived between gettxout and getblockcount: read again, once.
      if (attempt >= 1) throw new ChainClientError('CHAIN_BAD_RESPONSE', 'gettxout.bestblock: the tip kept moving while reading; retry');
    }
  }

  /** Who spent an outpoint: see the module doc for what can be seen (others' spends once confirmed). */
  async getSpend(outpoint: OutPoint): Promise<SpendInfo | undefined> {
    const { txid, vout } = outpointArg(outpoint);
    const key = `${txid}:${vout}`;
    if ((await this.#rpc.call('gettxout', [txid, vout, true])) !== null) return undefined;
    const indexed = this.#spends.get(key);
    if (indexed) return { txid: indexed.txid, inputIndex: indexed.inputIndex, blockHeight: indexed.height };
    const ours = this.#ourSpends.get(key);
    if (ours) {
      const status = await this.getTransaction(ours.txid);
      if (status) return { txid: ours.txid, inputIndex: ours.inputIndex, blockHeight: status.blockHeight };
    }
    const found = await this.#scan(`s:${key}`, this.#maxRescanBlocks, (block) => {
      for (const tx of block.txs) {
        const inputIndex = tx.ins.findIndex((input) => input.index === vout && hashToTxid(input.hash) === txid);
        if (inputIndex >= 0) return { txid: tx.getId(), inputIndex, height: block.height, hash: block.hash };
      }
      // The block that created the outpoint: nothing below it can spend it.
      return block.txs.some((tx) => tx.getId() === txid) ? 'stop' : undefined;
    });
    if (!found) return undefined;
    this.#spends.set(key, found);
    this.#confirmed.set(found.txid, { height: found.height, hash: found.hash });
    return { txid: found.txid, inputIndex: found.inputIndex, blockHeight: found.height };
  }

  /** estimatesmartfee (BTC per 1000 vbytes) as sat per 1000 weight units, rounded up, at least 253. */
  async estimateFeeratePerKw(targetBlocks: number): Promise<bigint> {
    if (!Number.isSafeInteger(targetBlocks) || targetBlocks < 1) throw new RangeError('"targetBlocks" expected an integer >= 1');
    // Beyond Core's horizon, its longest estimate is the best there is.
    const answer = object(await this.#rpc.call('estimatesmartfee', [Math.min(targetBlocks, MAX_CONF_TARGET)]), 'estimatesmartfee');
    if (answer.feerate === undefined) {
      if (this.#fallbackFeeratePerKw !== undefined) return this.#fallbackFeeratePerKw;
      const errors = Array.isArray(answer.errors) ? answer.errors.filter((e) => typeof e === 'string').join('; ').slice(0, 500) : '';
      throw new ChainClientError('CHAIN_NO_FEE_ESTIMATE', `estimatesmartfee ${targetBlocks}: no estimate${errors ? ` (${errors})` : ''}; set fallbackFeeratePerKw`);
    }
    const satPerKvB = btcToSat(answer.feerate, 'estimatesmartfee.feerate');
    const perKw = (satPerKvB + 3n) / 4n;
    return perKw < MIN_FEERATE_PER_KW ? MIN_FEERATE_PER_KW : perKw;
  }

  /** Events for this outpoint's spends; starts polling. A spend made before watching is reported too. */
  watchOutpoint(outpoint: OutPoint): void {
    const { txid, vout } = outpointArg(outpoint);
    this.#watched.add(`${txid}:${vout}`);
    this.#poller.watchOutpoint({ txid, vout });
    this.#poller.startOnce();
  }

  /** Starts polling; blocks mined before the first poll answers produce no events. */
  subscribe(listener: (event: ChainEvent) => void): () => void {
    const unsubscribe = this.#poller.subscribe(listener);
    this.#poller.startOnce();
    return unsubscribe;
  }

  // ---- PollableChain -----------------------------------------------------------------------------

  async blockHash(height: number): Promise<string> {
    if (!Number.isSafeInteger(height) || height < 0) throw new RangeError('"height" expected an integer >= 0');
    return hash(await this.#rpc.call('getblockhash', [height]), 'getblockhash');
  }

  /** Index the block's spends of watched outpoints and the confirmation of known txs. Idempotent. */
  async connectBlock(height: number, blockHash: string): Promise<void> {
    if (!Number.isSafeInteger(height) || height < 0) throw new RangeError('"height" expected an integer >= 0');
    const block = await this.#blockAt(height, txidArg(blockHash, 'hash'));
    this.#index(block);
    this.#onProgress?.({ height, tipHeight: Math.max(this.#lastTip, height) });
  }

  /** Forget what the index learnt from this block. Idempotent. */
  async disconnectBlock(height: number, blockHash: string): Promise<void> {
    const id = txidArg(blockHash, 'hash');
    for (const [key, spend] of this.#spends) if (spend.hash === id) this.#spends.delete(key);
    for (const [txid, place] of this.#confirmed) if (place.hash === id) this.#confirmed.delete(txid);
    // Scans that read this height read a block that is gone: they restart below it.
    for (const [key, to] of this.#scannedTo) if (to >= height) this.#scannedTo.set(key, height - 1);
    const cached = this.#blockCache.findIndex((b) => b.hash === id);
    if (cached >= 0) this.#blockCache.splice(cached, 1);
  }

  // ---- Helpers -----------------------------------------------------------------------------------

  /**
   * The block at `height` in the node's best chain, parsed and checked (its header hashes to the hash
   * asked for, its merkle root and witness commitment match its transactions). The last two are cached.
   */
  async block(height: number): Promise<BitcoindBlock> {
    return this.#blockAt(height, await this.blockHash(height));
  }

  /** Regtest only: mine `count` blocks paying their coinbase to `address`; returns their hashes. */
  async generateToAddress(count: number, address: string): Promise<string[]> {
    if (this.#network !== 'regtest') throw new TypeError(`generateToAddress: the node is on ${this.#network}; only regtest can mine on demand`);
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError('"count" expected an integer >= 0');
    if (typeof address !== 'string') throw new TypeError('"address" expected a string');
    await this.#poller.baseline;
    const answer = await this.#rpc.call('generatetoaddress', [count, address]);
    if (!Array.isArray(answer) || answer.length !== count) throw badResponse('generatetoaddress', `${count} block hashes`);
    return answer.map((h, i) => hash(h, `generatetoaddress[${i}]`));
  }

  /** Poll for events now (normally a timer does it); rejects if the node cannot be read. */
  poll(): Promise<void> {
    return this.#poller.poll();
  }

  /** Stop polling for good. Requests still work. */
  close(): void {
    this.#poller.close();
  }

  // ---- Internals ---------------------------------------------------------------------------------

  #remember(txid: string, raw: Uint8Array, tx: Transaction, sentAtHeight: number): void {
    if (!this.#ours.has(txid)) this.#ours.set(txid, { raw, sentAtHeight });
    tx.ins.forEach((input, inputIndex) => this.#ourSpends.set(`${hashToTxid(input.hash)}:${input.index}`, { txid, inputIndex }));
  }

  #index(block: BitcoindBlock): void {
    const place: Place = { height: block.height, hash: block.hash };
    for (const tx of block.txs) {
      const txid = tx.getId();
      if (this.#ours.has(txid)) this.#confirmed.set(txid, place);
      tx.ins.forEach((input, inputIndex) => {
        const key = `${hashToTxid(input.hash)}:${input.index}`;
        if (!this.#watched.has(key) && !this.#ourSpends.has(key)) return;
        this.#spends.set(key, { txid, inputIndex, ...place });
        this.#confirmed.set(txid, place);
      });
    }
  }

  async #blockAt(height: number, id: string): Promise<BitcoindBlock> {
    const cached = this.#blockCache.find((b) => b.hash === id && b.height === height);
    if (cached) return { height, hash: id, txs: [...cached.txs] };
    const hex = await this.#rpc.call('getblock', [id, 0]);
    const block = parseCheckedBlock(bytes(hex, 'getblock'), id, 'getblock');
    const entry: BitcoindBlock = { height, hash: id, txs: block.transactions! };
    this.#blockCache.push(entry);
    if (this.#blockCache.length > BLOCK_CACHE_SIZE) this.#blockCache.shift();
    return { height, hash: id, txs: [...entry.txs] };
  }

  /** getrawtransaction txid false [blockhash]; undefined when the node answers -5 (not found there). */
  async #rawTransaction(txid: string, blockHash?: string): Promise<Uint8Array | undefined> {
    try {
      const answer = await this.#rpc.call('getrawtransaction', blockHash ? [txid, false, blockHash] : [txid, false]);
      return bytes(answer, 'getrawtransaction');
    } catch (e) {
      if (e instanceof ChainClientError && e.rpcCode === NO_SUCH_TX) return undefined;
      throw e;
    }
  }

  /** Where a transaction the node knows confirmed, or 'mempool' when no block could be found. */
  async #locate(txid: string, tx: Transaction): Promise<Place | 'mempool'> {
    const probed = tx.outs.map((_, vout) => vout).filter((vout) => tx.outs[vout]!.script[0] !== 0x6a).slice(0, MAX_OUTPUTS_PROBED);
    for (const vout of probed) {
      const answer = await this.#rpc.call('gettxout', [txid, vout, false]);
      if (answer === null) continue;
      const out = txOut(answer, 'gettxout');
      if (out.confirmations === 0) throw badResponse('gettxout.confirmations', 'at least 1 without include_mempool');
      const tip = await this.tipHeight();
      if ((await this.blockHash(tip)) !== out.bestblock) break; // the tip moved: fall back to a scan
      const height = tip - out.confirmations + 1;
      if (height < 0) throw badResponse('gettxout.confirmations', `at most ${tip + 1}`);
      return { height, hash: await this.blockHash(height) };
    }
    // Every output spent (or the tip moved): read blocks back, not below the tip when we sent it.
    const sentAt = this.#ours.get(txid)?.sentAtHeight;
    const depth = sentAt === undefined ? this.#maxRescanBlocks : Math.min(this.#maxRescanBlocks, Math.max(0, this.#lastTip - sentAt + 1));
    const found = await this.#scan(`t:${txid}`, depth, (block) =>
      block.txs.some((t) => t.getId() === txid) ? { height: block.height, hash: block.hash } : undefined,
    );
    if (!found) return 'mempool';
    if (this.#ours.has(txid)) this.#confirmed.set(txid, found);
    return found;
  }

  /**
   * Read blocks from the tip down (at most `depth`, and not below what an earlier scan with this key
   * already read) until `match` returns a result or 'stop'. A miss is remembered under `key`.
   */
  async #scan<T>(key: string, depth: number, match: (block: BitcoindBlock) => T | 'stop' | undefined): Promise<T | undefined> {
    const tip = await this.tipHeight();
    const floor = Math.max(tip - depth + 1, (this.#scannedTo.get(key) ?? -1) + 1, 0);
    for (let height = tip; height >= floor; height--) {
      const block = await this.block(height);
      this.#onProgress?.({ height, tipHeight: tip });
      const result = match(block);
      if (result === 'stop') break;
      if (result !== undefined) return result;
    }
    this.#scannedTo.set(key, Math.max(tip, this.#scannedTo.get(key) ?? -1));
    return undefined;
  }
}

// ---- Arguments (programmer misuse: TypeError) -------------------------------------------------------

// ---- Answers (untrusted: CHAIN_BAD_RESPONSE naming the field) --------------------------------------

function hash(value: unknown, path: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) throw badResponse(path, '64 lowercase hex characters');
  return value;
}

function bytes(value: unknown, path: string): Uint8Array {
  if (typeof value !== 'string' || value.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(value)) throw badResponse(path, 'even-length hex');
  return hexToBytes(value);
}

/** A JSON BTC amount as satoshis: Core prints 8 decimals, so rounding the double is exact below 21e6 BTC. */
function btcToSat(value: unknown, path: string): bigint {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 21e6) throw badResponse(path, 'a BTC amount (0 to 21e6)');
  return BigInt(Math.round(value * 1e8));
}

function txOut(value: unknown, path: string): { bestblock: string; confirmations: number; output: { valueSat: bigint; script: Uint8Array } } {
  const o = object(value, path);
  const spk = object(o.scriptPubKey, `${path}.scriptPubKey`);
  return {
    bestblock: hash(o.bestblock, `${path}.bestblock`),
    confirmations: uint(o.confirmations, `${path}.confirmations`),
    output: { valueSat: btcToSat(o.value, `${path}.value`), script: bytes(spk.hex, `${path}.scriptPubKey.hex`) },
  };
}


/**
 * EsploraChain: the ChainSource port over an Esplora REST API (Blockstream's esplora/electrs, as
 * documented in Blockstream/esplora API.md; mempool.space serves the same paths), so a node can follow
 * signet, testnet or mainnet without running bitcoind. Events come from a ChainPoller, which asks this
 * object for the tip, block hashes and the spends of watched outpoints.
 *
 *   GET  /blocks/tip/height          text height
 *   GET  /block-height/:height       text hash (404 above the tip)
 *   GET  /block/:hash/raw            binary block (checked against its hash and merkle root)
 *   GET  /tx/:txid/hex               text hex (404 "Transaction not found"; checked against its txid)
 *   GET  /tx/:txid/status            {confirmed, block_height?, block_hash?, block_time?}
 *   GET  /tx/:txid/outspend/:vout    {spent: false} | {spent: true, txid, vin, status}
 *   POST /tx                         hex body; 200 txid, 400 "sendrawtransaction RPC error: {code, message}"
 *   GET  /address/:address/utxo      [{txid, vout, status, value}]
 *   GET  /fee-estimates              {"<target>": sat/vB, …} ({} on a fresh regtest)
 *
 * Every answer is untrusted: sizes are capped before decoding, every field is checked, and anything off
 * is a ChainClientError CHAIN_BAD_RESPONSE naming the request and field (errors.ts lists the codes).
 * Reads and broadcasts are retried on transient failures (no answer, timeout, HTTP 429/502/503/504):
 * a repeated POST /tx is harmless (the node answers the txid again, or "already in utxo set").
 *
 * @example
 * const chain = new EsploraChain({ url: 'https://blockstream.info/signet/api', network: 'signet' });
 * chain.subscribe((event) => node.chainEvent(event));
 * chain.watchOutpoint(fundingOutpoint);
 * const feeratePerKw = await chain.estimateFeeratePerKw(6);
 * // …
 * chain.close();
 */
import { Transaction, address as baddress, networks, type Network } from 'bitcoinjs-lib';
import type {
  BroadcastResult, ChainEvent, ChainSource, OutPoint, SpendInfo, TxStatus, UtxoStatus,
} from '../port.js';
import { ChainClientError, badResponse, isTransientChainError } from '../errors.js';
import { DEFAULT_MAX_RESPONSE_BYTES, httpRequest, origin, withRetry, type HttpResponse, type RetryOptions } from '../http.js';
import { rejectionFromNodeError } from '../node-errors.js';
import { ChainPoller, type PollableChain } from '../poller.js';
import { isObject, object, outpointArg, parseCheckedBlock, txidArg } from '../validate.js';
import { systemClock, type Clock } from '../../clock.js';
import { MAX_MONEY_SAT } from '../../amounts.js';
import { bytesToHex, hexToBytes } from '../../bytes.js';
import { witnessVersion } from '../../onchain/script.js';

export type EsploraNetwork = 'regtest' | 'signet' | 'testnet' | 'mainnet';

export interface EsploraChainOptions {
  /** Base URL of the API, http or https, e.g. https://blockstream.info/api or http://127.0.0.1:3002. */
  url: string;
  /** For address encoding; signet uses testnet's address parameters. */
  network: EsploraNetwork;
  /** Per attempt, including reading the answer; default 10000 ms. */
  timeoutMs?: number;
  /** Back-off for transient failures of every request; default 3 attempts from 250 ms. */
  retry?: RetryOptions;
  /** Default 10000 ms. */
  pollIntervalMs?: number;
  /** Used when the server has no fee estimates (a fresh regtest answers {}); floored at 253 sat/kW. */
  fallbackFeeratePerKw?: bigint;
  /** Failed background polls (retried at the next interval) and exceptions from listeners. */
  onError?: (error: unknown) => void;
  /** After each block while a poll catches up by several blocks (ChainPoller's onProgress). */
  onProgress?: (p: { height: number; tipHeight: number }) => void;
  /** Drives polling and retry back-off; default systemClock. */
  clock?: Clock;
  /** Cap on any answer; default 16 MiB. Smaller per-request caps apply (a height is a few bytes). */
  maxResponseBytes?: number;
}

export interface AddressUtxo {
  outpoint: OutPoint;
  valueSat: bigint;
  /** Height of the block that created it, or undefined while unconfirmed. */
  blockHeight: number | undefined;
}

/**
 * The usual feerate_per_kw floor (LDK's FEERATE_FLOOR_SATS_PER_KW): 250 is 1 sat/vB, but rounding weight
 * up to vbytes can leave a transaction just under Core's 1 sat/vB minimum relay fee; 253 clears it.
 */
export const FEERATE_FLOOR_PER_KW = 253n;
/** sat/vB above this is not a fee estimate but a broken or hostile server (the record is ~2000). */
export const MAX_FEERATE_SAT_PER_VB = 100_000;

const NETWORKS: Record<EsploraNetwork, Network> = {
  regtest: networks.regtest,
  signet: networks.testnet,
  testnet: networks.testnet,
  mainnet: networks.bitcoin,
};

// Caps per answer, before any decoding. Core's MAX_BLOCK_SERIALIZED_SIZE bounds blocks and transactions.
const MAX_BLOCK_BYTES = 4_000_000;
const SMALL_ANSWER_BYTES = 4096;
const FEE_ANSWER_BYTES = 64 * 1024;
const BROADCAST_ANSWER_BYTES = 16 * 1024;
const MAX_HEIGHT = 0x7fffffff;
const MAX_REASON_CHARS = 500;
const WITNESS_V0_LENGTHS = [20, 32];

export class EsploraChain implements ChainSource, PollableChain {
  readonly #base: string;
  readonly #authorization: string | undefined;
  readonly #networkName: EsploraNetwork;
  readonly #network: Network;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #retry: RetryOptions;
  readonly #fallbackFeeratePerKw: bigint | undefined;
  readonly #poller: ChainPoller;

  constructor(options: EsploraChainOptions) {
    if (!options || typeof options !== 'object') throw new TypeError('"options" expected an object');
    const { base, authorization } = parseBaseUrl(options.url);
    this.#base = base;
    this.#authorization = authorization;
    if (typeof options.network !== 'string' || !Object.hasOwn(NETWORKS, options.network)) {
      throw new TypeError('"network" expected regtest, signet, testnet or mainnet');
    }
    this.#networkName = options.network;
    this.#network = NETWORKS[options.network];
    this.#timeoutMs = positiveInteger(options.timeoutMs ?? 10_000, 'timeoutMs');
    this.#maxResponseBytes = positiveInteger(options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES, 'maxResponseBytes');
    const fallback = options.fallbackFeeratePerKw;
    if (fallback !== undefined && (typeof fallback !== 'bigint' || fallback < 0n)) {
      throw new RangeError('"fallbackFeeratePerKw" expected a bigint >= 0');
    }
    this.#fallbackFeeratePerKw = fallback;
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new TypeError('"onProgress" expected a function');
    const onError = options.onError ?? (() => {});
    const clock = options.clock ?? systemClock;
    this.#retry = { ...options.retry, clock: options.retry?.clock ?? clock, retryable: options.retry?.retryable ?? isRetryable };
    // This object is the poller's PollableChain: tipHeight, blockHash and getSpend, with retries.
    this.#poller = new ChainPoller(this, {
      intervalMs: options.pollIntervalMs ?? 10_000,
      clock,
      onError,
      ...(options.onProgress && { onProgress: options.onProgress }),
    });
  }

  get network(): EsploraNetwork {
    return this.#networkName;
  }

  // ---- ChainSource -------------------------------------------------------------------------------

  async tipHeight(): Promise<number> {
    const what = 'GET /blocks/tip/height';
    const res = await this.#request('GET', '/blocks/tip/height', what, SMALL_ANSWER_BYTES);
    return heightText(res.text(), what);
  }

  /**
   * Broadcast through the server's node. A transaction that does not decode here is refused without
   * asking ('tx-decode-failed', txid ''), as the Simnet does: there is no txid to check the answer by.
   */
  async broadcast(tx: Uint8Array): Promise<BroadcastResult> {
    let txid: string;
    try {
      if (!(tx instanceof Uint8Array)) throw new TypeError('not bytes');
      txid = Transaction.fromBuffer(tx).getId();
    } catch {
      return { accepted: false, txid: '', code: 'tx-decode-failed', reason: 'TX decode failed' };
    }
    const what = 'POST /tx';
    const res = await this.#request('POST', '/tx', what, BROADCAST_ANSWER_BYTES, { body: bytesToHex(tx), accept: [400] });
    const text = res.text();
    if (res.status === 200) {
      const answered = text.trim().toLowerCase();
      if (answered !== txid) throw badResponse(what, `the txid ${txid}`);
      return { accepted: true, txid };
    }
    // 400: electrs relays the node's error as `sendrawtransaction RPC error: {"code":…,"message":…}`.
    const marker = text.indexOf('RPC error: ');
    if (marker < 0) return { accepted: false, txid, code: 'other', reason: bounded(text) };
    const error = jsonText(text.slice(marker + 'RPC error: '.length), what);
    if (!isObject(error) || !Number.isSafeInteger(error.code) || typeof error.message !== 'string') {
      throw badResponse(what, 'an RPC error {code, message} after "RPC error: "');
    }
    const rpcCode = error.code as number;
    const rejection = rejectionFromNodeError(rpcCode, error.message);
    if (!rejection) {
      // Not about the transaction (e.g. -28 the node is still warming up): a chain error, not a rejection.
      throw new ChainClientError('CHAIN_RPC_ERROR', `${what}: node error ${rpcCode}: ${bounded(error.message)}`, { status: 400, rpcCode });
    }
    return { accepted: false, txid, code: rejection.code, reason: rejection.reason };
  }

  async getTransaction(txid: string): Promise<TxStatus | undefined> {
    const id = txidArg(txid, 'txid');
    const tx = await this.#transaction(id);
    if (!tx) return undefined;
    const blockHeight = await this.#txHeight(id);
    return { tx: tx.raw, blockHeight, confirmations: await this.#confirmations(blockHeight) };
  }

  async getUtxo(outpoint: OutPoint): Promise<UtxoStatus | undefined> {
    const { txid, vout } = outpointArg(outpoint);
    const tx = await this.#transaction(txid);
    const out = tx?.parsed.outs[vout];
    // As bitcoind's gettxout: provably unspendable outputs are never in the UTXO set.
    if (!out || isUnspendable(out.script)) return undefined;
    if (await this.getSpend({ txid, vout })) return undefined;
    const blockHeight = await this.#txHeight(txid);
    return {
      output: { valueSat: out.value, script: Uint8Array.from(out.script) },
      blockHeight,
      confirmations: await this.#confirmations(blockHeight),
    };
  }

  async getSpend(outpoint: OutPoint): Promise<SpendInfo | undefined> {
    const { txid, vout } = outpointArg(outpoint);
    const what = `GET /tx/${txid}/outspend/${vout}`;
    const res = await this.#request('GET', `/tx/${txid}/outspend/${vout}`, what, SMALL_ANSWER_BYTES);
    const o = object(jsonText(res.text(), what), what);
    if (o.spent === false) return undefined;
    if (o.spent !== true) throw badResponse(`${what}: spent`, 'a boolean');
    return {
      txid: hashField(o.txid, `${what}: txid`),
      inputIndex: uint32(o.vin, `${what}: vin`),
      blockHeight: statusHeight(o.status, `${what}: status`),
    };
  }

  /**
   * The estimate for the largest target the server lists that is <= targetBlocks (a shorter target
   * is the more conservative one), or its shortest target if all are longer. Esplora answers sat/vB
   * as decimal JSON numbers; feerate_per_kw = ceil(sat/vB × 250), computed exactly from the digits,
   * floored at 253.
   */
  async estimateFeeratePerKw(targetBlocks: number): Promise<bigint> {
    if (!Number.isSafeInteger(targetBlocks) || targetBlocks < 1) throw new RangeError('"targetBlocks" expected an integer >= 1');
    const what = 'GET /fee-estimates';
    const res = await this.#request('GET', '/fee-estimates', what, Math.min(FEE_ANSWER_BYTES, this.#maxResponseBytes));
    const estimates = feeEstimates(res.text(), what);
    if (estimates.size === 0) {
      if (this.#fallbackFeeratePerKw === undefined) {
        throw new ChainClientError('CHAIN_NO_FEE_ESTIMATE', `${what}: ${origin(this.#base)} has no fee estimates and no fallbackFeeratePerKw is set`);
      }
      return max(this.#fallbackFeeratePerKw, FEERATE_FLOOR_PER_KW);
    }
    const targets = [...estimates.keys()].sort((a, b) => a - b);
    const chosen = targets.filter((t) => t <= targetBlocks).pop() ?? targets[0]!;
    return max(estimates.get(chosen)!, FEERATE_FLOOR_PER_KW);
  }

  /** Events for this outpoint's spends; starts polling. A spend made before watching is reported too. */
  watchOutpoint(outpoint: OutPoint): void {
    this.#poller.watchOutpoint(outpointArg(outpoint));
    this.#poller.startOnce();
  }

  /** Starts polling; blocks mined before the first poll answers produce no events. */
  subscribe(listener: (event: ChainEvent) => void): () => void {
    const unsubscribe = this.#poller.subscribe(listener);
    this.#poller.startOnce();
    return unsubscribe;
  }

  // ---- Blocks and addresses (wallet, demo, poller) -------------------------------------------------

  /** Display hex of the best chain's block at `height`; CHAIN_HTTP_ERROR 404 above the tip. */
  async blockHash(height: number): Promise<string> {
    if (!Number.isSafeInteger(height) || height < 0 || height > MAX_HEIGHT) throw new RangeError('"height" expected an integer >= 0');
    const what = `GET /block-height/${height}`;
    const res = await this.#request('GET', `/block-height/${height}`, what, SMALL_ANSWER_BYTES, { accept: [404] });
    if (res.status === 404) throw new ChainClientError('CHAIN_HTTP_ERROR', `${what}: no block at height ${height} (HTTP 404)`, { status: 404 });
    return hashField(res.text().trim(), what);
  }

  /**
   * The serialised block. Its header must hash to `hash` and its transactions must match the header's
   * merkle root (not mutated, CVE-2012-2459), so no transaction in it can be made up; witnesses must
   * match the coinbase's BIP 141 witness commitment.
   */
  async rawBlock(hash: string): Promise<Uint8Array> {
    const id = txidArg(hash, 'hash');
    const what = `GET /block/${id}/raw`;
    const res = (await this.#request('GET', `/block/${id}/raw`, what, Math.min(MAX_BLOCK_BYTES, this.#maxResponseBytes), { accept: [404] }));
    if (res.status === 404) throw new ChainClientError('CHAIN_HTTP_ERROR', `${what}: no such block (HTTP 404)`, { status: 404 });
    const raw = Uint8Array.from(res.body);
    parseCheckedBlock(raw, id, what);
    return raw;
  }

  /** Unspent outputs paying `address` (confirmed, and unconfirmed ones the server's mempool knows). */
  async addressUtxos(address: string): Promise<AddressUtxo[]> {
    scriptOfAddress(address, this.#network); // a TypeError here, not a server's 400
    const what = `GET /address/${address}/utxo`;
    const res = await this.#request('GET', `/address/${encodeURIComponent(address)}/utxo`, what, this.#maxResponseBytes);
    const list = jsonText(res.text(), what);
    if (!Array.isArray(list)) throw badResponse(what, 'an array');
    return list.map((u, i) => {
      const path = `${what}: [${i}]`;
      const o = object(u, path);
      return {
        outpoint: { txid: hashField(o.txid, `${path}.txid`), vout: uint32(o.vout, `${path}.vout`) },
        valueSat: amount(o.value, `${path}.value`),
        blockHeight: statusHeight(o.status, `${path}.status`),
      };
    });
  }

  /** The address of an output script on this network (P2PKH, P2SH, segwit v0, v1+); TypeError for others. */
  addressOf(script: Uint8Array): string {
    if (!(script instanceof Uint8Array)) throw new TypeError('"script" expected a Uint8Array');
    const net = this.#network;
    if (script.length === 25 && script[0] === 0x76 && script[1] === 0xa9 && script[2] === 0x14 && script[23] === 0x88 && script[24] === 0xac) {
      return baddress.toBase58Check(script.subarray(3, 23), net.pubKeyHash);
    }
    if (script.length === 23 && script[0] === 0xa9 && script[1] === 0x14 && script[22] === 0x87) {
      return baddress.toBase58Check(script.subarray(2, 22), net.scriptHash);
    }
    const version = witnessVersion(script);
    if (version > 0 || (version === 0 && WITNESS_V0_LENGTHS.includes(script.length - 2))) {
      return baddress.toBech32(script.subarray(2), version, net.bech32);
    }
    throw new TypeError(`"script" has no ${this.#networkName} address`);
  }

  /** Poll for events now (normally a timer does it); rejects if the server cannot be read. */
  poll(): Promise<void> {
    return this.#poller.poll();
  }

  /** Stop polling for good. Requests still work; they need nothing to be closed. */
  close(): void {
    this.#poller.close();
  }

  // ---- Internals ---------------------------------------------------------------------------------

  /** The transaction, checked against its txid, or undefined on 404. */
  async #transaction(txid: string): Promise<{ raw: Uint8Array; parsed: Transaction } | undefined> {
    const what = `GET /tx/${txid}/hex`;
    // Hex doubles the size; a little slack for a trailing newline.
    const res = await this.#request('GET', `/tx/${txid}/hex`, what, Math.min(2 * MAX_BLOCK_BYTES + 2, this.#maxResponseBytes), { accept: [404] });
    if (res.status === 404) return undefined;
    const hex = res.text().trim();
    if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw badResponse(what, 'even-length hex');
    const raw = hexToBytes(hex);
    let parsed: Transaction;
    try {
      parsed = Transaction.fromBuffer(raw);
    } catch {
      throw badResponse(what, 'a serialised transaction');
    }
    if (parsed.getId() !== txid) throw badResponse(what, `the transaction ${txid}`);
    return { raw, parsed };
  }

  async #txHeight(txid: string): Promise<number | undefined> {
    const what = `GET /tx/${txid}/status`;
    const res = await this.#request('GET', `/tx/${txid}/status`, what, SMALL_ANSWER_BYTES);
    return statusHeight(jsonText(res.text(), what), what);
  }

  /**
   * Counted from a tip read after the status, so normally tip >= blockHeight; a load-balanced server
   * may answer the tip from a backend one block behind, and a confirmed tx has at least 1 anyway.
   */
  async #confirmations(blockHeight: number | undefined): Promise<number> {
    if (blockHeight === undefined) return 0;
    return Math.max(1, (await this.tipHeight()) - blockHeight + 1);
  }

  /**
   * One request with retries. Answers 200 and the statuses in `accept`; 401/403 are CHAIN_AUTH and any
   * other status CHAIN_HTTP_ERROR (429 and 5xx gateway errors are retried first). Always an answer.
   */
  async #request(
    method: 'GET' | 'POST',
    path: string,
    what: string,
    maxResponseBytes: number,
    extra: { body?: string; accept?: number[] } = {},
  ): Promise<HttpResponse> {
    const headers: Record<string, string> = {};
    if (this.#authorization) headers.authorization = this.#authorization;
    if (extra.body !== undefined) headers['content-type'] = 'text/plain';
    return withRetry(async () => {
      const res = await httpRequest({
        url: this.#base + path,
        method,
        headers,
        ...(extra.body !== undefined && { body: extra.body }),
        timeoutMs: this.#timeoutMs,
        maxResponseBytes,
        what,
      });
      if (res.status === 200 || extra.accept?.includes(res.status)) return res;
      const detail = bounded(res.text(), 200);
      const message = `${what}: ${origin(this.#base)} answered HTTP ${res.status}${detail ? `: ${detail}` : ''}`;
      if (res.status === 401 || res.status === 403) throw new ChainClientError('CHAIN_AUTH', message, { status: res.status });
      throw new ChainClientError('CHAIN_HTTP_ERROR', message, { status: res.status });
    }, this.#retry);
  }
}

/** No answer, no answer in time, or a gateway saying "not now": worth another attempt. */
function isRetryable(error: unknown): boolean {
  if (isTransientChainError(error)) return true;
  return error instanceof ChainClientError && error.code === 'CHAIN_HTTP_ERROR' && [429, 502, 503, 504].includes(error.status ?? 0);
}

// ---- Arguments (programmer misuse: TypeError/RangeError) -----------------------------------------

function parseBaseUrl(url: unknown): { base: string; authorization: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    throw new TypeError('"url" expected an http:// or https:// URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError('"url" expected an http:// or https:// URL');
  if (parsed.search || parsed.hash) throw new TypeError('"url" expected a base URL without query or fragment');
  // fetch refuses URLs with credentials: they travel as Basic auth, and never appear in messages.
  let authorization: string | undefined;
  if (parsed.username || parsed.password) {
    const user = decodeURIComponent(parsed.username);
    const password = decodeURIComponent(parsed.password);
    authorization = `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
  }
  return { base: parsed.origin + parsed.pathname.replace(/\/+$/, ''), authorization };
}

function positiveInteger(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`"${field}" expected an integer > 0`);
  return value;
}

/** The output script of an address on `network`; TypeError if it is not one. */
function scriptOfAddress(address: string, network: Network): Uint8Array {
  if (typeof address !== 'string' || address.length === 0 || address.length > 100) throw new TypeError('"address" expected an address string');
  try {
    if (address.toLowerCase().startsWith(`${network.bech32}1`)) {
      const { version, prefix, data } = baddress.fromBech32(address);
      const lengthOk = version === 0 ? WITNESS_V0_LENGTHS.includes(data.length) : data.length >= 2 && data.length <= 40;
      if (prefix === network.bech32 && version <= 16 && lengthOk) {
        return Uint8Array.from([version === 0 ? 0 : 0x50 + version, data.length, ...data]);
      }
    } else {
      const { version, hash } = baddress.fromBase58Check(address);
      if (hash.length === 20 && version === network.pubKeyHash) return Uint8Array.from([0x76, 0xa9, 0x14, ...hash, 0x88, 0xac]);
      if (hash.length === 20 && version === network.scriptHash) return Uint8Array.from([0xa9, 0x14, ...hash, 0x87]);
    }
  } catch {
    // fall through
  }
  throw new TypeError(`"address" expected an address of this network (${network.bech32})`);
}

// ---- Answers (untrusted: CHAIN_BAD_RESPONSE) -------------------------------------------------------

function jsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw badResponse(what, 'JSON');
  }
}

/** Printable, bounded: the server's words may end up in a log. */
function bounded(text: string, maxChars = MAX_REASON_CHARS): string {
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, maxChars);
}

function heightText(text: string, what: string): number {
  const t = text.trim();
  if (!/^(0|[1-9]\d{0,9})$/.test(t) || Number(t) > MAX_HEIGHT) throw badResponse(what, 'a block height');
  return Number(t);
}

function height(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_HEIGHT) throw badResponse(what, 'a block height');
  return value;
}

function uint32(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > 0xffffffff) throw badResponse(what, 'a uint32');
  return value;
}

function hashField(value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) throw badResponse(what, '64 hex characters');
  return value.toLowerCase();
}

/** Satoshis as a JSON number: a non-negative safe integer up to 21e6 BTC. */
function amount(value: unknown, what: string): bigint {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || BigInt(value) > MAX_MONEY_SAT) {
    throw badResponse(what, 'an amount in satoshis');
  }
  return BigInt(value);
}

/** A tx status object → its block height, or undefined while unconfirmed. */
function statusHeight(value: unknown, what: string): number | undefined {
  const o = object(value, what);
  if (o.confirmed === true) {
    if (o.block_hash !== undefined) hashField(o.block_hash, `${what}.block_hash`);
    return height(o.block_height, `${what}.block_height`);
  }
  if (o.confirmed !== false) throw badResponse(`${what}.confirmed`, 'a boolean');
  if (o.block_height !== undefined && o.block_height !== null) throw badResponse(`${what}.block_height`, 'none while unconfirmed');
  return undefined;
}

const FEE_ENTRY = /\s*"(\d{1,5})"\s*:\s*(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*/y;

/**
 * {"<target>": <sat/vB>, …} → feerate_per_kw by target. Read from the text, not JSON.parse's floats, so
 * the decimal digits the server sent convert exactly. Only a flat object of such entries is accepted.
 */
function feeEstimates(text: string, what: string): Map<number, bigint> {
  jsonText(text, what); // well-formed JSON first
  const shape = () => badResponse(what, 'an object of "<target>": <sat/vB> entries');
  const out = new Map<number, bigint>();
  let at = /^\s*\{\s*/.exec(text)?.[0].length;
  if (at === undefined) throw shape();
  if (text[at] !== '}') {
    for (;;) {
      FEE_ENTRY.lastIndex = at;
      const m = FEE_ENTRY.exec(text);
      if (!m) throw shape();
      const target = Number(m[1]);
      if (target < 1 || out.has(target)) throw badResponse(`${what}: "${m[1]}"`, 'a target >= 1, once');
      out.set(target, satPerVbToPerKw(m[2]!, `${what}: "${m[1]}"`));
      at = FEE_ENTRY.lastIndex;
      if (text[at] === ',') at++;
      else break;
    }
    if (text[at] !== '}') throw shape();
  }
  if (text.slice(at + 1).trim() !== '') throw shape();
  return out;
}

/** ceil(literal × 250) exactly, for a JSON number literal in sat/vB. */
function satPerVbToPerKw(literal: string, what: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal);
  const exponent = Number(m?.[4] ?? 0);
  if (!m || m[1] === '-' || Math.abs(exponent) > 100 || literal.length > 100) throw badResponse(what, 'a fee rate >= 0 in sat/vB');
  // value = digits / 10^scale, with scale possibly negative.
  const fraction = m[3] ?? '';
  const digits = BigInt(m[2]! + fraction);
  const scale = fraction.length - exponent;
  const [numerator, denominator] = scale >= 0 ? [digits, 10n ** BigInt(scale)] : [digits * 10n ** BigInt(-scale), 1n];
  if (numerator > BigInt(MAX_FEERATE_SAT_PER_VB) * denominator) throw badResponse(what, `at most ${MAX_FEERATE_SAT_PER_VB} sat/vB`);
  const scaled = numerator * 250n;
  return (scaled + denominator - 1n) / denominator;
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** OP_RETURN or over the script size limit: Core's CScript::IsUnspendable. */
function isUnspendable(script: Uint8Array): boolean {
  return (script.length > 0 && script[0] === 0x6a) || script.length > 10_000;
}

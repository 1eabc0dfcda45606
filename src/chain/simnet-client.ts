/**
 * SimnetClient: the ChainSource port over HTTP, talking to a Simnet served by serveSimnet
 * (src/chain/simnet/server.ts, whose header documents the protocol), so a payer process and a payee
 * process share one chain. Results have the Simnet's shapes exactly (bigint amounts, Uint8Array bytes,
 * blockHeight undefined while unconfirmed); events come from a ChainPoller.
 *
 * Responses are untrusted: every field is checked, and anything off is a ChainClientError. This file
 * must not import src/chain/simnet/* (that would load bitcore-lib into the payer and payee).
 *
 * @example
 * const chain = new SimnetClient(process.env.SIMNET_URL!);
 * chain.subscribe((event) => node.chainEvent(event));
 * const coin = await chain.faucetToPubkey(walletPubkey, 100_000n);
 * // …
 * chain.close();
 */
import type {
  BroadcastResult, ChainEvent, ChainSource, OutPoint, RejectCode, SpendInfo, TxStatus, UtxoStatus,
} from './port.js';
import { ChainPoller } from './poller.js';
import { ChainClientError, badResponse } from './errors.js';
import { httpRequest } from './http.js';
import { isObject, object, outpointArg, txidArg, uint } from './validate.js';
import type { Clock } from '../clock.js';
import { bytesToHex, hexToBytes } from '../bytes.js';
import { p2wpkhOutput } from '../onchain/script.js';

export interface SimnetClientOptions {
  /** Drives event polling; default systemClock. */
  clock?: Clock;
  /** Default 250 ms. */
  pollIntervalMs?: number;
  /** Per request, including reading the answer; default 10000 ms. */
  timeoutMs?: number;
  /** Failed background polls (retried at the next interval) and exceptions from listeners. */
  onError?: (error: unknown) => void;
}

export { ChainClientError, type ChainClientErrorCode } from './errors.js';

/** Generous for utxosForScript of a busy script; more is not a simnet answer. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** Exhaustive over RejectCode, so a new code in port.ts fails to compile until added here. */
const REJECT_CODES: Record<RejectCode, true> = {
  'non-final': true,
  'non-BIP68-final': true,
  'mandatory-script-verify-flag-failed': true,
  'bad-txns-inputs-missingorspent': true,
  'txn-mempool-conflict': true,
  'bad-txns-in-belowout': true,
  'txn-already-known': true,
  'txn-already-in-mempool': true,
  'bad-txns-vin-empty': true,
  'bad-txns-vout-empty': true,
  'bad-txns-inputs-duplicate': true,
  dust: true,
  'tx-decode-failed': true,
  other: true,
};

export class SimnetClient implements ChainSource {
  readonly #base: string;
  readonly #timeoutMs: number;
  readonly #poller: ChainPoller;
  /** Set when polling starts: its first poll, which takes the baseline tip. */

  constructor(url: string, options: SimnetClientOptions = {}) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError('"url" expected an http:// URL');
    }
    if (parsed.protocol !== 'http:') throw new TypeError('"url" expected an http:// URL (the simnet serves plain HTTP on loopback)');
    this.#base = parsed.origin + parsed.pathname.replace(/\/+$/, '');
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new RangeError('"timeoutMs" expected an integer > 0');
    this.#timeoutMs = timeoutMs;
    const pollable = { tipHeight: () => this.tipHeight(), blockHash: (h: number) => this.blockHash(h), getSpend: (o: OutPoint) => this.getSpend(o) };
    this.#poller = new ChainPoller(pollable, {
      intervalMs: options.pollIntervalMs ?? 250,
      ...(options.clock && { clock: options.clock }),
      ...(options.onError && { onError: options.onError }),
    });
  }

  // ---- ChainSource -------------------------------------------------------------------------------

  async tipHeight(): Promise<number> {
    return uint(await this.#call('tipHeight', {}), 'tipHeight');
  }

  async broadcast(tx: Uint8Array): Promise<BroadcastResult> {
    // As the Simnet: what is not bytes does not decode.
    if (!(tx instanceof Uint8Array)) return { accepted: false, txid: '', code: 'tx-decode-failed', reason: 'TX decode failed' };
    await this.#poller.baseline;
    return broadcastResult(await this.#call('broadcast', { txHex: bytesToHex(tx) }), 'broadcast');
  }

  async getTransaction(txid: string): Promise<TxStatus | undefined> {
    const r = await this.#call('getTransaction', { txid: txidArg(txid) });
    if (r === null) return undefined;
    const o = object(r, 'getTransaction');
    return { tx: bytes(o.txHex, 'getTransaction.txHex'), blockHeight: height(o.blockHeight, 'getTransaction.blockHeight'), confirmations: uint(o.confirmations, 'getTransaction.confirmations') };
  }

  async getUtxo(outpoint: OutPoint): Promise<UtxoStatus | undefined> {
    const r = await this.#call('getUtxo', { outpoint: outpointArg(outpoint) });
    return r === null ? undefined : utxoStatus(r, 'getUtxo');
  }

  async getSpend(outpoint: OutPoint): Promise<SpendInfo | undefined> {
    const r = await this.#call('getSpend', { outpoint: outpointArg(outpoint) });
    if (r === null) return undefined;
    const o = object(r, 'getSpend');
    return { txid: txid(o.txid, 'getSpend.txid'), inputIndex: uint(o.inputIndex, 'getSpend.inputIndex'), blockHeight: height(o.blockHeight, 'getSpend.blockHeight') };
  }

  async estimateFeeratePerKw(targetBlocks: number): Promise<bigint> {
    if (!Number.isSafeInteger(targetBlocks) || targetBlocks < 1) throw new RangeError('"targetBlocks" expected an integer >= 1');
    return amount(await this.#call('estimateFeeratePerKw', { targetBlocks }), 'estimateFeeratePerKw');
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

  // ---- Simnet controls and helpers -----------------------------------------------------------------

  async blockHash(height: number): Promise<string> {
    if (!Number.isSafeInteger(height) || height < 0) throw new RangeError('"height" expected an integer >= 0');
    return txid(await this.#call('blockHash', { height }), 'blockHash');
  }

  async mine(count = 1): Promise<string[]> {
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError('"count" expected an integer >= 0');
    await this.#poller.baseline;
    const hashes = array(await this.#call('mine', { count }), 'mine').map((h, i) => txid(h, `mine[${i}]`));
    if (hashes.length !== count) throw badResponse('mine', `${count} block hashes`);
    return hashes;
  }

  async faucet(outputScript: Uint8Array, valueSat: bigint): Promise<OutPoint> {
    if (!(outputScript instanceof Uint8Array)) throw new TypeError('"outputScript" expected a Uint8Array');
    if (typeof valueSat !== 'bigint') throw new TypeError('"valueSat" expected a bigint');
    await this.#poller.baseline;
    return outpoint(await this.#call('faucet', { scriptHex: bytesToHex(outputScript), valueSat: valueSat.toString() }), 'faucet');
  }

  /** faucet() to the P2WPKH output of a compressed public key. */
  async faucetToPubkey(pubkey: Uint8Array, valueSat: bigint): Promise<OutPoint> {
    return this.faucet(p2wpkhOutput(pubkey), valueSat);
  }

  async utxosForScript(script: Uint8Array): Promise<Array<UtxoStatus & { outpoint: OutPoint; coinbase: boolean }>> {
    if (!(script instanceof Uint8Array)) throw new TypeError('"script" expected a Uint8Array');
    const list = array(await this.#call('utxosForScript', { scriptHex: bytesToHex(script) }), 'utxosForScript');
    return list.map((u, i) => {
      const path = `utxosForScript[${i}]`;
      const o = object(u, path);
      if (typeof o.coinbase !== 'boolean') throw badResponse(`${path}.coinbase`, 'a boolean');
      return { outpoint: outpoint(o.outpoint, `${path}.outpoint`), ...utxoStatus(u, path), coinbase: o.coinbase };
    });
  }

  /** Mempool txids, parents before children. */
  async mempool(): Promise<string[]> {
    return array(await this.#call('mempool', {}), 'mempool').map((t, i) => txid(t, `mempool[${i}]`));
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

  async #call(method: string, body: Record<string, unknown>): Promise<unknown> {
    const res = await httpRequest({
      url: `${this.#base}/${method}`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      timeoutMs: this.#timeoutMs,
      maxResponseBytes: MAX_RESPONSE_BYTES,
      what: method,
    });
    const text = res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.status < 200 || res.status > 299) {
      const error = isObject(json) && isObject(json.error) ? json.error : {};
      const remoteCode = typeof error.code === 'string' ? error.code.slice(0, 100) : undefined;
      const detail = typeof error.message === 'string' ? `: ${error.message.slice(0, 500)}` : '';
      throw new ChainClientError('CHAIN_HTTP_ERROR', `${method}: HTTP ${res.status}${remoteCode ? ` ${remoteCode}` : ''}${detail}`, {
        status: res.status,
        ...(remoteCode !== undefined && { remoteCode }),
      });
    }
    if (!isObject(json) || !Object.hasOwn(json, 'result')) throw badResponse(method, 'a JSON object with "result"');
    return json.result;
  }
}

// ---- Arguments (programmer misuse: TypeError/RangeError, as the Simnet) ------------------------------

// ---- Response fields (untrusted: CHAIN_BAD_RESPONSE) ----------------------------------------------

function array(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw badResponse(path, 'an array');
  return value;
}

function height(value: unknown, path: string): number | undefined {
  return value === null ? undefined : uint(value, path);
}

function txid(value: unknown, path: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) throw badResponse(path, '64 lowercase hex characters');
  return value;
}

function bytes(value: unknown, path: string): Uint8Array {
  if (typeof value !== 'string' || value.length % 2 !== 0 || !/^[0-9a-f]*$/.test(value)) throw badResponse(path, 'even-length lowercase hex');
  return hexToBytes(value);
}

/** Decimal string of a non-negative integer below 2^64. */
function amount(value: unknown, path: string): bigint {
  if (typeof value !== 'string' || !/^(0|[1-9]\d{0,19})$/.test(value) || BigInt(value) >= 1n << 64n) {
    throw badResponse(path, 'a decimal integer string');
  }
  return BigInt(value);
}

function outpoint(value: unknown, path: string): OutPoint {
  const o = object(value, path);
  const vout = uint(o.vout, `${path}.vout`);
  if (vout > 0xffffffff) throw badResponse(`${path}.vout`, 'a uint32');
  return { txid: txid(o.txid, `${path}.txid`), vout };
}

function utxoStatus(value: unknown, path: string): UtxoStatus {
  const o = object(value, path);
  const output = object(o.output, `${path}.output`);
  return {
    output: { valueSat: amount(output.valueSat, `${path}.output.valueSat`), script: bytes(output.scriptHex, `${path}.output.scriptHex`) },
    blockHeight: height(o.blockHeight, `${path}.blockHeight`),
    confirmations: uint(o.confirmations, `${path}.confirmations`),
  };
}

function broadcastResult(value: unknown, path: string): BroadcastResult {
  const o = object(value, path);
  if (o.accepted === true) return { accepted: true, txid: txid(o.txid, `${path}.txid`) };
  if (o.accepted !== false) throw badResponse(`${path}.accepted`, 'a boolean');
  // An undecodable tx has no txid: the Simnet reports ''.
  const id = o.txid === '' ? '' : txid(o.txid, `${path}.txid`);
  if (typeof o.code !== 'string' || !Object.hasOwn(REJECT_CODES, o.code)) throw badResponse(`${path}.code`, 'a reject code');
  if (typeof o.reason !== 'string') throw badResponse(`${path}.reason`, 'a string');
  return { accepted: false, txid: id, code: o.code as RejectCode, reason: o.reason };
}

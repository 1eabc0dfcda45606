/**
 * A Simnet behind Bitcoin Core's JSON-RPC (1.0, HTTP POST, Basic auth), answering the calls the bitcoind
 * adapter uses (src/chain/bitcoind/chain.ts) with Core 25+'s shapes, status codes and messages, so the
 * adapter, the shared ChainSource contract suite and the demo run end to end without a bitcoind:
 *
 *   getblockchaininfo                       {chain, blocks, headers, bestblockhash, mediantime, …}
 *   getblockcount                           height
 *   getblockhash height                     hash | -8 "Block height out of range"
 *   getblock hash 0                         raw hex | -5 "Block not found" (verbosity 0 only)
 *   getrawtransaction txid false [hash]     raw hex | -5 (mempool only unless txindex, as Core without -txindex)
 *   sendrawtransaction hex [maxfeerate]     txid | Core's error for the Simnet's rejection (node-errors.ts)
 *   gettxout txid n [include_mempool=true]  null | {bestblock, confirmations, value, scriptPubKey, coinbase}
 *   estimatesmartfee target [mode]          {feerate (BTC/kvB), blocks} | {errors, blocks}
 *   generatetoaddress n address             [hash, …] (coinbases pay the regtest subsidy to address)
 *
 * As Core: wrong credentials get 401 with an empty body; an RPC error is HTTP 500 (404 for -32601
 * "Method not found") with {"result": null, "error": {code, message}, "id"}; a body that is not JSON is
 * -32700 "Parse error". Loopback only unless allowRemote. `faults.next(kind)` makes the next request
 * misbehave, for tests of the client's error handling.
 *
 * @example
 * const server = await serveBitcoindRpc(simnet, { auth: { user: 'u', password: 'p' } });
 * const chain = await BitcoindChain.connect({ url: server.url, auth: { user: 'u', password: 'p' }, network: 'regtest' });
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { checkListenOptions, listen } from './listen.js';
import type { Socket } from 'node:net';
import { chmod, unlink, writeFile } from 'node:fs/promises';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { address as baddress, Block, networks, Transaction } from 'bitcoinjs-lib';
import type { OutPoint, UtxoStatus } from '../port.js';
import { nodeErrorForRejection } from '../node-errors.js';
import { bytesToHex, hexToBytes } from '../../bytes.js';
import type { Simnet } from './simnet.js';

export interface BitcoindServerOptions {
  auth: { user: string; password: string } | { cookieFile: string };
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0: a free port, read it from `url`. */
  port?: number;
  /** Needed to listen on a non-loopback host: anyone who can reach it can mine. */
  allowRemote?: boolean;
  /** getblockchaininfo's chain; only 'regtest' is modelled. */
  chain?: 'regtest';
  /** As Core's -txindex: getrawtransaction without a block hash finds confirmed txs too. Default false. */
  txindex?: boolean;
  /** 'simnet' (default): the Simnet's feerate; 'none': no estimate, as a fresh regtest node. */
  feeEstimates?: 'simnet' | 'none';
}

export type BitcoindFault = 'garbage' | 'hang' | 'http500-empty' | 'drop';

export interface BitcoindServer {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  /** Misbehave on the next requests, one fault per request, in order. */
  faults: { next(kind: BitcoindFault): void };
  /** Cookie auth only: write a new cookie, as a restarted bitcoind does. */
  rotateCookie(): Promise<void>;
  /** Stop the server (hung requests are dropped) and delete the cookie file, as bitcoind does. */
  close(): Promise<void>;
}

export const MAX_RPC_BODY_BYTES = 4 * 1024 * 1024;
const MAX_GENERATE_PER_CALL = 1000;
const MAX_CONF_TARGET = 1008;

// Core's codes (src/rpc/protocol.h).
const RPC_MISC_ERROR = -1;
const RPC_TYPE_ERROR = -3;
const RPC_INVALID_ADDRESS_OR_KEY = -5;
const RPC_INVALID_PARAMETER = -8;
const RPC_INVALID_REQUEST = -32600;
const RPC_METHOD_NOT_FOUND = -32601;
const RPC_PARSE_ERROR = -32700;

/** What the server needs of a Simnet. */
export type BitcoindSimnet = Pick<
  Simnet,
  'tipHeight' | 'getBlock' | 'getBlockByHash' | 'rawBlock' | 'getTransaction' | 'getUtxo' | 'getSpend' | 'broadcast'
  | 'estimateFeeratePerKw' | 'medianTimePast' | 'mine' | 'isMinedCoinbase'
>;

class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A BTC amount Core prints with exactly 8 decimals (JSON.stringify cannot): spliced in after stringify. */
class BtcAmount {
  constructor(readonly valueSat: bigint) {}
  toJSON(): string {
    const whole = this.valueSat / 100_000_000n;
    const frac = (this.valueSat % 100_000_000n).toString().padStart(8, '0');
    return `\u0000btc:${whole}.${frac}`;
  }
}

type Params = unknown[];
type Handler = (ctx: Context, params: Params) => Promise<unknown>;

interface Context {
  simnet: BitcoindSimnet;
  options: BitcoindServerOptions;
}

const handlers: Record<string, Handler> = {
  async getblockchaininfo({ simnet, options }) {
    const tip = await simnet.tipHeight();
    const block = simnet.getBlock(tip)!;
    return {
      chain: options.chain ?? 'regtest',
      blocks: tip,
      headers: tip,
      bestblockhash: block.hash,
      difficulty: 4.656542373906925e-10,
      time: block.time,
      mediantime: block.medianTimePast,
      verificationprogress: 1,
      initialblockdownload: tip === 0, // Core leaves IBD once a block newer than -maxtipage arrives
      chainwork: (BigInt(tip + 1) * 2n).toString(16).padStart(64, '0'),
      size_on_disk: 0,
      pruned: false,
      warnings: '',
    };
  },
  getblockcount: ({ simnet }) => simnet.tipHeight(),
  async getblockhash({ simnet }, params) {
    const height = int(params, 0, 'height');
    const block = height >= 0 ? simnet.getBlock(height) : undefined;
    if (!block) throw new RpcError(RPC_INVALID_PARAMETER, 'Block height out of range');
    return block.hash;
  },
  async getblock({ simnet }, params) {
    const hash = hashParam(params, 0, 'blockhash');
    const verbosity = params[1] === undefined ? 1 : typeof params[1] === 'boolean' ? Number(params[1]) : int(params, 1, 'verbosity');
    const raw = simnet.rawBlock(hash);
    if (!raw) throw new RpcError(RPC_INVALID_ADDRESS_OR_KEY, 'Block not found');
    if (verbosity !== 0) throw new RpcError(RPC_INVALID_PARAMETER, 'this simnet server answers getblock with verbosity 0 only');
    return bytesToHex(raw);
  },
  async getrawtransaction({ simnet, options }, params) {
    const txid = hashParam(params, 0, 'parameter 1');
    const verbose = params[1] ?? false;
    if (verbose !== false && verbose !== 0) throw new RpcError(RPC_INVALID_PARAMETER, 'this simnet server answers getrawtransaction with verbose false only');
    if (params[2] !== undefined) {
      const raw = simnet.rawBlock(hashParam(params, 2, 'parameter 3'));
      if (!raw) throw new RpcError(RPC_INVALID_ADDRESS_OR_KEY, 'Block hash not found');
      const tx = Block.fromBuffer(raw).transactions!.find((t) => t.getId() === txid);
      if (!tx) throw new RpcError(RPC_INVALID_ADDRESS_OR_KEY, 'No such transaction found in the provided block. Use gettransaction for wallet transactions.');
      return tx.toHex();
    }
    const status = await simnet.getTransaction(txid);
    if (status && (status.blockHeight === undefined || options.txindex)) return bytesToHex(status.tx);
    throw new RpcError(
      RPC_INVALID_ADDRESS_OR_KEY,
      options.txindex
        ? 'No such mempool or blockchain transaction. Use gettransaction for wallet transactions.'
        : 'No such mempool transaction. Use -txindex or provide a block hash to enable blockchain transaction queries. Use gettransaction for wallet transactions.',
    );
  },
  async sendrawtransaction({ simnet }, params) {
    const hex = params[0];
    if (typeof hex !== 'string') throw typeError(0, 'string', hex);
    let raw: Uint8Array;
    try {
      raw = hexToBytes(hex);
      Transaction.fromBuffer(raw);
    } catch {
      throw new RpcError(-22, 'TX decode failed. Make sure the tx has at least one input.');
    }
    const result = await simnet.broadcast(raw);
    if (result.accepted) return result.txid;
    const error = nodeErrorForRejection({ code: result.code, reason: result.reason });
    if (!error) return result.txid; // already in the mempool: Core answers the txid
    throw new RpcError(error.code, error.message);
  },
  async gettxout({ simnet }, params) {
    const txid = hashParam(params, 0, 'txid');
    const vout = int(params, 1, 'n');
    const includeMempool = params[2] === undefined ? true : bool(params, 2);
    if (vout < 0 || vout > 0xffffffff) return null;
    const outpoint: OutPoint = { txid, vout };
    const utxo = includeMempool ? await simnet.getUtxo(outpoint) : await confirmedCoin(simnet, outpoint);
    if (!utxo) return null;
    const tip = await simnet.tipHeight();
    const script = utxo.output.script;
    const address = addressOf(script);
    return {
      bestblock: simnet.getBlock(tip)!.hash,
      confirmations: utxo.confirmations,
      value: new BtcAmount(utxo.output.valueSat),
      scriptPubKey: { asm: '', desc: '', hex: bytesToHex(script), ...(address !== undefined && { address }), type: scriptType(script) },
      coinbase: simnet.isMinedCoinbase(txid),
    };
  },
  async estimatesmartfee({ simnet, options }, params) {
    const target = int(params, 0, 'conf_target');
    if (target < 1 || target > MAX_CONF_TARGET) throw new RpcError(RPC_INVALID_PARAMETER, `Invalid conf_target, must be between 1 and ${MAX_CONF_TARGET}`);
    if (options.feeEstimates === 'none') return { errors: ['Insufficient data or no feerate found'], blocks: 2 };
    const perKw = await simnet.estimateFeeratePerKw(target);
    return { feerate: new BtcAmount(perKw * 4n), blocks: Math.max(2, target) }; // sat/kvB = 4 × sat/kw; Core treats target 1 as 2
  },
  async generatetoaddress({ simnet }, params) {
    const count = int(params, 0, 'nblocks');
    if (typeof params[1] !== 'string') throw typeError(1, 'string', params[1]);
    if (count < 0 || count > MAX_GENERATE_PER_CALL) throw new RpcError(RPC_INVALID_PARAMETER, `this simnet server mines 0 to ${MAX_GENERATE_PER_CALL} blocks per call`);
    let coinbaseScript: Uint8Array;
    try {
      coinbaseScript = baddress.toOutputScript(params[1], networks.regtest);
    } catch {
      throw new RpcError(RPC_INVALID_ADDRESS_OR_KEY, 'Error: Invalid address');
    }
    return simnet.mine(count, { coinbaseScript });
  },
};

export async function serveBitcoindRpc(simnet: BitcoindSimnet, options: BitcoindServerOptions): Promise<BitcoindServer> {
  const { host, port } = checkListenOptions(options);
  if (options.chain !== undefined && options.chain !== 'regtest') throw new RangeError('"chain" only regtest is modelled');
  const auth = options.auth;
  if (!auth || typeof auth !== 'object') throw new TypeError('"auth" expected { user, password } or { cookieFile }');
  let expected: Uint8Array;
  const cookieFile = 'cookieFile' in auth ? auth.cookieFile : undefined;
  const writeCookie = async (): Promise<void> => {
    const secret = `__cookie__:${randomBytes(32).toString('hex')}`;
    await writeFile(cookieFile!, secret, { mode: 0o600 });
    await chmod(cookieFile!, 0o600); // writeFile's mode applies only to a new file
    expected = digest(basicHeader(secret));
  };
  if (cookieFile !== undefined) {
    if (typeof cookieFile !== 'string' || cookieFile === '') throw new TypeError('"auth.cookieFile" expected a path');
    await writeCookie();
  } else {
    const { user, password } = auth as { user: string; password: string };
    if (typeof user !== 'string' || user.includes(':') || typeof password !== 'string') throw new TypeError('"auth" expected { user, password } strings');
    expected = digest(basicHeader(`${user}:${password}`));
  }

  const ctx: Context = { simnet, options };
  const faults: BitcoindFault[] = [];
  const hung = new Set<Socket>();
  const server = createServer((req, res) => {
    const fault = faults.shift();
    if (fault === 'drop') return void req.socket.destroy();
    if (fault === 'hang') {
      hung.add(req.socket);
      req.socket.once('close', () => hung.delete(req.socket));
      req.resume();
      return;
    }
    handle(ctx, expected, fault, req, res).catch((e: unknown) => req.socket.destroy(e instanceof Error ? e : undefined));
  });
  const url = await listen(server, host, port);

  let closed: Promise<void> | undefined;
  return {
    url,
    faults: {
      next(kind) {
        if (!['garbage', 'hang', 'http500-empty', 'drop'].includes(kind)) throw new TypeError('"kind" expected garbage, hang, http500-empty or drop');
        faults.push(kind);
      },
    },
    async rotateCookie() {
      if (cookieFile === undefined) throw new TypeError('rotateCookie: the server uses user/password auth');
      await writeCookie();
    },
    close() {
      closed ??= new Promise<void>((resolve, reject) => {
        for (const socket of hung) socket.destroy();
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeIdleConnections();
      }).then(() => (cookieFile === undefined ? undefined : unlink(cookieFile).catch(() => undefined)));
      return closed;
    },
  };
}

async function handle(ctx: Context, expected: Uint8Array, fault: BitcoindFault | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'POST') {
    req.resume();
    return send(res, 405, 'JSONRPC server handles only POST requests', 'text/html');
  }
  const authorization = req.headers.authorization ?? '';
  if (!timingSafeEqual(digest(authorization), expected)) {
    // Core answers 401 with an empty body (and sleeps a little against brute force).
    req.resume();
    res.writeHead(401, { 'www-authenticate': 'Basic realm="jsonrpc"', 'content-length': 0 });
    return void res.end();
  }
  const text = await readBody(req);
  if (text === undefined) {
    res.setHeader('connection', 'close');
    req.resume();
    return send(res, 413, 'request body too large', 'text/plain');
  }
  if (fault === 'garbage') return send(res, 200, '<html><body>502 Bad Gateway</body></html>', 'text/html');
  if (fault === 'http500-empty') return send(res, 500, '', 'text/plain');

  let request: unknown;
  try {
    request = JSON.parse(text);
  } catch {
    return sendJson(res, 500, { result: null, error: { code: RPC_PARSE_ERROR, message: 'Parse error' }, id: null });
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    return sendJson(res, 500, { result: null, error: { code: RPC_INVALID_REQUEST, message: 'Invalid Request object' }, id: null });
  }
  const { id = null, method, params = [] } = request as Record<string, unknown>;
  if (typeof method !== 'string') {
    return sendJson(res, 500, { result: null, error: { code: RPC_INVALID_REQUEST, message: 'Method must be a string' }, id });
  }
  if (!Array.isArray(params)) {
    return sendJson(res, 500, { result: null, error: { code: RPC_INVALID_REQUEST, message: 'Params must be an array' }, id });
  }
  const handler = Object.hasOwn(handlers, method) ? handlers[method] : undefined;
  if (!handler) return sendJson(res, 404, { result: null, error: { code: RPC_METHOD_NOT_FOUND, message: 'Method not found' }, id });
  try {
    const result = await handler(ctx, params);
    return sendJson(res, 200, { result: result ?? null, error: null, id });
  } catch (e) {
    const error = e instanceof RpcError ? e : new RpcError(RPC_MISC_ERROR, e instanceof Error ? e.message : String(e));
    return sendJson(res, 500, { result: null, error: { code: error.code, message: error.message }, id });
  }
}

function send(res: ServerResponse, status: number, text: string, type: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendJson(res: ServerResponse, status: number, payload: unknown): void {
  // BtcAmount.toJSON leaves a marked string; unquote it into a JSON number with Core's 8 decimals.
  const text = JSON.stringify(payload).replace(/"\\u0000btc:(\d+\.\d{8})"/g, '$1');
  send(res, status, text + '\n', 'application/json');
}

/** The body as text, or undefined when over the limit. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  if (Number(req.headers['content-length'] ?? 0) > MAX_RPC_BODY_BYTES) return undefined;
  return new Promise<string | undefined>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_RPC_BODY_BYTES) return void chunks.push(chunk);
      req.off('data', onData).off('end', onEnd);
      resolve(undefined);
    };
    const onEnd = (): void => resolve(Buffer.concat(chunks).toString('utf8'));
    req.on('data', onData).on('end', onEnd).once('error', reject);
  });
}

/** The confirmed coin (gettxout without mempool): in the UTXO set even if a mempool tx spends it. */
async function confirmedCoin(simnet: BitcoindSimnet, outpoint: OutPoint): Promise<UtxoStatus | undefined> {
  const status = await simnet.getTransaction(outpoint.txid);
  if (!status || status.blockHeight === undefined) return undefined;
  const out = Transaction.fromBuffer(status.tx).outs[outpoint.vout];
  if (!out || out.script[0] === 0x6a) return undefined;
  const spend = await simnet.getSpend(outpoint);
  if (spend && spend.blockHeight !== undefined) return undefined;
  return { output: { valueSat: out.value, script: out.script }, blockHeight: status.blockHeight, confirmations: status.confirmations };
}

// ---- Params (Core's messages, approximately) --------------------------------------------------------

function typeError(index: number, expected: string, value: unknown): RpcError {
  const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return new RpcError(RPC_TYPE_ERROR, `JSON value of type ${actual} for parameter ${index + 1} is not of expected type ${expected}`);
}

function int(params: Params, index: number, _name: string): number {
  const value = params[index];
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw typeError(index, 'number', value);
  return value;
}

function bool(params: Params, index: number): boolean {
  const value = params[index];
  if (typeof value !== 'boolean') throw typeError(index, 'bool', value);
  return value;
}

function hashParam(params: Params, index: number, name: string): string {
  const value = params[index];
  if (typeof value !== 'string') throw typeError(index, 'string', value);
  if (value.length !== 64) throw new RpcError(RPC_INVALID_PARAMETER, `${name} must be of length 64 (not ${value.length}, for '${value.slice(0, 80)}')`);
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new RpcError(RPC_INVALID_PARAMETER, `${name} must be hexadecimal string (not '${value}')`);
  return value.toLowerCase();
}

// ---- Output scripts ----------------------------------------------------------------------------------

function addressOf(script: Uint8Array): string | undefined {
  try {
    return baddress.fromOutputScript(script, networks.regtest);
  } catch {
    return undefined;
  }
}

/** Core's TxoutType names (src/script/solver.cpp GetTxnOutputType). */
function scriptType(s: Uint8Array): string {
  if (s[0] === 0x6a) return 'nulldata';
  if (s.length === 25 && s[0] === 0x76 && s[1] === 0xa9 && s[2] === 0x14 && s[23] === 0x88 && s[24] === 0xac) return 'pubkeyhash';
  if (s.length === 23 && s[0] === 0xa9 && s[1] === 0x14 && s[22] === 0x87) return 'scripthash';
  if (((s.length === 35 && s[0] === 33) || (s.length === 67 && s[0] === 65)) && s[s.length - 1] === 0xac) return 'pubkey';
  if (s.length === 22 && s[0] === 0x00 && s[1] === 20) return 'witness_v0_keyhash';
  if (s.length === 34 && s[0] === 0x00 && s[1] === 32) return 'witness_v0_scripthash';
  if (s.length === 34 && s[0] === 0x51 && s[1] === 32) return 'witness_v1_taproot';
  if (s.length >= 4 && s.length <= 42 && s[1] === s.length - 2 && (s[0] === 0x00 || (s[0]! >= 0x51 && s[0]! <= 0x60))) return 'witness_unknown';
  return 'nonstandard';
}

function basicHeader(credentials: string): string {
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

/** Fixed-length digests, so timingSafeEqual compares headers of any length. */
function digest(text: string): Uint8Array {
  return createHash('sha256').update(text, 'utf8').digest();
}


/**
 * Serve a Simnet as an Esplora REST API on loopback, so the Esplora adapter (src/chain/esplora) runs end
 * to end in tests and the demo. Answers as Blockstream's esplora/electrs does (API.md): text bodies
 * (text/plain) for heights, hashes, hex and broadcast results, JSON (application/json) for statuses,
 * spends, UTXO lists and fee estimates, binary (application/octet-stream) for raw blocks, and errors as
 * text: 404 "Transaction not found" / "Block not found", 400 for malformed arguments, and a refused
 * broadcast as 400 `sendrawtransaction RPC error: {"code":-26,"message":"non-BIP68-final"}`, with the
 * code and message bitcoind would give (node-errors.ts). A transaction already in the mempool is
 * answered with its txid, as bitcoind does.
 *
 *   GET  /blocks/tip/height   GET /blocks/tip/hash   GET /block-height/:height   GET /block/:hash/raw
 *   GET  /tx/:txid/hex        GET /tx/:txid/raw      GET /tx/:txid/status        GET /tx/:txid/outspend/:vout
 *   POST /tx                  GET /address/:address/utxo                         GET /fee-estimates
 *
 * As electrs: /tx/:txid/status of an unknown txid is {"confirmed":false} and its outspend {"spent":false}.
 * Fee estimates cover API.md's targets (2, 3, 4, 5, 6, 10, 20, 25, 144, 504, 1008) at the Simnet's
 * feerate in sat/vB, or {} (feeEstimates: 'none') as a fresh regtest esplora answers.
 *
 * `faults.next(kind)` makes the next request fail on purpose: 'garbage' (200 with a body that is not
 * what the endpoint documents), 'hang' (never answered; closed with the server), 'http503', 'drop'
 * (the connection is destroyed unanswered).
 *
 * @example
 * const server = await serveEsplora(simnet, { network: 'regtest' });
 * const chain = new EsploraChain({ url: server.url, network: 'regtest' });
 * server.faults.next('http503'); // the next request gets 503, the adapter retries
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { checkListenOptions, listen } from './listen.js';
import { address as baddress, networks } from 'bitcoinjs-lib';
import { bytesToHex, hexToBytes } from '../../bytes.js';
import { nodeErrorForRejection } from '../node-errors.js';
import type { Simnet } from './simnet.js';

export type EsploraFault = 'garbage' | 'hang' | 'http503' | 'drop';

export interface EsploraServerOptions {
  /** Only regtest: the Simnet is a regtest-like chain; addresses decode as bcrt1…/m…/n…/2…. */
  network?: 'regtest';
  /** 'simnet' (default): the Simnet's feerate for every target; 'none': {} as a fresh regtest. */
  feeEstimates?: 'simnet' | 'none';
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0: a free port, read it from `url`. */
  port?: number;
  /** Needed to listen on a non-loopback host: anyone who can reach it can broadcast. */
  allowRemote?: boolean;
}

export interface EsploraFaults {
  /** The next `count` requests (default 1) fail with `kind`, after any already queued. */
  next(kind: EsploraFault, count?: number): void;
  /** Forget queued faults. */
  clear(): void;
  /** Faults still queued. */
  readonly pending: number;
}

export interface EsploraServer {
  /** e.g. http://127.0.0.1:40123 (the API root: GET `${url}/blocks/tip/height`). */
  url: string;
  faults: EsploraFaults;
  /** Stop the server, closing every connection (hung requests included). */
  close(): Promise<void>;
}

/** A broadcast body; generous (the largest standard transaction, 400,000 weight, is at most 800 kB of hex). */
export const MAX_TX_BODY_BYTES = 4 * 1024 * 1024;
/** What Esplora lists (API.md). */
export const FEE_TARGETS = [2, 3, 4, 5, 6, 10, 20, 25, 144, 504, 1008] as const;
const FAULTS: readonly EsploraFault[] = ['garbage', 'hang', 'http503', 'drop'];

interface Reply {
  status: number;
  type: 'text/plain' | 'application/json' | 'application/octet-stream' | 'text/html';
  body: string | Uint8Array;
}

const text = (body: string, status = 200): Reply => ({ status, type: 'text/plain', body });
const json = (value: unknown): Reply => ({ status: 200, type: 'application/json', body: JSON.stringify(value) });
const binary = (body: Uint8Array): Reply => ({ status: 200, type: 'application/octet-stream', body });

/** An answer that is not an error of ours: the request was wrong (400) or names nothing (404). */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function serveEsplora(simnet: Simnet, options: EsploraServerOptions = {}): Promise<EsploraServer> {
  const { host, port } = checkListenOptions(options);
  if ((options.network ?? 'regtest') !== 'regtest') throw new RangeError('"network" expected regtest');
  const feeEstimates = options.feeEstimates ?? 'simnet';
  if (feeEstimates !== 'simnet' && feeEstimates !== 'none') throw new RangeError('"feeEstimates" expected simnet or none');

  const queued: EsploraFault[] = [];
  const faults: EsploraFaults = {
    next(kind, count = 1) {
      if (!FAULTS.includes(kind)) throw new TypeError(`"kind" expected one of ${FAULTS.join(', ')}`);
      if (!Number.isSafeInteger(count) || count < 1) throw new RangeError('"count" expected an integer >= 1');
      for (let i = 0; i < count; i++) queued.push(kind);
    },
    clear() {
      queued.length = 0;
    },
    get pending() {
      return queued.length;
    },
  };

  const server = createServer((req, res) => {
    const fault = queued.shift();
    if (fault) return void injectFault(fault, req, res);
    route(simnet, feeEstimates, req)
      .catch((e: unknown) => {
        if (e instanceof HttpError) return text(e.message, e.status);
        // Whatever else went wrong is ours: answer as a server error, never crash.
        return text(e instanceof Error ? e.message : String(e), 500);
      })
      .then((reply) => send(req, res, reply))
      .catch((e: unknown) => req.socket.destroy(e instanceof Error ? e : undefined));
  });
  const url = await listen(server, host, port);

  let closed: Promise<void> | undefined;
  return {
    url,
    faults,
    close() {
      closed ??= new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections(); // hung requests too
      });
      return closed;
    },
  };
}

function injectFault(fault: EsploraFault, req: IncomingMessage, res: ServerResponse): void {
  req.resume(); // discard any body
  switch (fault) {
    case 'hang':
      return; // never answered; server.close() ends it
    case 'drop':
      req.socket.destroy();
      return;
    case 'http503':
      return send(req, res, text('Service Unavailable', 503));
    case 'garbage':
      // What a captive portal or a misconfigured proxy answers.
      return send(req, res, { status: 200, type: 'text/html', body: '<html><body>Please log in to continue.</body></html>' });
  }
}

function send(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  const body = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : Buffer.from(reply.body);
  const headers: Record<string, string | number> = { 'content-type': reply.type, 'content-length': body.length };
  if (!req.complete) {
    // An oversized body is discarded unread; then the connection closes.
    headers.connection = 'close';
    req.resume();
  }
  res.writeHead(reply.status, headers);
  res.end(body);
}

async function route(simnet: Simnet, feeEstimates: 'simnet' | 'none', req: IncomingMessage): Promise<Reply> {
  const path = new URL(req.url ?? '/', 'http://esplora').pathname;
  let parts: string[];
  try {
    parts = path.split('/').slice(1).map(decodeURIComponent);
  } catch {
    throw new HttpError(400, 'Invalid request');
  }
  const method = req.method ?? 'GET';
  const [a, b, c, d] = parts;

  if (method === 'POST') {
    if (parts.length === 1 && a === 'tx') return broadcast(simnet, await readBody(req));
    throw new HttpError(404, `endpoint does not exist ${JSON.stringify(path)}`);
  }
  if (method !== 'GET') throw new HttpError(405, 'Method not allowed');

  if (a === 'blocks' && b === 'tip' && parts.length === 3) {
    const tip = await simnet.tipHeight();
    if (c === 'height') return text(String(tip));
    if (c === 'hash') return text(simnet.getBlock(tip)!.hash);
  }
  if (a === 'block-height' && parts.length === 2) {
    const block = simnet.getBlock(number(b!));
    if (!block) throw new HttpError(404, 'Block not found');
    return text(block.hash);
  }
  if (a === 'block' && c === 'raw' && parts.length === 3) {
    const raw = simnet.rawBlock(hash(b!));
    if (!raw) throw new HttpError(404, 'Block not found');
    return binary(raw);
  }
  if (a === 'tx' && parts.length >= 3) {
    const txid = hash(b!);
    if (c === 'hex' && parts.length === 3) return text(bytesToHex(await transaction(simnet, txid)));
    if (c === 'raw' && parts.length === 3) return binary(await transaction(simnet, txid));
    if (c === 'status' && parts.length === 3) {
      const status = await simnet.getTransaction(txid);
      return json(txStatus(simnet, status?.blockHeight));
    }
    if (c === 'outspend' && parts.length === 4) {
      const vout = number(d!);
      if (vout > 0xffffffff) throw new HttpError(400, 'Invalid number');
      const spend = await simnet.getSpend({ txid, vout });
      if (!spend) return json({ spent: false });
      return json({ spent: true, txid: spend.txid, vin: spend.inputIndex, status: txStatus(simnet, spend.blockHeight) });
    }
  }
  if (a === 'address' && c === 'utxo' && parts.length === 3) {
    let script: Uint8Array;
    try {
      script = baddress.toOutputScript(b!, networks.regtest);
    } catch {
      throw new HttpError(400, 'Invalid Bitcoin address');
    }
    return json(
      simnet.utxosForScript(script).map((u) => ({
        txid: u.outpoint.txid,
        vout: u.outpoint.vout,
        status: txStatus(simnet, u.blockHeight),
        value: Number(u.output.valueSat), // at most 21e14: exact as a JSON number
      })),
    );
  }
  if (a === 'fee-estimates' && parts.length === 1) {
    if (feeEstimates === 'none') return json({});
    const entries: string[] = [];
    for (const target of FEE_TARGETS) entries.push(`"${target}":${satPerVb(await simnet.estimateFeeratePerKw(target))}`);
    return { status: 200, type: 'application/json', body: `{${entries.join(',')}}` };
  }
  throw new HttpError(404, `endpoint does not exist ${JSON.stringify(path)}`);
}

async function broadcast(simnet: Simnet, body: string): Promise<Reply> {
  // bitcoind decodes the hex itself: what is not hex does not decode.
  const raw = /^([0-9a-fA-F]{2})+$/.test(body) ? hexToBytes(body) : new Uint8Array(0);
  const result = await simnet.broadcast(raw);
  if (result.accepted) return text(result.txid);
  const error = nodeErrorForRejection({ code: result.code, reason: result.reason });
  if (!error) return text(result.txid); // already in the mempool: bitcoind answers the txid
  return text(`sendrawtransaction RPC error: ${JSON.stringify({ code: error.code, message: error.message })}`, 400);
}

async function transaction(simnet: Simnet, txid: string): Promise<Uint8Array> {
  const status = await simnet.getTransaction(txid);
  if (!status) throw new HttpError(404, 'Transaction not found');
  return status.tx;
}

/** Esplora's status object: block fields only when confirmed. */
function txStatus(simnet: Simnet, height: number | undefined): unknown {
  if (height === undefined) return { confirmed: false };
  const block = simnet.getBlock(height)!;
  return { confirmed: true, block_height: height, block_hash: block.hash, block_time: block.time };
}

/** feerate_per_kw / 250 as an exact decimal (250 = 2 × 5³: at most three decimals). */
function satPerVb(perKw: bigint): string {
  const thousandths = perKw * 4n; // perKw / 250 = perKw * 4 / 1000
  const whole = thousandths / 1000n;
  const fraction = (thousandths % 1000n).toString().padStart(3, '0').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : `${whole}`;
}

async function readBody(req: IncomingMessage): Promise<string> {
  if (Number(req.headers['content-length'] ?? 0) > MAX_TX_BODY_BYTES) throw tooLarge();
  const chunks = await new Promise<Buffer[]>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_TX_BODY_BYTES) return void chunks.push(chunk);
      req.off('data', onData).off('end', onEnd);
      reject(tooLarge());
    };
    const onEnd = (): void => resolve(chunks);
    req.on('data', onData).on('end', onEnd).once('error', reject);
  });
  return Buffer.concat(chunks).toString('utf8');
}

function tooLarge(): HttpError {
  return new HttpError(413, `body over ${MAX_TX_BODY_BYTES} bytes`);
}

function number(value: string): number {
  if (!/^\d{1,10}$/.test(value)) throw new HttpError(400, 'Invalid number');
  return Number(value);
}

function hash(value: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new HttpError(400, 'Invalid hex string');
  return value.toLowerCase();
}


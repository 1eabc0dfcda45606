/**
 * Serve a Simnet over loopback HTTP, so several processes (a payer and a payee) share one chain through
 * SimnetClient (src/chain/simnet-client.ts). node:http only; a test chain, so it refuses to listen on a
 * non-loopback address unless `allowRemote` is set.
 *
 * Protocol: every call is `POST /<method>` with a JSON object body (an empty body counts as `{}`).
 * Success is 200 `{"result": …}`; failure is `{"error": {"code", "message"}}` with
 *   400 BAD_JSON (body is not a JSON object) or BAD_FIELD (a field is missing or malformed, or the
 *       Simnet refused the argument), 404 NOT_FOUND (unknown path), 405 METHOD_NOT_ALLOWED (not POST),
 *   413 BODY_TOO_LARGE (body over 1 MiB), 500 INTERNAL.
 * JSON values: amounts are decimal strings, bytes lowercase hex, txids and block hashes display hex,
 * "not there" is null (a missing blockHeight is null too).
 *
 *   method                 body                                   result
 *   tipHeight              {}                                     number
 *   blockHash              {height}                               hash (400 above the tip)
 *   broadcast              {txHex}                                {accepted: true, txid} | {accepted: false, txid, code, reason}
 *   getTransaction         {txid}                                 {txHex, blockHeight, confirmations} | null
 *   getUtxo                {outpoint: {txid, vout}}               {output: {valueSat, scriptHex}, blockHeight, confirmations} | null
 *   getSpend               {outpoint: {txid, vout}}               {txid, inputIndex, blockHeight} | null
 *   estimateFeeratePerKw   {targetBlocks}                         decimal string (sat per 1000 weight)
 *   mine                   {count?} (default 1, at most 1000)     [hash, …]
 *   faucet                 {scriptHex, valueSat}                  {txid, vout}
 *   utxosForScript         {scriptHex}                            [{outpoint, output, blockHeight, confirmations, coinbase}, …]
 *   mempool                {}                                     [txid, …] (parents first)
 *
 * @example
 * const server = await serveSimnet(new Simnet(), { autoMine: { intervalMs: 500 } });
 * spawn('node', ['payee.js', '--chain', server.url]);
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { checkListenOptions, listen } from './listen.js';
import type { OutPoint, SpendInfo, TxStatus, UtxoStatus } from '../port.js';
import { bytesToHex, hexToBytes } from '../../bytes.js';
import { systemClock, type Clock } from '../../clock.js';
import type { Simnet, SimnetUtxo } from './simnet.js';

export interface SimnetServerOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0: a free port, read it from `url`. */
  port?: number;
  /** Mine a block every intervalMs while the mempool is not empty, so confirmations come by themselves. */
  autoMine?: { intervalMs: number } | 'off';
  /** Needed to listen on a non-loopback host: anyone who can reach it can mine and mint coins. */
  allowRemote?: boolean;
  /** Drives autoMine; default systemClock. */
  clock?: Clock;
}

export interface SimnetServer {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  /** Stop autoMine and the server, closing idle keep-alive connections. */
  close(): Promise<void>;
}

export const MAX_BODY_BYTES = 1024 * 1024;
const MAX_MINE_PER_CALL = 1000;

type ErrorCode = 'BAD_JSON' | 'BAD_FIELD' | 'NOT_FOUND' | 'METHOD_NOT_ALLOWED' | 'BODY_TOO_LARGE' | 'INTERNAL';

/** Thrown while reading a request; becomes the HTTP error response. */
class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type Body = Record<string, unknown>;
type Handler = (simnet: Simnet, body: Body) => Promise<unknown>;

const handlers: Record<string, Handler> = {
  tipHeight: (s) => s.tipHeight(),
  async blockHash(s, body) {
    const height = uint(body, 'height');
    const block = s.getBlock(height);
    if (!block) throw new RequestError(400, 'BAD_FIELD', `"height" ${height} is above the tip`);
    return block.hash;
  },
  broadcast: (s, body) => s.broadcast(hex(body, 'txHex')),
  getTransaction: async (s, body) => encodeTxStatus(await s.getTransaction(txid(body.txid, 'txid'))),
  getUtxo: async (s, body) => encodeUtxo(await s.getUtxo(outpoint(body))),
  getSpend: async (s, body) => encodeSpend(await s.getSpend(outpoint(body))),
  estimateFeeratePerKw: async (s, body) => (await s.estimateFeeratePerKw(uint(body, 'targetBlocks'))).toString(),
  async mine(s, body) {
    const count = body.count === undefined ? 1 : uint(body, 'count');
    if (count > MAX_MINE_PER_CALL) throw new RequestError(400, 'BAD_FIELD', `"count" at most ${MAX_MINE_PER_CALL} per call`);
    return s.mine(count);
  },
  faucet: (s, body) => s.faucet(hex(body, 'scriptHex'), amount(body, 'valueSat')),
  utxosForScript: async (s, body) => s.utxosForScript(hex(body, 'scriptHex')).map(encodeSimnetUtxo),
  mempool: async (s) => s.mempool(),
};

export async function serveSimnet(simnet: Simnet, options: SimnetServerOptions = {}): Promise<SimnetServer> {
  const { host, port } = checkListenOptions(options);
  const autoMine = options.autoMine ?? 'off';
  if (autoMine !== 'off' && (!Number.isFinite(autoMine.intervalMs) || autoMine.intervalMs <= 0)) {
    throw new RangeError('"autoMine.intervalMs" expected a number > 0');
  }
  const clock = options.clock ?? systemClock;

  const server = createServer((req, res) => {
    handle(simnet, req, res).catch((e: unknown) => {
      // Only a failure to write the response could get here: the connection is unusable.
      req.socket.destroy(e instanceof Error ? e : undefined);
    });
  });
  const url = await listen(server, host, port);

  let cancelMine: (() => void) | undefined;
  if (autoMine !== 'off') {
    const tick = (): void => {
      if (simnet.mempool().length > 0) simnet.mine(1).catch(() => {}); // mine(1) rejects only on a simnet bug
      cancelMine = clock.setTimer(autoMine.intervalMs, tick);
    };
    cancelMine = clock.setTimer(autoMine.intervalMs, tick);
  }

  let closed: Promise<void> | undefined;
  return {
    url,
    close() {
      closed ??= new Promise<void>((resolve, reject) => {
        cancelMine?.();
        cancelMine = undefined;
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}

async function handle(simnet: Simnet, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let status = 200;
  let payload: unknown;
  try {
    const name = new URL(req.url ?? '/', 'http://simnet').pathname.slice(1);
    const handler = Object.hasOwn(handlers, name) ? handlers[name] : undefined;
    if (!handler) throw new RequestError(404, 'NOT_FOUND', `no method ${JSON.stringify(name)}`);
    if (req.method !== 'POST') throw new RequestError(405, 'METHOD_NOT_ALLOWED', 'use POST');
    payload = { result: (await handler(simnet, await readBody(req))) ?? null };
  } catch (e) {
    const error = asRequestError(e);
    status = error.status;
    payload = { error: { code: error.code, message: error.message } };
    if (!req.complete) {
      // An oversized body is discarded unread (the client may still be sending it); then the connection closes.
      res.setHeader('connection', 'close');
      req.resume();
    }
  }
  const text = JSON.stringify(payload, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function asRequestError(e: unknown): RequestError {
  if (e instanceof RequestError) return e;
  // The Simnet throws TypeError/RangeError (AmountError included) for arguments it refuses.
  if (e instanceof TypeError || e instanceof RangeError) return new RequestError(400, 'BAD_FIELD', e.message);
  return new RequestError(500, 'INTERNAL', e instanceof Error ? e.message : String(e));
}

async function readBody(req: IncomingMessage): Promise<Body> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  // Events, not for-await: leaving a for-await early destroys the socket before we can answer 413.
  const chunks = await new Promise<Buffer[]>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk);
      req.off('data', onData).off('end', onEnd);
      reject(tooLarge());
    };
    const onEnd = (): void => resolve(chunks);
    req.on('data', onData).on('end', onEnd).once('error', reject);
  });
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new RequestError(400, 'BAD_JSON', 'body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RequestError(400, 'BAD_JSON', 'body must be a JSON object');
  return body as Body;
}

// ---- Request fields --------------------------------------------------------------------------------

function tooLarge(): RequestError {
  return new RequestError(413, 'BODY_TOO_LARGE', `body over ${MAX_BODY_BYTES} bytes`);
}

function badField(field: string, expected: string): RequestError {
  return new RequestError(400, 'BAD_FIELD', `"${field}" expected ${expected}`);
}

function uint(body: Body, field: string): number {
  const value = body[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw badField(field, 'an integer >= 0');
  return value;
}

function hex(body: Body, field: string): Uint8Array {
  const value = body[field];
  if (typeof value !== 'string' || value.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(value)) throw badField(field, 'even-length hex');
  return hexToBytes(value);
}

function amount(body: Body, field: string): bigint {
  const value = body[field];
  if (typeof value !== 'string' || !/^(0|[1-9]\d{0,18})$/.test(value)) throw badField(field, 'a decimal integer string');
  return BigInt(value);
}

function txid(value: unknown, field: string): string {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) throw badField(field, '64 hex characters');
  return value.toLowerCase();
}

function outpoint(body: Body): OutPoint {
  const value = body.outpoint;
  if (typeof value !== 'object' || value === null) throw badField('outpoint', '{txid, vout}');
  const { txid: id, vout } = value as Record<string, unknown>;
  if (typeof vout !== 'number' || !Number.isSafeInteger(vout) || vout < 0 || vout > 0xffffffff) throw badField('outpoint.vout', 'a uint32');
  return { txid: txid(id, 'outpoint.txid'), vout };
}

// ---- Results (bigints become strings in JSON.stringify's replacer) ---------------------------------

function encodeTxStatus(status: TxStatus | undefined): unknown {
  return status && { txHex: bytesToHex(status.tx), blockHeight: status.blockHeight ?? null, confirmations: status.confirmations };
}

function encodeUtxo(utxo: UtxoStatus | undefined): unknown {
  return utxo && {
    output: { valueSat: utxo.output.valueSat, scriptHex: bytesToHex(utxo.output.script) },
    blockHeight: utxo.blockHeight ?? null,
    confirmations: utxo.confirmations,
  };
}

function encodeSimnetUtxo(utxo: SimnetUtxo): unknown {
  return { outpoint: utxo.outpoint, ...(encodeUtxo(utxo) as object), coinbase: utxo.coinbase };
}

function encodeSpend(spend: SpendInfo | undefined): unknown {
  return spend && { txid: spend.txid, inputIndex: spend.inputIndex, blockHeight: spend.blockHeight ?? null };
}


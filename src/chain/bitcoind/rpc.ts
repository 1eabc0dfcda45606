/**
 * BitcoindRpc: Bitcoin Core's JSON-RPC 1.0 over HTTP POST (doc/JSON-RPC-interface.md), through the one
 * HTTP path of the chain adapters (../http.ts). Authentication is HTTP Basic, from an rpcuser/rpcpassword
 * pair or from the cookie file bitcoind writes at each start (`__cookie__:<hex>`), read lazily and read
 * again once after a 401 because a restarted node has a new cookie.
 *
 * Errors are ChainClientErrors: 401/403 CHAIN_AUTH; a JSON-RPC error body (Core answers HTTP 500, or 404
 * for -32601 method not found) CHAIN_RPC_ERROR with `rpcCode` (a BitcoindRpcError, which also keeps the
 * node's message); any other non-200 CHAIN_HTTP_ERROR; a body that is not a JSON-RPC answer to this very
 * request CHAIN_BAD_RESPONSE; no answer CHAIN_UNREACHABLE or CHAIN_TIMEOUT. Credentials and URL userinfo
 * never appear in a message: only the URL's origin does.
 *
 * @example
 * const rpc = new BitcoindRpc({ url: 'http://127.0.0.1:18443', auth: { cookieFile: '/home/me/.bitcoin/regtest/.cookie' } });
 * const height = await rpc.call('getblockcount');
 */
import { readFile } from 'node:fs/promises';
import { ChainClientError, isTransientChainError } from '../errors.js';
import { httpRequest, origin, withRetry, type RetryOptions } from '../http.js';
import { isObject } from '../validate.js';
import type { Clock } from '../../clock.js';

export type BitcoindAuth = { user: string; password: string } | { cookieFile: string };

export interface BitcoindRpcOptions {
  /** e.g. http://127.0.0.1:8332 (a path such as /wallet/<name> is kept). Userinfo in it is used as credentials when `auth` is absent. */
  url: string;
  auth?: BitcoindAuth;
  /** Per request, including reading the answer; default 10000 ms. */
  timeoutMs?: number;
  /** Retry transient failures (CHAIN_UNREACHABLE, CHAIN_TIMEOUT) with back-off; default: one attempt. */
  retry?: RetryOptions;
  /** Drives retry back-off; default systemClock. */
  clock?: Clock;
  /** Default 16 MiB (../http.ts): a 4 MB block is 8 MB of hex. */
  maxResponseBytes?: number;
}

/** A JSON-RPC error answered by the node: CHAIN_RPC_ERROR with `rpcCode` and the node's own message. */
export class BitcoindRpcError extends ChainClientError {
  /** The node's message, bounded to 500 characters (untrusted text). */
  readonly rpcMessage: string;
  constructor(method: string, rpcCode: number, rpcMessage: string, status: number) {
    super('CHAIN_RPC_ERROR', `${method}: RPC error ${rpcCode}: ${rpcMessage}`, { status, rpcCode });
    this.rpcMessage = rpcMessage;
  }
}

const MAX_MESSAGE_CHARS = 500;

export class BitcoindRpc {
  readonly #url: string;
  readonly #origin: string;
  readonly #auth: BitcoindAuth;
  readonly #timeoutMs: number;
  readonly #retry: RetryOptions | undefined;
  readonly #maxResponseBytes: number | undefined;
  #nextId = 1;
  /** The Authorization header from the cookie file, once read. */
  #cookieHeader: string | undefined;

  constructor(options: BitcoindRpcOptions) {
    if (!options || typeof options !== 'object') throw new TypeError('"options" expected an object');
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new TypeError('"url" expected an http:// or https:// URL');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError('"url" expected an http:// or https:// URL');
    let auth = options.auth;
    if (auth === undefined && parsed.username !== '') {
      auth = { user: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) };
    }
    // fetch refuses URLs with credentials, and they must not reach a message: strip them.
    parsed.username = '';
    parsed.password = '';
    if (!auth) throw new TypeError('"auth" expected { user, password } or { cookieFile } (or credentials in "url")');
    if ('cookieFile' in auth) {
      if (typeof auth.cookieFile !== 'string' || auth.cookieFile === '') throw new TypeError('"auth.cookieFile" expected a path');
      this.#auth = { cookieFile: auth.cookieFile };
    } else {
      if (typeof auth.user !== 'string' || auth.user.includes(':')) throw new TypeError('"auth.user" expected a string without ":"');
      if (typeof auth.password !== 'string') throw new TypeError('"auth.password" expected a string');
      this.#auth = { user: auth.user, password: auth.password };
    }
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new RangeError('"timeoutMs" expected an integer > 0');
    this.#url = parsed.href;
    this.#origin = origin(parsed.href);
    this.#timeoutMs = timeoutMs;
    this.#maxResponseBytes = options.maxResponseBytes;
    if (options.retry) {
      const narrower = options.retry.retryable;
      this.#retry = {
        ...options.retry,
        ...(options.clock && !options.retry.clock && { clock: options.clock }),
        // Transient errors only, whatever the caller's predicate says: anything else would repeat a refusal.
        retryable: (e) => isTransientChainError(e) && (narrower ? narrower(e) : true),
      };
    }
  }

  /** The URL's scheme, host and port (never credentials): for messages and logs. */
  get origin(): string {
    return this.#origin;
  }

  /**
   * Call `method` with positional `params`; resolves with the answer's `result`.
   *
   * @example
   * const hash = await rpc.call('getblockhash', [0]);
   */
  async call(method: string, params: unknown[] = []): Promise<unknown> {
    if (typeof method !== 'string' || !/^[a-z0-9_]+$/i.test(method)) throw new TypeError('"method" expected an RPC name');
    if (!Array.isArray(params)) throw new TypeError('"params" expected an array');
    const once = () => this.#callWithAuth(method, params);
    return this.#retry ? withRetry(once, this.#retry) : once();
  }

  async #callWithAuth(method: string, params: unknown[]): Promise<unknown> {
    if (!('cookieFile' in this.#auth)) return this.#exchange(method, params, basic(this.#auth.user, this.#auth.password));
    const hadCookie = this.#cookieHeader !== undefined;
    const header = this.#cookieHeader ?? (await this.#readCookie());
    try {
      return await this.#exchange(method, params, header);
    } catch (e) {
      // A restarted bitcoind has written a new cookie: read it again, once, and retry.
      if (!hadCookie || !(e instanceof ChainClientError) || e.code !== 'CHAIN_AUTH') throw e;
      return this.#exchange(method, params, await this.#readCookie());
    }
  }

  async #readCookie(): Promise<string> {
    const path = (this.#auth as { cookieFile: string }).cookieFile;
    this.#cookieHeader = undefined;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      const reason = (e as NodeJS.ErrnoException)?.code ?? 'unreadable';
      throw new ChainClientError('CHAIN_AUTH', `bitcoind cookie file ${path}: ${reason} (is bitcoind running, with this datadir and network?)`);
    }
    const line = text.split(/\r?\n/)[0] ?? '';
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ChainClientError('CHAIN_AUTH', `bitcoind cookie file ${path}: expected "user:password"`);
    this.#cookieHeader = basic(line.slice(0, colon), line.slice(colon + 1));
    return this.#cookieHeader;
  }

  async #exchange(method: string, params: unknown[], authorization: string): Promise<unknown> {
    const id = this.#nextId++;
    const res = await httpRequest({
      url: this.#url,
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization },
      body: JSON.stringify({ jsonrpc: '1.0', id, method, params }),
      timeoutMs: this.#timeoutMs,
      ...(this.#maxResponseBytes !== undefined && { maxResponseBytes: this.#maxResponseBytes }),
      what: method,
    });
    if (res.status === 401 || res.status === 403) {
      throw new ChainClientError('CHAIN_AUTH', `${method}: bitcoind at ${this.#origin} refused the credentials (HTTP ${res.status})`, { status: res.status });
    }
    let json: unknown;
    try {
      json = JSON.parse(res.text());
    } catch {
      json = undefined;
    }
    const error = isObject(json) ? json.error : undefined;
    if (isObject(error)) {
      const code = error.code;
      if (typeof code !== 'number' || !Number.isSafeInteger(code)) throw bad(method, 'error.code', 'an integer');
      // Core answers id null when it could not read the request's id.
      if (json && isObject(json) && json.id !== id && json.id !== null) throw bad(method, 'id', `${id}`);
      const message = typeof error.message === 'string' ? error.message.slice(0, MAX_MESSAGE_CHARS) : '';
      throw new BitcoindRpcError(method, code, message, res.status);
    }
    if (res.status !== 200) {
      throw new ChainClientError('CHAIN_HTTP_ERROR', `${method}: bitcoind at ${this.#origin} answered HTTP ${res.status}`, { status: res.status });
    }
    if (!isObject(json)) throw bad(method, 'body', 'a JSON-RPC answer object');
    if (json.id !== id) throw bad(method, 'id', `${id}`);
    if (error !== null && error !== undefined) throw bad(method, 'error', 'null or an error object');
    if (!Object.hasOwn(json, 'result')) throw bad(method, 'result', 'a "result" member');
    return json.result;
  }
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

function bad(method: string, field: string, expected: string): ChainClientError {
  return new ChainClientError('CHAIN_BAD_RESPONSE', `${method}.${field}: expected ${expected}`);
}

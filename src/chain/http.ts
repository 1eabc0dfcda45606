/**
 * The one HTTP path of the chain adapters (simnet server, bitcoind JSON-RPC, Esplora): Node's fetch with
 * a timeout covering the whole answer, a cap on the response size read before anything is decoded, no
 * redirects, and failures turned into ChainClientErrors. `withRetry` adds back-off for idempotent reads.
 *
 * @example
 * const res = await httpRequest({ url: `${base}/blocks/tip/height`, timeoutMs: 10_000, what: 'tip height' });
 * if (res.status !== 200) throw new ChainClientError('CHAIN_HTTP_ERROR', …);
 * const height = Number(res.text());
 */
import { ChainClientError, isTransientChainError } from './errors.js';
import { systemClock, type Clock } from '../clock.js';

export interface HttpRequestOptions {
  url: string;
  /** Default 'GET'. */
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** For the whole exchange, including reading the answer. */
  timeoutMs: number;
  /** Answers above this are refused unread; default 16 MiB (a 4 MB block is 8 MB of hex). */
  maxResponseBytes?: number;
  /** Names the request in error messages, e.g. 'getblockhash' or 'GET /blocks/tip/height'. */
  what: string;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
  /** The body as UTF-8 (invalid sequences replaced). */
  text(): string;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

const decoder = new TextDecoder('utf-8', { fatal: false });

/** One request. Throws ChainClientError CHAIN_UNREACHABLE, CHAIN_TIMEOUT or CHAIN_BAD_RESPONSE (too large). */
export async function httpRequest(options: HttpRequestOptions): Promise<HttpResponse> {
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    const res = await fetch(options.url, {
      method: options.method ?? 'GET',
      ...(options.headers && { headers: options.headers }),
      ...(options.body !== undefined && { body: options.body }),
      redirect: 'error',
      signal,
    });
    const body = await readLimited(res, maxBytes, options.what);
    return { status: res.status, headers: res.headers, body, text: () => decoder.decode(body) };
  } catch (e) {
    if (e instanceof ChainClientError) throw e;
    if (signal.aborted) {
      throw new ChainClientError('CHAIN_TIMEOUT', `${options.what}: no answer from ${origin(options.url)} within ${options.timeoutMs} ms`, { cause: e });
    }
    throw new ChainClientError('CHAIN_UNREACHABLE', `${options.what}: ${origin(options.url)} unreachable: ${describe(e)}`, { cause: e });
  }
}

async function readLimited(res: Response, maxBytes: number, what: string): Promise<Uint8Array> {
  const tooLarge = () => new ChainClientError('CHAIN_BAD_RESPONSE', `${what}: answer larger than ${maxBytes} bytes`);
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Scheme, host and port only: URLs may carry credentials, which must never reach a log. */
export function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(bad url)';
  }
}

function describe(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? ` (${e.cause.message})` : '';
  return e instanceof Error ? `${e.name}: ${e.message}${cause}` : String(e);
}

export interface RetryOptions {
  /** Attempts in total, at least 1; default 3. */
  attempts?: number;
  /** First back-off; doubled after each failure, with up to 50% random jitter added; default 250 ms. */
  baseDelayMs?: number;
  /** Longest single back-off; default 5000 ms. */
  maxDelayMs?: number;
  clock?: Clock;
  /** Which errors are worth another attempt; default: CHAIN_UNREACHABLE and CHAIN_TIMEOUT. */
  retryable?: (error: unknown) => boolean;
}

/**
 * Run `attempt` until it succeeds, a non-retryable error is thrown, or attempts run out (the last error
 * is thrown). Only for idempotent requests: reads, and broadcasts (a repeated broadcast is harmless).
 */
export async function withRetry<T>(attempt: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 3;
  if (!Number.isSafeInteger(attempts) || attempts < 1) throw new RangeError('"attempts" expected an integer >= 1');
  const clock = options.clock ?? systemClock;
  const retryable = options.retryable ?? isTransientChainError;
  let delay = options.baseDelayMs ?? 250;
  const maxDelay = options.maxDelayMs ?? 5000;
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= attempts || !retryable(error)) throw error;
      const jitter = crypto.getRandomValues(new Uint32Array(1))[0]! / 0xffffffff / 2;
      await new Promise<void>((resolve) => clock.setTimer(Math.min(maxDelay, delay * (1 + jitter)), resolve));
      delay = Math.min(maxDelay, delay * 2);
    }
  }
}

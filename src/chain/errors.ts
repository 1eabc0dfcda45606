/**
 * ChainClientError: what went wrong talking to a chain backend (the simnet server, bitcoind, Esplora),
 * with a code that says what the caller should do. Every adapter throws only these for chain trouble
 * (and TypeError/RangeError for programmer misuse), so a channel runtime can treat them alike: a failed
 * chain call changes no channel state and is retried at the next block or poll.
 *
 * - CHAIN_UNREACHABLE: no answer (refused, reset, DNS). Retry later; the request may have taken effect
 *   (a repeated broadcast then answers txn-already-in-mempool, txn-already-known or success).
 * - CHAIN_TIMEOUT: no complete answer within the timeout. Same advice as CHAIN_UNREACHABLE.
 * - CHAIN_AUTH: the server refused our credentials (HTTP 401/403: wrong rpc user/password or cookie).
 *   Retrying will not help; fix the configuration.
 * - CHAIN_HTTP_ERROR: the server refused the request (`status`, and its error code in `remoteCode`).
 *   Do not retry as is.
 * - CHAIN_RPC_ERROR: the node answered with a JSON-RPC error (`rpcCode`) for a call that is not a
 *   broadcast (e.g. -28 still warming up, -32601 method not found, -8 block height out of range).
 * - CHAIN_BAD_RESPONSE: the answer is not what the API documents (wrong URL, a proxy page, a broken or
 *   hostile server). Nothing in it was used.
 * - CHAIN_NO_FEE_ESTIMATE: the node has no fee estimate yet and no fallback was configured.
 * - CHAIN_WRONG_NETWORK: the node is on another network than the one configured.
 * - CHAIN_REORG_TOO_DEEP: a reorganisation went deeper than the blocks we remember; events restart
 *   from the new tip, and consumers must re-check what they saw confirmed.
 */
export type ChainClientErrorCode =
  | 'CHAIN_UNREACHABLE'
  | 'CHAIN_TIMEOUT'
  | 'CHAIN_AUTH'
  | 'CHAIN_HTTP_ERROR'
  | 'CHAIN_RPC_ERROR'
  | 'CHAIN_BAD_RESPONSE'
  | 'CHAIN_NO_FEE_ESTIMATE'
  | 'CHAIN_WRONG_NETWORK'
  | 'CHAIN_REORG_TOO_DEEP';

export class ChainClientError extends Error {
  override readonly name = 'ChainClientError';
  /** HTTP status, when there was an HTTP answer. */
  readonly status: number | undefined;
  /** The server's own error code (simnet server), if any. */
  readonly remoteCode: string | undefined;
  /** JSON-RPC error code (bitcoind), if any. */
  readonly rpcCode: number | undefined;
  constructor(
    readonly code: ChainClientErrorCode,
    message: string,
    details: { status?: number; remoteCode?: string; rpcCode?: number; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.remoteCode = details.remoteCode;
    this.rpcCode = details.rpcCode;
  }
}

/** True for the errors worth retrying unchanged (no answer, or no answer in time). */
export function isTransientChainError(error: unknown): boolean {
  return error instanceof ChainClientError && (error.code === 'CHAIN_UNREACHABLE' || error.code === 'CHAIN_TIMEOUT');
}

export function badResponse(path: string, expected: string): ChainClientError {
  return new ChainClientError('CHAIN_BAD_RESPONSE', `${path}: expected ${expected}`);
}

/**
 * The bitcoind JSON-RPC chain adapter: BitcoindChain (the ChainSource port, raw blocks and transactions
 * parsed locally) over BitcoindRpc (JSON-RPC 1.0, Basic or cookie auth). Node only (node:fs for the cookie).
 */
export { BitcoindChain, type BitcoindChainOptions, type BitcoindNetwork, type BitcoindBlock } from './chain.js';
export { BitcoindRpc, BitcoindRpcError, type BitcoindRpcOptions, type BitcoindAuth } from './rpc.js';

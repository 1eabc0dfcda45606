/**
 * `trickle/simnet`: the embedded regtest-like chain for tests, demos and CI, plus the independent
 * script verifier it uses. Kept out of the main entry so bitcore-lib never loads on a device.
 */
export { Simnet, DEFAULT_START_TIME } from './simnet.js';
export type { SimnetOptions, SimnetBlock, SimnetUtxo } from './simnet.js';
export { verifyInput, verifyTransaction, standardFlags, STANDARD_FLAG_NAMES } from './interpreter.js';
export type { InputVerdict, TxVerdict } from './interpreter.js';
export type {
  OutPoint,
  TxOut,
  RejectCode,
  BroadcastResult,
  TxStatus,
  UtxoStatus,
  SpendInfo,
  ChainEvent,
  ChainSource,
} from '../port.js';
export { serveSimnet, type SimnetServer, type SimnetServerOptions } from './server.js';
export { serveBitcoindRpc, type BitcoindServer, type BitcoindServerOptions, type BitcoindFault } from './bitcoind-server.js';
export { serveEsplora, type EsploraServer, type EsploraServerOptions, type EsploraFault, type EsploraFaults } from './esplora-server.js';

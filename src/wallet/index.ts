/**
 * The wallet API: the FundingWallet port, the device wallet (P2WPKH, fee-aware coin selection, durable
 * coin locks) and its UTXO sources (simnet, Esplora, a block scanner for bitcoind).
 */
export {
  CHANGE_KEY,
  DeviceWallet,
  LOCK_PREFIX,
  MIN_FEERATE_PER_KW,
  RECEIVE_KEY,
  WalletError,
  deviceWalletScripts,
  fundingFeeSat,
  type DeviceWalletOptions,
  type FundingWallet,
  type FundsFigures,
  type WalletBalance,
  type WalletErrorCode,
} from './device-wallet.js';
export {
  COINBASE_MATURITY,
  EsploraUtxoSource,
  SimnetUtxoSource,
  type EsploraUtxoApi,
  type SimnetUtxoChain,
  type UtxoSource,
  type WalletUtxo,
} from './utxo-source.js';
export { BlockScanUtxoSource, type BlockScanOptions, type BlockSource, type ScannedBlock } from './block-scan.js';

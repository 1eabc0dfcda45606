/**
 * Trickle core: amounts, keys, scripts and transactions for one-way (Spillman) and revocable (BOLT 3)
 * payment channels. No I/O and no native addons here: the simnet, MQTT, storage and HID adapters sit
 * behind their own subpath exports (e.g. `trickle/simnet`).
 */
export * from './errors.js';
export * from './amounts.js';
export * from './bytes.js';
export * from './crypto/hash.js';
export * from './crypto/secp256k1.js';
export type * from './signer/port.js';
export { SoftwareSigner } from './signer/software.js';
export type * from './chain/port.js';
export * from './onchain/script.js';
export * from './onchain/sighash.js';
export * from './onchain/tx.js';
export * from './onchain/funding.js';
export * from './onchain/oneway.js';
export * from './onchain/rsmc/keys.js';
export * from './onchain/rsmc/shachain.js';
export * from './onchain/rsmc/fees.js';
export * from './onchain/rsmc/scripts.js';
export * from './onchain/rsmc/commitment.js';
export * from './onchain/rsmc/witnesses.js';
export * from './onchain/rsmc/sweep.js';
export * from './onchain/rsmc/penalty.js';
export * from './onchain/rsmc/closing.js';

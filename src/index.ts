/**
 * Trickle core: amounts, keys, scripts and transactions for one-way (Spillman) and revocable (BOLT 3)
 * payment channels; the wire catalogue; BOLT 8 secure sessions and the messenger over the Transport
 * port. No native addons and no MQTT client here: the simnet, MQTT, storage and HID adapters sit
 * behind their own subpath exports (`trickle/simnet`, `trickle/mqtt`).
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
export * from './clock.js';
export * from './transport/port.js';
export { InMemoryBroker, InMemoryTransport, type Delivery, type Interceptor } from './transport/memory.js';
export * from './wire/index.js';
export {
  NoiseCipher,
  NoiseError,
  NoiseInitiator,
  NoiseResponder,
  softwareStaticKey,
  type NoiseErrorCode,
  type NoiseHandshakeResult,
  type NoiseStaticKey,
} from './session/noise.js';
export { randomIdentity, softwareIdentity, type NodeIdentity } from './session/identity.js';
export { MAX_FRAME_BYTES as MAX_SESSION_FRAME_BYTES, parseFrame, type Frame, type FrameRejection } from './session/frames.js';
export { DEFAULT_RELIABILITY, SessionError, type ReliabilityOptions, type SessionSnapshot } from './session/session.js';
export {
  SessionManager,
  type DropReason,
  type ManagerSnapshot,
  type SessionEvent,
  type SessionManagerOptions,
  type SessionStats,
} from './session/manager.js';
export {
  Messenger,
  type DirectoryEntry,
  type MessengerOptions,
  type MessengerStats,
  type PeerStatus,
} from './node/messenger.js';
export * from './store/port.js';
export { MemoryStore } from './store/memory.js';
export { ChainPoller, type PollableChain } from './chain/poller.js';
export { SimnetClient, ChainClientError, type ChainClientErrorCode, type SimnetClientOptions } from './chain/simnet-client.js';
export * from './wallet/index.js';
export * from './metering/index.js';
export * from './channel/oneway/index.js';
export * from './channel/rsmc/index.js';

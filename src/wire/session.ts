/**
 * Session messages (docs/protocol.md §3.1): `init` opens a session, `ping`/`pong` keep it alive.
 *
 * @example
 *   encodeMessage({ type: 'ping', id: 7, padding: new Uint8Array(64) });
 */
import { bytes32, defineMessage, u32, varBytes } from './schema.js';

/** Features a node supports, as a bit field (bit 0 = least significant bit of the last byte). */
export const MAX_FEATURE_BYTES = 32;
/** Ping padding hides the size of what a session carries; the receiver ignores it. */
export const MAX_PING_PADDING = 1024;

export interface InitMsg {
  type: 'init';
  features: Uint8Array;
  /** Genesis block hash of the chain both ends must be on (internal byte order). */
  chainHash: Uint8Array;
}

export interface PingMsg {
  type: 'ping';
  id: number;
  padding?: Uint8Array;
}

export interface PongMsg {
  type: 'pong';
  /** The `id` of the ping this answers. */
  id: number;
}

export type SessionMsg = InitMsg | PingMsg | PongMsg;

export const sessionMessages = [
  defineMessage<InitMsg>('init', {
    features: { key: 2, type: varBytes(MAX_FEATURE_BYTES) },
    chainHash: { key: 4, type: bytes32 },
  }),
  defineMessage<PingMsg>('ping', {
    id: { key: 2, type: u32 },
    // [W-9] an odd key: a receiver that did not know this field could skip it, which is what padding is for.
    padding: { key: 3, type: varBytes(MAX_PING_PADDING), optional: true },
  }),
  defineMessage<PongMsg>('pong', {
    id: { key: 2, type: u32 },
  }),
] as const;

/**
 * Closing (docs/protocol.md §3.3 and §3.5). One-way: the payer asks the payee to settle, the payee
 * broadcasts the last payment transaction with its own signature added and reports the txid.
 * RSMC: BOLT 2's shutdown and closing_signed.
 */
import { bytes32, defineMessage, sat, script, sig } from './schema.js';

/** payer → payee: please settle now (the payee may also settle on its own, before the refund unlocks). */
export interface OnewayCloseRequestMsg {
  type: 'oneway_close_request';
  channelId: Uint8Array;
}

/** payee → payer: the settlement transaction is broadcast. */
export interface OnewaySettledMsg {
  type: 'oneway_settled';
  channelId: Uint8Array;
  /** Internal byte order. */
  txid: Uint8Array;
}

/** either → other: no new HTLCs; pay my share of the closing transaction to `scriptPubkey`. */
export interface ShutdownMsg {
  type: 'shutdown';
  channelId: Uint8Array;
  scriptPubkey: Uint8Array;
}

/** either → other: a fee proposal and the sender's signature on the closing transaction at that fee. */
export interface ClosingSignedMsg {
  type: 'closing_signed';
  channelId: Uint8Array;
  feeSat: bigint;
  signature: Uint8Array;
}

export type CloseMsg = OnewayCloseRequestMsg | OnewaySettledMsg | ShutdownMsg | ClosingSignedMsg;

export const closeMessages = [
  defineMessage<OnewayCloseRequestMsg>('oneway_close_request', {
    channelId: { key: 2, type: bytes32 },
  }),
  defineMessage<OnewaySettledMsg>('oneway_settled', {
    channelId: { key: 2, type: bytes32 },
    txid: { key: 4, type: bytes32 },
  }),
  defineMessage<ShutdownMsg>('shutdown', {
    channelId: { key: 2, type: bytes32 },
    scriptPubkey: { key: 4, type: script },
  }),
  defineMessage<ClosingSignedMsg>('closing_signed', {
    channelId: { key: 2, type: bytes32 },
    feeSat: { key: 4, type: sat },
    signature: { key: 6, type: sig },
  }),
] as const;

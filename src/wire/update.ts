/**
 * Channel updates (docs/protocol.md §3.3 and §3.5). One-way: the payer signs a payment transaction for
 * each new cumulative amount (`oneway_pay`), the payee acknowledges, and `oneway_resume` resynchronises
 * both ends after a reconnect. RSMC: BOLT 2's update_* / commitment_signed / revoke_and_ack /
 * channel_reestablish, camelCase.
 *
 * paymentPreimage, perCommitmentSecret and yourLastPerCommitmentSecret are secrets: the codec never puts
 * field contents into an error message ([W-13]); callers must keep them out of logs too.
 */
import { arrayOf, bytes32, defineMessage, feerate, msat, pubkey, sig, u32, u64, varBytes } from './schema.js';

/** BOLT 2: at most 483 HTLCs each way, so at most 483 HTLC signatures per commitment. */
export const MAX_HTLC_SIGNATURES = 483;
/** BOLT 4 onion packet size: the opaque route blob fits one. */
export const MAX_ROUTE_BYTES = 1300;
export const MAX_FAIL_REASON_BYTES = 1024;

/** payer → payee: payment number n, the cumulative amount, and the payer's signature on payment tx n. */
export interface OnewayPayMsg {
  type: 'oneway_pay';
  channelId: Uint8Array;
  paymentNumber: bigint;
  /** Cumulative: everything paid on this channel so far, not the increment. */
  amountMsat: bigint;
  signature: Uint8Array;
}

/** payee → payer: payment `paymentNumber` is accepted (and stored). */
export interface OnewayPayAckMsg {
  type: 'oneway_pay_ack';
  channelId: Uint8Array;
  paymentNumber: bigint;
  amountMsat: bigint;
}

/** either → other, after a reconnect: the latest payment each side holds. */
export interface OnewayResumeMsg {
  type: 'oneway_resume';
  channelId: Uint8Array;
  latestPaymentNumber: bigint;
  latestAmountMsat: bigint;
}

export interface UpdateAddHtlcMsg {
  type: 'update_add_htlc';
  channelId: Uint8Array;
  id: bigint;
  amountMsat: bigint;
  paymentHash: Uint8Array;
  cltvExpiry: number;
  /** Opaque routing data for the next hop, if any. */
  route?: Uint8Array;
}

export interface UpdateFulfillHtlcMsg {
  type: 'update_fulfill_htlc';
  channelId: Uint8Array;
  id: bigint;
  paymentPreimage: Uint8Array;
}

export interface UpdateFailHtlcMsg {
  type: 'update_fail_htlc';
  channelId: Uint8Array;
  id: bigint;
  reason: Uint8Array;
}

export interface UpdateFeeMsg {
  type: 'update_fee';
  channelId: Uint8Array;
  feeratePerKw: bigint;
}

/**
 * Trickle extension (docs/protocol.md §3.5): move `amountMsat` from the sender's balance to the receiver's
 * directly, without an HTLC. It is an update like update_add_htlc: proposed, then committed by the
 * commitment_signed / revoke_and_ack exchange. `id` counts the sender's updates from 0.
 */
export interface UpdateTransferMsg {
  type: 'update_transfer';
  channelId: Uint8Array;
  id: bigint;
  amountMsat: bigint;
}

export interface CommitmentSignedMsg {
  type: 'commitment_signed';
  channelId: Uint8Array;
  signature: Uint8Array;
  /** One per untrimmed HTLC output, in the commitment's output order (BOLT 2). */
  htlcSignatures: Uint8Array[];
}

export interface RevokeAndAckMsg {
  type: 'revoke_and_ack';
  channelId: Uint8Array;
  perCommitmentSecret: Uint8Array;
  nextPerCommitmentPoint: Uint8Array;
}

export interface ChannelReestablishMsg {
  type: 'channel_reestablish';
  channelId: Uint8Array;
  nextCommitmentNumber: bigint;
  nextRevocationNumber: bigint;
  /** All zeros when no commitment has been revoked yet. */
  yourLastPerCommitmentSecret: Uint8Array;
  myCurrentPerCommitmentPoint: Uint8Array;
}

export type UpdateMsg =
  | OnewayPayMsg
  | OnewayPayAckMsg
  | OnewayResumeMsg
  | UpdateAddHtlcMsg
  | UpdateFulfillHtlcMsg
  | UpdateFailHtlcMsg
  | UpdateFeeMsg
  | UpdateTransferMsg
  | CommitmentSignedMsg
  | RevokeAndAckMsg
  | ChannelReestablishMsg;

export const updateMessages = [
  defineMessage<OnewayPayMsg>('oneway_pay', {
    channelId: { key: 2, type: bytes32 },
    paymentNumber: { key: 4, type: u64 },
    amountMsat: { key: 6, type: msat },
    signature: { key: 8, type: sig },
  }),
  defineMessage<OnewayPayAckMsg>('oneway_pay_ack', {
    channelId: { key: 2, type: bytes32 },
    paymentNumber: { key: 4, type: u64 },
    amountMsat: { key: 6, type: msat },
  }),
  defineMessage<OnewayResumeMsg>('oneway_resume', {
    channelId: { key: 2, type: bytes32 },
    latestPaymentNumber: { key: 4, type: u64 },
    latestAmountMsat: { key: 6, type: msat },
  }),
  defineMessage<UpdateAddHtlcMsg>('update_add_htlc', {
    channelId: { key: 2, type: bytes32 },
    id: { key: 4, type: u64 },
    amountMsat: { key: 6, type: msat },
    paymentHash: { key: 8, type: bytes32 },
    cltvExpiry: { key: 10, type: u32 },
    route: { key: 12, type: varBytes(MAX_ROUTE_BYTES), optional: true },
  }),
  defineMessage<UpdateFulfillHtlcMsg>('update_fulfill_htlc', {
    channelId: { key: 2, type: bytes32 },
    id: { key: 4, type: u64 },
    paymentPreimage: { key: 6, type: bytes32 },
  }),
  defineMessage<UpdateFailHtlcMsg>('update_fail_htlc', {
    channelId: { key: 2, type: bytes32 },
    id: { key: 4, type: u64 },
    reason: { key: 6, type: varBytes(MAX_FAIL_REASON_BYTES) },
  }),
  defineMessage<UpdateFeeMsg>('update_fee', {
    channelId: { key: 2, type: bytes32 },
    feeratePerKw: { key: 4, type: feerate },
  }),
  defineMessage<UpdateTransferMsg>('update_transfer', {
    channelId: { key: 2, type: bytes32 },
    id: { key: 4, type: u64 },
    amountMsat: { key: 6, type: msat },
  }),
  defineMessage<CommitmentSignedMsg>('commitment_signed', {
    channelId: { key: 2, type: bytes32 },
    signature: { key: 4, type: sig },
    htlcSignatures: { key: 6, type: arrayOf(sig, MAX_HTLC_SIGNATURES) },
  }),
  defineMessage<RevokeAndAckMsg>('revoke_and_ack', {
    channelId: { key: 2, type: bytes32 },
    perCommitmentSecret: { key: 4, type: bytes32 },
    nextPerCommitmentPoint: { key: 6, type: pubkey },
  }),
  defineMessage<ChannelReestablishMsg>('channel_reestablish', {
    channelId: { key: 2, type: bytes32 },
    nextCommitmentNumber: { key: 4, type: u64 },
    nextRevocationNumber: { key: 6, type: u64 },
    yourLastPerCommitmentSecret: { key: 8, type: bytes32 },
    myCurrentPerCommitmentPoint: { key: 10, type: pubkey },
  }),
] as const;

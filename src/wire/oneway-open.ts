/**
 * Opening a one-way (Spillman) channel (docs/protocol.md §3.2), in the classic order: the payer proposes,
 * the payee accepts, the payer builds the funding transaction (unsigned) and asks for the refund, the
 * payee signs the refund, and only then does the payer sign and broadcast the funding transaction
 * (src/onchain/oneway.ts). `oneway_ready` follows once the funding has `minimumDepth` confirmations.
 */
import { bytes32, defineMessage, feerate, msat, pubkey, sat, script, sig, text, u32, u64 } from './schema.js';

export const MAX_SERVICE_ID_BYTES = 32;
export const MAX_UNIT_BYTES = 16;

/** payer → payee: the terms of the channel and of the metered service it pays for. */
export interface OnewayProposeMsg {
  type: 'oneway_propose';
  tempChannelId: Uint8Array;
  capacitySat: bigint;
  /** Block height from which the payer's refund is valid. */
  expiryHeight: number;
  payerFundingPubkey: Uint8Array;
  /** Where the refund (and the payer's change in every payment) goes. */
  payerRefundScript: Uint8Array;
  serviceId: string;
  /** What is metered, e.g. "MB", "Wh", "reading". */
  unit: string;
  tariffMsatPerUnit: bigint;
  /** Credit window: the payer pays ahead for at most this many units; the payee serves only what is paid. */
  creditWindowUnits: bigint;
  /** Fee rate of the refund and payment transactions, sat per 1000 weight units. */
  feeratePerKw: bigint;
}

/** payee → payer: agrees to the terms. */
export interface OnewayAcceptMsg {
  type: 'oneway_accept';
  tempChannelId: Uint8Array;
  payeeFundingPubkey: Uint8Array;
  /** Where payments go. */
  payeePayoutScript: Uint8Array;
  minimumDepth: number;
}

/** payer → payee: the funding outpoint, enough for the payee to rebuild the refund and sign it. */
export interface OnewayRefundRequestMsg {
  type: 'oneway_refund_request';
  tempChannelId: Uint8Array;
  fundingTxid: Uint8Array;
  fundingVout: number;
  fundingValueSat: bigint;
}

/** payee → payer: the payee's signature on the refund transaction. */
export interface OnewayRefundSignedMsg {
  type: 'oneway_refund_signed';
  tempChannelId: Uint8Array;
  refundSignature: Uint8Array;
}

/** payer → payee: the funding transaction is broadcast; from now on the channel has its own id. */
export interface OnewayFundedMsg {
  type: 'oneway_funded';
  tempChannelId: Uint8Array;
  channelId: Uint8Array;
  fundingTxid: Uint8Array;
  fundingVout: number;
}

/** payee → payer: the funding has `minimumDepth` confirmations; payments may start. */
export interface OnewayReadyMsg {
  type: 'oneway_ready';
  channelId: Uint8Array;
}

export type OnewayOpenMsg =
  | OnewayProposeMsg
  | OnewayAcceptMsg
  | OnewayRefundRequestMsg
  | OnewayRefundSignedMsg
  | OnewayFundedMsg
  | OnewayReadyMsg;

export const onewayOpenMessages = [
  defineMessage<OnewayProposeMsg>('oneway_propose', {
    tempChannelId: { key: 2, type: bytes32 },
    capacitySat: { key: 4, type: sat },
    expiryHeight: { key: 6, type: u32 },
    payerFundingPubkey: { key: 8, type: pubkey },
    payerRefundScript: { key: 10, type: script },
    serviceId: { key: 12, type: text(MAX_SERVICE_ID_BYTES) },
    unit: { key: 14, type: text(MAX_UNIT_BYTES) },
    tariffMsatPerUnit: { key: 16, type: msat },
    creditWindowUnits: { key: 18, type: u64 },
    feeratePerKw: { key: 20, type: feerate },
  }),
  defineMessage<OnewayAcceptMsg>('oneway_accept', {
    tempChannelId: { key: 2, type: bytes32 },
    payeeFundingPubkey: { key: 4, type: pubkey },
    payeePayoutScript: { key: 6, type: script },
    minimumDepth: { key: 8, type: u32 },
  }),
  defineMessage<OnewayRefundRequestMsg>('oneway_refund_request', {
    tempChannelId: { key: 2, type: bytes32 },
    fundingTxid: { key: 4, type: bytes32 },
    fundingVout: { key: 6, type: u32 },
    fundingValueSat: { key: 8, type: sat },
  }),
  defineMessage<OnewayRefundSignedMsg>('oneway_refund_signed', {
    tempChannelId: { key: 2, type: bytes32 },
    refundSignature: { key: 4, type: sig },
  }),
  defineMessage<OnewayFundedMsg>('oneway_funded', {
    tempChannelId: { key: 2, type: bytes32 },
    channelId: { key: 4, type: bytes32 },
    fundingTxid: { key: 6, type: bytes32 },
    fundingVout: { key: 8, type: u32 },
  }),
  defineMessage<OnewayReadyMsg>('oneway_ready', {
    channelId: { key: 2, type: bytes32 },
  }),
] as const;

/**
 * Opening a revocable (RSMC) channel (docs/protocol.md §3.4): BOLT 2's open_channel, accept_channel,
 * funding_created, funding_signed and channel_ready with camelCase fields, plus two messages for dual
 * funding (funding_contribution before funding_created, funding_tx_signatures after funding_signed).
 * As in BOLT 2, channelId = fundingTxid XOR fundingOutputIndex (in its last two bytes).
 */
import { arrayOf, bytes32, defineMessage, feerate, msat, pubkey, sat, script, sig, struct, u16, u32, varBytes } from './schema.js';

export const MAX_CONTRIBUTED_INPUTS = 64;
export const MAX_WITNESS_ITEMS = 32;
/** Largest standard witness item (a P2WSH witness script, policy limit). */
export const MAX_WITNESS_ITEM_BYTES = 3600;

/** Channel parameters both sides announce (BOLT 2 names, camelCase). */
interface ChannelParams {
  temporaryChannelId: Uint8Array;
  fundingSat: bigint;
  dustLimitSat: bigint;
  maxHtlcValueInFlightMsat: bigint;
  channelReserveSat: bigint;
  htlcMinimumMsat: bigint;
  toSelfDelay: number;
  maxAcceptedHtlcs: number;
  fundingPubkey: Uint8Array;
  revocationBasepoint: Uint8Array;
  paymentBasepoint: Uint8Array;
  delayedPaymentBasepoint: Uint8Array;
  htlcBasepoint: Uint8Array;
  firstPerCommitmentPoint: Uint8Array;
}

/** opener → accepter. */
export interface OpenChannelMsg extends ChannelParams {
  type: 'open_channel';
  pushMsat: bigint;
  feeratePerKw: bigint;
  /**
   * Dual funding: how much the opener asks the accepter to add. The accepter may add less, down to 0
   * (single-funded), in accept_channel's fundingSat.
   */
  requestedAccepterFundingSat?: bigint;
}

/** accepter → opener. `fundingSat` is the accepter's own contribution: 0 unless dual-funded. */
export interface AcceptChannelMsg extends ChannelParams {
  type: 'accept_channel';
  minimumDepth: number;
}

/** One input a party adds to a dual-funded funding transaction. */
export interface ContributedInput {
  /** Internal byte order. */
  txid: Uint8Array;
  vout: number;
  valueSat: bigint;
  /** The output's scriptPubKey (for the BIP 143 sighash). */
  script: Uint8Array;
}

/** each funder → the other (dual funding): its inputs and change. */
export interface FundingContributionMsg {
  type: 'funding_contribution';
  temporaryChannelId: Uint8Array;
  inputs: ContributedInput[];
  changeScript?: Uint8Array;
}

/** opener → accepter: the funding outpoint and the opener's signature on the accepter's first commitment. */
export interface FundingCreatedMsg {
  type: 'funding_created';
  temporaryChannelId: Uint8Array;
  fundingTxid: Uint8Array;
  fundingOutputIndex: number;
  signature: Uint8Array;
}

/** accepter → opener: the accepter's signature on the opener's first commitment. */
export interface FundingSignedMsg {
  type: 'funding_signed';
  channelId: Uint8Array;
  signature: Uint8Array;
}

/** each funder → the other (dual funding): witness stacks for its own inputs, in input order. */
export interface FundingTxSignaturesMsg {
  type: 'funding_tx_signatures';
  channelId: Uint8Array;
  witnesses: Uint8Array[][];
}

/** both → both: the funding is deep enough; here is the point for the next commitment. */
export interface ChannelReadyMsg {
  type: 'channel_ready';
  channelId: Uint8Array;
  secondPerCommitmentPoint: Uint8Array;
}

export type RsmcOpenMsg =
  | OpenChannelMsg
  | AcceptChannelMsg
  | FundingContributionMsg
  | FundingCreatedMsg
  | FundingSignedMsg
  | FundingTxSignaturesMsg
  | ChannelReadyMsg;

const contributedInput = struct<ContributedInput>('ContributedInput', {
  txid: { key: 0, type: bytes32 },
  vout: { key: 2, type: u32 },
  valueSat: { key: 4, type: sat },
  script: { key: 6, type: script },
});

export const rsmcOpenMessages = [
  defineMessage<OpenChannelMsg>('open_channel', {
    temporaryChannelId: { key: 2, type: bytes32 },
    fundingSat: { key: 4, type: sat },
    pushMsat: { key: 6, type: msat },
    dustLimitSat: { key: 8, type: sat },
    maxHtlcValueInFlightMsat: { key: 10, type: msat },
    channelReserveSat: { key: 12, type: sat },
    htlcMinimumMsat: { key: 14, type: msat },
    feeratePerKw: { key: 16, type: feerate },
    toSelfDelay: { key: 18, type: u16 },
    maxAcceptedHtlcs: { key: 20, type: u16 },
    fundingPubkey: { key: 22, type: pubkey },
    revocationBasepoint: { key: 24, type: pubkey },
    paymentBasepoint: { key: 26, type: pubkey },
    delayedPaymentBasepoint: { key: 28, type: pubkey },
    htlcBasepoint: { key: 30, type: pubkey },
    firstPerCommitmentPoint: { key: 32, type: pubkey },
    requestedAccepterFundingSat: { key: 34, type: sat, optional: true },
  }),
  defineMessage<AcceptChannelMsg>('accept_channel', {
    temporaryChannelId: { key: 2, type: bytes32 },
    fundingSat: { key: 4, type: sat },
    dustLimitSat: { key: 6, type: sat },
    maxHtlcValueInFlightMsat: { key: 8, type: msat },
    channelReserveSat: { key: 10, type: sat },
    htlcMinimumMsat: { key: 12, type: msat },
    minimumDepth: { key: 14, type: u32 },
    toSelfDelay: { key: 16, type: u16 },
    maxAcceptedHtlcs: { key: 18, type: u16 },
    fundingPubkey: { key: 20, type: pubkey },
    revocationBasepoint: { key: 22, type: pubkey },
    paymentBasepoint: { key: 24, type: pubkey },
    delayedPaymentBasepoint: { key: 26, type: pubkey },
    htlcBasepoint: { key: 28, type: pubkey },
    firstPerCommitmentPoint: { key: 30, type: pubkey },
  }),
  defineMessage<FundingContributionMsg>('funding_contribution', {
    temporaryChannelId: { key: 2, type: bytes32 },
    inputs: { key: 4, type: arrayOf(contributedInput, MAX_CONTRIBUTED_INPUTS) },
    changeScript: { key: 6, type: script, optional: true },
  }),
  defineMessage<FundingCreatedMsg>('funding_created', {
    temporaryChannelId: { key: 2, type: bytes32 },
    fundingTxid: { key: 4, type: bytes32 },
    fundingOutputIndex: { key: 6, type: u16 },
    signature: { key: 8, type: sig },
  }),
  defineMessage<FundingSignedMsg>('funding_signed', {
    channelId: { key: 2, type: bytes32 },
    signature: { key: 4, type: sig },
  }),
  defineMessage<FundingTxSignaturesMsg>('funding_tx_signatures', {
    channelId: { key: 2, type: bytes32 },
    witnesses: {
      key: 4,
      type: arrayOf(arrayOf(varBytes(MAX_WITNESS_ITEM_BYTES), MAX_WITNESS_ITEMS), MAX_CONTRIBUTED_INPUTS),
    },
  }),
  defineMessage<ChannelReadyMsg>('channel_ready', {
    channelId: { key: 2, type: bytes32 },
    secondPerCommitmentPoint: { key: 4, type: pubkey },
  }),
] as const;

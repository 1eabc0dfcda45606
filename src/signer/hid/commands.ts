/**
 * The Trickle key's commands (firmware-bridge/PROTOCOL.md §3), shared by the host (HidSigner) and the key
 * (firmware-bridge/core). Each command is one vendor HID command (0x40–0x4b) whose request and response
 * bodies are CBOR maps with integer keys, encoded deterministically and decoded strictly by the wire
 * codec's struct functions (every unknown key refused). A response is one status byte, then the body: the
 * command's response map on OK, a `Failure` map otherwise.
 */
import { decodeStruct, encodeStruct } from '../../wire/codec.js';
import {
  bool,
  bytes32,
  enumOf,
  feerate,
  msat,
  pubkey,
  sat,
  sig,
  struct,
  text,
  u32,
  u64,
  varBytes,
  type FieldType,
} from '../../wire/schema.js';
import { MAX_MESSAGE_SIZE } from './framing.js';
import type { KeyFamily, OnewaySetup, RemoteBasepoints, RsmcSetup } from '../port.js';

export type { OnewaySetup, RemoteBasepoints, RsmcSetup };

/** [C-1] Command codes, in the vendor range of the framing (§2). */
export const KeyCommand = {
  GET_INFO: 0x40,
  GET_PUBLIC_KEY: 0x41,
  SETUP_CHANNEL: 0x42,
  SIGN_ONEWAY_PAYMENT: 0x43,
  SIGN_COUNTERPARTY_COMMITMENT: 0x44,
  VALIDATE_HOLDER_COMMITMENT: 0x45,
  REVOKE: 0x46,
  VALIDATE_COUNTERPARTY_REVOCATION: 0x47,
  SIGN_CLOSE: 0x48,
  SIGN_SWEEP: 0x49,
  GET_CHANNEL_STATE: 0x4a,
  SET_POLICY: 0x4b,
} as const;
export type KeyCommandCode = (typeof KeyCommand)[keyof typeof KeyCommand];

/** [C-2] The first byte of every response. */
export const KeyStatus = {
  OK: 0x00,
  /** The request did not decode, or a value is out of range: nothing changed. */
  BAD_REQUEST: 0x01,
  /** The policy refused; `reason` names the rule (e.g. `policy-oneway-amount-not-increasing`). */
  REFUSED: 0x02,
  /** The user declined, or did not confirm in time. */
  DENIED: 0x03,
  /** The host cancelled (CANCEL) before the key committed to anything. */
  CANCELLED: 0x04,
  /** The key's stored state could not be read: it signs nothing until it can. */
  LOCKED: 0x05,
  /** The new state could not be stored: no signature or secret was released. */
  STORAGE: 0x06,
  /** Unexpected failure inside the key; nothing was released. */
  INTERNAL: 0x07,
} as const;
export type KeyStatusCode = (typeof KeyStatus)[keyof typeof KeyStatus];

export const KEY_STATUS_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(KeyStatus).map(([name, code]) => [code, name.toLowerCase().replace('_', '-')]),
);

/** Largest CBOR body (the framing's maximum less the status byte). */
export const MAX_BODY_SIZE = MAX_MESSAGE_SIZE - 1;
/** Largest transaction the key inspects: commitments, closes and sweeps are far smaller. */
export const MAX_TX_SIZE = 4000;

const tx = varBytes(MAX_TX_SIZE);
const script = varBytes(64);
const reason = text(64);

export const KEY_FAMILIES: readonly KeyFamily[] = ['funding', 'payment', 'delayed', 'htlc', 'revocation', 'commitment', 'wallet', 'identity'];

// ---- bodies ----

export interface Failure {
  /** Machine-readable: a policy rule name or a short code. */
  reason: string;
  /** For people; never carries secrets. */
  message?: string;
}
export const failureType: FieldType<Failure> = struct<Failure>('Failure', {
  reason: { key: 1, type: reason },
  message: { key: 2, type: text(200), optional: true },
});

export type Empty = Record<string, never>;
export const emptyType: FieldType<Empty> = struct<Empty>('Empty', {} as never);

/** [C-3] Spending limits and margins the key applies to every channel. */
export interface KeyPolicy {
  /** Most a single signature may move out of our balance. */
  maxPaymentMsat: bigint;
  /** Most that may leave our balances, across channels, per period. */
  maxPeriodMsat: bigint;
  periodSeconds: number;
  /** One-way payer: no payment signed once the tip is within this many blocks of the refund's lock. */
  expirySafetyBlocks: number;
}
export const policyType: FieldType<KeyPolicy> = struct<KeyPolicy>('KeyPolicy', {
  maxPaymentMsat: { key: 1, type: msat },
  maxPeriodMsat: { key: 2, type: msat },
  periodSeconds: { key: 3, type: u32 },
  expirySafetyBlocks: { key: 4, type: u32 },
});

export interface InfoResponse {
  protocolVersion: number;
  firmware: string;
  serial: string;
  policyHash: Uint8Array;
  policy: KeyPolicy;
  locked: boolean;
  channels: number;
}
export const infoResponseType: FieldType<InfoResponse> = struct<InfoResponse>('InfoResponse', {
  protocolVersion: { key: 1, type: u32 },
  firmware: { key: 2, type: text(32) },
  serial: { key: 3, type: text(32) },
  policyHash: { key: 4, type: bytes32 },
  policy: { key: 5, type: policyType },
  locked: { key: 6, type: bool },
  channels: { key: 7, type: u32 },
});

export interface PublicKeyRequest {
  family: KeyFamily;
  index: number;
  /** Family 'commitment' only: the per-commitment point of this commitment number (BOLT 3). */
  commitmentNumber?: bigint;
}
export const publicKeyRequestType: FieldType<PublicKeyRequest> = struct<PublicKeyRequest>('PublicKeyRequest', {
  family: { key: 1, type: enumOf(KEY_FAMILIES) },
  index: { key: 2, type: u32 },
  commitmentNumber: { key: 3, type: u64, optional: true },
});
export interface PublicKeyResponse {
  publicKey: Uint8Array;
}
export const publicKeyResponseType: FieldType<PublicKeyResponse> = struct<PublicKeyResponse>('PublicKeyResponse', { publicKey: { key: 1, type: pubkey } });

const remoteBasepointsType: FieldType<RemoteBasepoints> = struct<RemoteBasepoints>('RemoteBasepoints', {
  fundingPubkey: { key: 1, type: pubkey },
  revocationBasepoint: { key: 2, type: pubkey },
  paymentBasepoint: { key: 3, type: pubkey },
  delayedPaymentBasepoint: { key: 4, type: pubkey },
  htlcBasepoint: { key: 5, type: pubkey },
});

export const onewaySetupType: FieldType<OnewaySetup> = struct<OnewaySetup>('OnewaySetup', {
  payeeFundingPubkey: { key: 1, type: pubkey },
  payerScript: { key: 2, type: script },
  payeeScript: { key: 3, type: script },
  expiryHeight: { key: 4, type: u32 },
  feerateSatPerVb: { key: 5, type: sat },
});

export const rsmcSetupType: FieldType<RsmcSetup> = struct<RsmcSetup>('RsmcSetup', {
  opener: { key: 1, type: bool },
  remote: { key: 2, type: remoteBasepointsType },
  localDelay: { key: 3, type: u32 },
  remoteDelay: { key: 4, type: u32 },
  localDustLimitSat: { key: 5, type: sat },
  remoteDustLimitSat: { key: 6, type: sat },
  minFeeratePerKw: { key: 7, type: feerate },
  maxFeeratePerKw: { key: 8, type: feerate },
  closeScript: { key: 9, type: script },
  sweepScript: { key: 10, type: script },
});

export interface SetupChannelRequest {
  /** The channel's key index: every key of the channel is `<family>/<keyIndex>`. */
  keyIndex: number;
  fundingTxid: Uint8Array;
  fundingVout: number;
  capacitySat: bigint;
  oneway?: OnewaySetup;
  rsmc?: RsmcSetup;
}
export const setupChannelRequestType: FieldType<SetupChannelRequest> = struct<SetupChannelRequest>('SetupChannelRequest', {
  keyIndex: { key: 1, type: u32 },
  /** Internal byte order (as in an outpoint), not the displayed txid. */
  fundingTxid: { key: 2, type: bytes32 },
  fundingVout: { key: 3, type: u32 },
  capacitySat: { key: 4, type: sat },
  oneway: { key: 5, type: onewaySetupType, optional: true },
  rsmc: { key: 6, type: rsmcSetupType, optional: true },
});

export interface SignOnewayPaymentRequest {
  keyIndex: number;
  /** The payment's number: strictly increasing. */
  stateNumber: bigint;
  /** The cumulative amount to the payee. */
  amountMsat: bigint;
  /** The host's chain tip; the key keeps the highest it has been told. */
  tipHeight: number;
  tx: Uint8Array;
}
export const signOnewayPaymentRequestType: FieldType<SignOnewayPaymentRequest> = struct<SignOnewayPaymentRequest>('SignOnewayPaymentRequest', {
  keyIndex: { key: 1, type: u32 },
  stateNumber: { key: 2, type: u64 },
  amountMsat: { key: 3, type: msat },
  tipHeight: { key: 4, type: u32 },
  tx: { key: 5, type: tx },
});

/** Balances are as seen by the commitment's holder: `toLocalMsat` is the holder's. */
export interface CommitmentContent {
  keyIndex: number;
  number: bigint;
  toLocalMsat: bigint;
  toRemoteMsat: bigint;
  feeratePerKw: bigint;
  tx: Uint8Array;
}
const commitmentFields = {
  keyIndex: { key: 1, type: u32 },
  number: { key: 2, type: u64 },
  toLocalMsat: { key: 3, type: msat },
  toRemoteMsat: { key: 4, type: msat },
  feeratePerKw: { key: 5, type: feerate },
  tx: { key: 6, type: tx },
} as const;

export interface SignCounterpartyCommitmentRequest extends CommitmentContent {
  /** The peer's per-commitment point for `number`. */
  perCommitmentPoint: Uint8Array;
}
export const signCounterpartyCommitmentRequestType: FieldType<SignCounterpartyCommitmentRequest> = struct<SignCounterpartyCommitmentRequest>('SignCounterpartyCommitmentRequest', {
  ...commitmentFields,
  perCommitmentPoint: { key: 7, type: pubkey },
});

export interface ValidateHolderCommitmentRequest extends CommitmentContent {
  /** The peer's signature on our commitment's funding input (64-byte compact). */
  counterpartySignature: Uint8Array;
}
export const validateHolderCommitmentRequestType: FieldType<ValidateHolderCommitmentRequest> = struct<ValidateHolderCommitmentRequest>('ValidateHolderCommitmentRequest', {
  ...commitmentFields,
  counterpartySignature: { key: 7, type: sig },
});

export interface RevokeRequest {
  keyIndex: number;
  /** The holder commitment to revoke: the one before the latest validated. */
  number: bigint;
}
export const revokeRequestType: FieldType<RevokeRequest> = struct<RevokeRequest>('RevokeRequest', {
  keyIndex: { key: 1, type: u32 },
  number: { key: 2, type: u64 },
});
export interface RevokeResponse {
  secret: Uint8Array;
  /** The per-commitment point of `number + 2`, for the peer's next revoke_and_ack. */
  nextPoint: Uint8Array;
}
export const revokeResponseType: FieldType<RevokeResponse> = struct<RevokeResponse>('RevokeResponse', {
  secret: { key: 1, type: bytes32 },
  nextPoint: { key: 2, type: pubkey },
});

export interface ValidateCounterpartyRevocationRequest {
  keyIndex: number;
  number: bigint;
  secret: Uint8Array;
}
export const validateCounterpartyRevocationRequestType: FieldType<ValidateCounterpartyRevocationRequest> = struct<ValidateCounterpartyRevocationRequest>('ValidateCounterpartyRevocationRequest', {
  keyIndex: { key: 1, type: u32 },
  number: { key: 2, type: u64 },
  secret: { key: 3, type: bytes32 },
});

export type CloseKind = 'cooperative' | 'holder-commitment' | 'oneway-refund';
export const CLOSE_KINDS: readonly CloseKind[] = ['cooperative', 'holder-commitment', 'oneway-refund'];
export interface SignCloseRequest {
  keyIndex: number;
  kind: CloseKind;
  tx: Uint8Array;
}
export const signCloseRequestType: FieldType<SignCloseRequest> = struct<SignCloseRequest>('SignCloseRequest', {
  keyIndex: { key: 1, type: u32 },
  kind: { key: 2, type: enumOf(CLOSE_KINDS) },
  tx: { key: 3, type: tx },
});

/**
 * penalty: a revoked commitment of the peer's, its to_local with the revocation key; to-local: our own
 * commitment's to_local after the delay; to-remote: our output of the peer's commitment.
 */
export type SweepKind = 'penalty' | 'to-local' | 'to-remote';
export const SWEEP_KINDS: readonly SweepKind[] = ['penalty', 'to-local', 'to-remote'];
export interface SignSweepRequest {
  keyIndex: number;
  kind: SweepKind;
  /** The commitment number whose output is spent. */
  number: bigint;
  tx: Uint8Array;
  inputIndex: number;
  /** BIP 143 scriptCode of the spent output. */
  scriptCode: Uint8Array;
  valueSat: bigint;
}
export const signSweepRequestType: FieldType<SignSweepRequest> = struct<SignSweepRequest>('SignSweepRequest', {
  keyIndex: { key: 1, type: u32 },
  kind: { key: 2, type: enumOf(SWEEP_KINDS) },
  number: { key: 3, type: u64 },
  tx: { key: 4, type: tx },
  inputIndex: { key: 5, type: u32 },
  scriptCode: { key: 6, type: varBytes(200) },
  valueSat: { key: 7, type: sat },
});

export interface SignatureResponse {
  signature: Uint8Array;
}
export const signatureResponseType: FieldType<SignatureResponse> = struct<SignatureResponse>('SignatureResponse', { signature: { key: 1, type: sig } });

export interface ChannelStateRequest {
  keyIndex: number;
}
export const channelStateRequestType: FieldType<ChannelStateRequest> = struct<ChannelStateRequest>('ChannelStateRequest', { keyIndex: { key: 1, type: u32 } });

/** What the key has signed and revoked, for a host resynchronising after a reconnect. */
export interface ChannelStateResponse {
  kind: 'oneway' | 'rsmc';
  /** One-way: the last payment signed (0 / 0 before the first). */
  stateNumber?: bigint;
  amountMsat?: bigint;
  /** RSMC: the latest holder commitment validated, our latest revoked (absent before the first). */
  holderNumber?: bigint;
  holderRevoked?: bigint;
  /** RSMC: the latest counterparty commitment signed, the peer's latest revocation validated. */
  counterpartyNumber?: bigint;
  counterpartyRevoked?: bigint;
}
export const channelStateResponseType: FieldType<ChannelStateResponse> = struct<ChannelStateResponse>('ChannelStateResponse', {
  kind: { key: 1, type: enumOf(['oneway', 'rsmc'] as const) },
  stateNumber: { key: 2, type: u64, optional: true },
  amountMsat: { key: 3, type: msat, optional: true },
  holderNumber: { key: 4, type: u64, optional: true },
  holderRevoked: { key: 5, type: u64, optional: true },
  counterpartyNumber: { key: 6, type: u64, optional: true },
  counterpartyRevoked: { key: 7, type: u64, optional: true },
});

export interface SetPolicyResponse {
  policyHash: Uint8Array;
}
export const setPolicyResponseType: FieldType<SetPolicyResponse> = struct<SetPolicyResponse>('SetPolicyResponse', { policyHash: { key: 1, type: bytes32 } });

/** Request and response body types of each command. */
export const COMMAND_TYPES = {
  [KeyCommand.GET_INFO]: { request: emptyType, response: infoResponseType },
  [KeyCommand.GET_PUBLIC_KEY]: { request: publicKeyRequestType, response: publicKeyResponseType },
  [KeyCommand.SETUP_CHANNEL]: { request: setupChannelRequestType, response: emptyType },
  [KeyCommand.SIGN_ONEWAY_PAYMENT]: { request: signOnewayPaymentRequestType, response: signatureResponseType },
  [KeyCommand.SIGN_COUNTERPARTY_COMMITMENT]: { request: signCounterpartyCommitmentRequestType, response: signatureResponseType },
  [KeyCommand.VALIDATE_HOLDER_COMMITMENT]: { request: validateHolderCommitmentRequestType, response: emptyType },
  [KeyCommand.REVOKE]: { request: revokeRequestType, response: revokeResponseType },
  [KeyCommand.VALIDATE_COUNTERPARTY_REVOCATION]: { request: validateCounterpartyRevocationRequestType, response: emptyType },
  [KeyCommand.SIGN_CLOSE]: { request: signCloseRequestType, response: signatureResponseType },
  [KeyCommand.SIGN_SWEEP]: { request: signSweepRequestType, response: signatureResponseType },
  [KeyCommand.GET_CHANNEL_STATE]: { request: channelStateRequestType, response: channelStateResponseType },
  [KeyCommand.SET_POLICY]: { request: policyType, response: setPolicyResponseType },
} as const;

export function encodeBody<T>(type: FieldType<T>, value: T): Uint8Array {
  return encodeStruct(type, value, MAX_BODY_SIZE);
}

/** Strict decode of a body; throws WireError on anything malformed. */
export function decodeBody<T>(type: FieldType<T>, body: Uint8Array): T {
  return decodeStruct(type, body, MAX_BODY_SIZE);
}

/** status ‖ body */
export function encodeResponse(status: KeyStatusCode, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + body.length);
  out[0] = status;
  out.set(body, 1);
  return out;
}

export function failureResponse(status: Exclude<KeyStatusCode, 0>, failure: Failure): Uint8Array {
  return encodeResponse(status, encodeBody(failureType, failure));
}


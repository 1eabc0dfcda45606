/**
 * What the key keeps (firmware-bridge/PROTOCOL.md §4): its seed, serial, policy, the spending window and,
 * per channel, the terms fixed at setup and the policy's high-water marks. The whole state is one CBOR
 * struct (the wire codec's strict struct encoding), stored in one atomic commit behind the KeyStorage
 * port, with a SHA-256 checksum so a damaged file locks the key instead of loosening its policy.
 */
import { decodeStruct, encodeStruct } from '../../src/wire/codec.js';
import { arrayOf, bytes32, msat, pubkey, sat, struct, text, u32, u64, unixTime, type FieldType } from '../../src/wire/schema.js';
// The setup is stored in exactly the form of the SETUP_CHANNEL request.
import { onewaySetupType, policyType, rsmcSetupType, type KeyPolicy } from '../../src/signer/hid/commands.js';
import type { OnewaySetup, RsmcSetup } from '../../src/signer/port.js';
import { sha256 } from '../../src/crypto/hash.js';
import { concatBytes, equalBytes } from '../../src/bytes.js';

/** The storage port: one blob, replaced atomically (all or nothing, durable when commit resolves). */
export interface KeyStorage {
  load(): Promise<Uint8Array | undefined>;
  commit(state: Uint8Array): Promise<void>;
}

/** Channels the key follows at once; a setup beyond it is refused (`policy-too-many-channels`). */
export const MAX_KEY_CHANNELS = 64;
export const STATE_VERSION = 1;
const MAX_STATE_BYTES = 1 << 20;

export interface StoredSecret {
  index: bigint;
  secret: Uint8Array;
}

export interface OnewayChannelState {
  /** The last payment signed; 0/0 before the first. */
  stateNumber: bigint;
  amountMsat: bigint;
  /** txid (internal order) of the last payment signed: a byte-identical retry is signed again. */
  lastTxid?: Uint8Array;
}

export interface RsmcChannelState {
  /** Latest holder commitment validated (with the peer's signature), its txid and our balance in it. */
  holderNumber?: bigint;
  holderTxid?: Uint8Array;
  holderLocalMsat?: bigint;
  /** Our latest revoked commitment. */
  holderRevoked?: bigint;
  /** Latest counterparty commitment signed, its txid, the peer's point for it and our balance in it. */
  counterpartyNumber?: bigint;
  counterpartyTxid?: Uint8Array;
  counterpartyPoint?: Uint8Array;
  counterpartyLocalMsat?: bigint;
  /** The point of counterpartyNumber − 1, until the peer revokes it. */
  previousCounterpartyPoint?: Uint8Array;
  /** The peer's latest revoked commitment, and its secrets in the BOLT 3 O(log n) store (index order). */
  counterpartyRevoked?: bigint;
  secrets: StoredSecret[];
  secretsLastIndex?: bigint;
}

export interface ChannelState {
  keyIndex: number;
  fundingTxid: Uint8Array;
  fundingVout: number;
  capacitySat: bigint;
  oneway?: OnewaySetup;
  rsmc?: RsmcSetup;
  onewayState?: OnewayChannelState;
  rsmcState?: RsmcChannelState;
}

export interface KeyState {
  version: number;
  seed: Uint8Array;
  serial: string;
  policy: KeyPolicy;
  /** Highest chain tip the host has reported: a host can delay the key's view, never turn it back. */
  tipHeight: number;
  /** Spending window (seconds since the epoch on the key's clock) and what left our balances in it. */
  periodStart: number;
  periodSpentMsat: bigint;
  channels: ChannelState[];
}

const onewayStateType = struct<OnewayChannelState>('OnewayChannelState', {
  stateNumber: { key: 1, type: u64 },
  amountMsat: { key: 2, type: msat },
  lastTxid: { key: 3, type: bytes32, optional: true },
});

const storedSecretType = struct<StoredSecret>('StoredSecret', {
  index: { key: 1, type: u64 },
  secret: { key: 2, type: bytes32 },
});

const rsmcStateType = struct<RsmcChannelState>('RsmcChannelState', {
  holderNumber: { key: 1, type: u64, optional: true },
  holderTxid: { key: 2, type: bytes32, optional: true },
  holderLocalMsat: { key: 3, type: msat, optional: true },
  holderRevoked: { key: 4, type: u64, optional: true },
  counterpartyNumber: { key: 5, type: u64, optional: true },
  counterpartyTxid: { key: 6, type: bytes32, optional: true },
  counterpartyPoint: { key: 7, type: pubkey, optional: true },
  counterpartyLocalMsat: { key: 8, type: msat, optional: true },
  previousCounterpartyPoint: { key: 9, type: pubkey, optional: true },
  counterpartyRevoked: { key: 10, type: u64, optional: true },
  secrets: { key: 11, type: arrayOf(storedSecretType, 49) },
  secretsLastIndex: { key: 12, type: u64, optional: true },
});

const channelStateType = struct<ChannelState>('ChannelState', {
  keyIndex: { key: 1, type: u32 },
  fundingTxid: { key: 2, type: bytes32 },
  fundingVout: { key: 3, type: u32 },
  capacitySat: { key: 4, type: sat },
  oneway: { key: 5, type: onewaySetupType, optional: true },
  rsmc: { key: 6, type: rsmcSetupType, optional: true },
  onewayState: { key: 7, type: onewayStateType, optional: true },
  rsmcState: { key: 8, type: rsmcStateType, optional: true },
});

const keyStateType: FieldType<KeyState> = struct<KeyState>('KeyState', {
  version: { key: 1, type: u32 },
  seed: { key: 2, type: bytes32 },
  serial: { key: 3, type: text(32) },
  policy: { key: 4, type: policyType },
  tipHeight: { key: 5, type: u32 },
  periodStart: { key: 6, type: unixTime },
  periodSpentMsat: { key: 7, type: msat },
  channels: { key: 8, type: arrayOf(channelStateType, MAX_KEY_CHANNELS) },
});

const MAGIC = new TextEncoder().encode('TRKY');

/** magic ‖ SHA-256(body) ‖ body */
export function encodeKeyState(state: KeyState): Uint8Array {
  const body = encodeStruct(keyStateType, state, MAX_STATE_BYTES);
  return concatBytes(MAGIC, sha256(body), body);
}

export class StateCorruptError extends Error {
  override readonly name = 'StateCorruptError';
}

/** Throws StateCorruptError on anything but a state this code wrote. */
export function decodeKeyState(bytes: Uint8Array): KeyState {
  if (bytes.length < MAGIC.length + 32 || !equalBytes(bytes.subarray(0, MAGIC.length), MAGIC)) throw new StateCorruptError('not a key state');
  const body = bytes.subarray(MAGIC.length + 32);
  if (!equalBytes(sha256(body), bytes.subarray(MAGIC.length, MAGIC.length + 32))) throw new StateCorruptError('checksum mismatch');
  let state: KeyState;
  try {
    state = decodeStruct(keyStateType, body, MAX_STATE_BYTES);
  } catch (error) {
    throw new StateCorruptError(`undecodable: ${(error as Error).message}`);
  }
  if (state.version !== STATE_VERSION) throw new StateCorruptError(`version ${state.version} is not supported`);
  return state;
}

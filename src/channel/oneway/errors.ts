/**
 * Why a one-way channel refused a message or a command. Each code has a stable u16 that goes on the wire
 * in `warning` / `error` (docs/protocol.md §3.6, §3.8) and says what the caller should do.
 */
export type ChannelErrorCode =
  | 'UNKNOWN_CHANNEL'
  | 'WRONG_PEER'
  | 'BAD_STATE'
  | 'TERMS_REJECTED'
  | 'TEMP_ID_IN_USE'
  | 'FUNDING_MISMATCH'
  | 'BAD_SIGNATURE'
  | 'PAYMENT_REPLAYED'
  | 'AMOUNT_NOT_INCREASING'
  | 'CAPACITY_EXCEEDED'
  | 'CHANNEL_CLOSING'
  | 'PEER_STATE_MISMATCH'
  | 'NO_OFFER'
  | 'INSUFFICIENT_FUNDS'
  | 'FUNDING_REJECTED'
  | 'TIMEOUT'
  | 'CORRUPT_RECORD'
  | 'PEER_ERROR'
  | 'STOPPED';

/** Wire codes (u16) for `warning`/`error`. 0x01xx: one-way channel layer. Never renumber. */
export const CHANNEL_WIRE_CODES: Readonly<Record<ChannelErrorCode, number>> = {
  UNKNOWN_CHANNEL: 0x0101,
  WRONG_PEER: 0x0102,
  BAD_STATE: 0x0103,
  TERMS_REJECTED: 0x0104,
  TEMP_ID_IN_USE: 0x0105,
  FUNDING_MISMATCH: 0x0106,
  BAD_SIGNATURE: 0x0107,
  PAYMENT_REPLAYED: 0x0108,
  AMOUNT_NOT_INCREASING: 0x0109,
  CAPACITY_EXCEEDED: 0x010a,
  CHANNEL_CLOSING: 0x010b,
  PEER_STATE_MISMATCH: 0x010c,
  NO_OFFER: 0x010d,
  INSUFFICIENT_FUNDS: 0x010e,
  FUNDING_REJECTED: 0x010f,
  TIMEOUT: 0x0110,
  CORRUPT_RECORD: 0x0111,
  PEER_ERROR: 0x0112,
  STOPPED: 0x0113,
};

const BY_WIRE_CODE = new Map(Object.entries(CHANNEL_WIRE_CODES).map(([name, code]) => [code, name as ChannelErrorCode]));

/** The channel error code for a wire code, if it is one of ours. */
export function channelErrorCodeOf(wireCode: number): ChannelErrorCode | undefined {
  return BY_WIRE_CODE.get(wireCode);
}

export class ChannelError extends Error {
  override readonly name = 'ChannelError';
  constructor(
    readonly code: ChannelErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get wireCode(): number {
    return CHANNEL_WIRE_CODES[this.code];
  }
}

/**
 * Why a revocable channel refused a message or a command. Each code has a stable u16 for `warning` /
 * `error` (docs/protocol.md §3.8, range 0x02xx) and says what the caller should do.
 */
export type RsmcErrorCode =
  /** No such channel with this peer. */
  | 'UNKNOWN_CHANNEL'
  /** The message does not fit the channel's phase. */
  | 'BAD_STATE'
  /** open_channel / accept_channel outside our policy (amounts, delays, dust, fee rate, depth). */
  | 'TERMS_REJECTED'
  | 'TEMP_ID_IN_USE'
  /** Funding outpoint, transaction or contribution differs from what was agreed. */
  | 'FUNDING_MISMATCH'
  /** A commitment or closing signature does not verify. */
  | 'BAD_SIGNATURE'
  /** A revealed per-commitment secret does not match its point, or not the shachain order. */
  | 'BAD_REVOCATION'
  /** An update id out of sequence. */
  | 'BAD_UPDATE_ID'
  /** The payer's balance (less reserve and, for the opener, the commitment fee) cannot cover the amount. */
  | 'INSUFFICIENT_BALANCE'
  | 'BAD_AMOUNT'
  /** Shutdown is under way: no new updates. */
  | 'CHANNEL_CLOSING'
  /** channel_reestablish: the peer is behind what it acknowledged (it lost state). */
  | 'PEER_STALE'
  /** channel_reestablish proves we lost state: we will not broadcast our commitment. */
  | 'LOCAL_STALE'
  /** channel_reestablish numbers that fit neither side. */
  | 'REESTABLISH_MISMATCH'
  /** The peer's closing fee proposal is out of range. */
  | 'BAD_CLOSING_FEE'
  | 'INSUFFICIENT_FUNDS'
  | 'FUNDING_REJECTED'
  | 'TIMEOUT'
  | 'CORRUPT_RECORD'
  | 'PEER_ERROR'
  | 'STOPPED';

/** Wire codes (u16). 0x02xx: revocable channel layer. Never renumber. */
export const RSMC_WIRE_CODES: Readonly<Record<RsmcErrorCode, number>> = {
  UNKNOWN_CHANNEL: 0x0201,
  BAD_STATE: 0x0202,
  TERMS_REJECTED: 0x0203,
  TEMP_ID_IN_USE: 0x0204,
  FUNDING_MISMATCH: 0x0205,
  BAD_SIGNATURE: 0x0206,
  BAD_REVOCATION: 0x0207,
  BAD_UPDATE_ID: 0x0208,
  INSUFFICIENT_BALANCE: 0x0209,
  BAD_AMOUNT: 0x020a,
  CHANNEL_CLOSING: 0x020b,
  PEER_STALE: 0x020c,
  LOCAL_STALE: 0x020d,
  REESTABLISH_MISMATCH: 0x020e,
  BAD_CLOSING_FEE: 0x020f,
  INSUFFICIENT_FUNDS: 0x0210,
  FUNDING_REJECTED: 0x0211,
  TIMEOUT: 0x0212,
  CORRUPT_RECORD: 0x0213,
  PEER_ERROR: 0x0214,
  STOPPED: 0x0215,
};

const BY_WIRE_CODE = new Map(Object.entries(RSMC_WIRE_CODES).map(([name, code]) => [code, name as RsmcErrorCode]));

export function rsmcErrorCodeOf(wireCode: number): RsmcErrorCode | undefined {
  return BY_WIRE_CODE.get(wireCode);
}

export class RsmcError extends Error {
  override readonly name = 'RsmcError';
  constructor(
    readonly code: RsmcErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get wireCode(): number {
    return RSMC_WIRE_CODES[this.code];
  }
}

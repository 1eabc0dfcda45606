/**
 * Typed errors. Programmer misuse throws TypeError/RangeError subclasses that name the field;
 * bad data from a peer, device or chain is reported with a stable `code` the caller can act on.
 */

export type AmountErrorCode = 'AMOUNT_NOT_INTEGER' | 'AMOUNT_NEGATIVE' | 'AMOUNT_TOO_LARGE';

/** An amount that is negative, not an integer, or above 21e14 sat (21 million BTC). */
export class AmountError extends RangeError {
  override readonly name = 'AmountError';
  constructor(
    readonly code: AmountErrorCode,
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

export type TxErrorCode =
  | 'DUST_OUTPUT'
  | 'INSUFFICIENT_FUNDS'
  | 'FEE_EXCEEDS_VALUE'
  | 'BAD_PUBKEY'
  | 'BAD_SIGNATURE'
  | 'BAD_PARAMETER'
  | 'DUPLICATE_INPUT'
  | 'KEY_MISMATCH'
  | 'MISSING_SIGNATURE';

/** A transaction cannot be built or completed as asked. */
export class TxBuildError extends Error {
  override readonly name = 'TxBuildError';
  constructor(
    readonly code: TxErrorCode,
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

export type SecretStoreErrorCode = 'SECRET_MISMATCH' | 'SECRET_BAD_INDEX' | 'SECRET_UNKNOWN';

/** A received per-commitment secret that does not fit the ones already stored (BOLT 3 shachain). */
export class SecretStoreError extends Error {
  override readonly name = 'SecretStoreError';
  constructor(
    readonly code: SecretStoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * WireError: the one error a decoder hands back for bad bytes from a peer (docs/protocol.md §2, [W-13]).
 * Programmer misuse on the encoding side throws TypeError/RangeError naming the field instead.
 *
 * Messages name the field and what was expected; they never carry the bytes that were received,
 * so a preimage or per-commitment secret can't end up in a log through an error.
 */

export type WireErrorCode =
  /** [W-2] longer than the receiver's limit; checked before any parsing. */
  | 'TOO_LARGE'
  /** [W-6] truncated, a declared length beyond the bytes remaining, a reserved header, a stray break. */
  | 'MALFORMED'
  /** [W-5] a non-shortest integer or length head, or map keys not in ascending order. */
  | 'NON_CANONICAL'
  /** [W-3] a CBOR tag (major type 6). */
  | 'TAG_NOT_ALLOWED'
  /** [W-3] an indefinite-length string, array or map. */
  | 'INDEFINITE_LENGTH'
  /** [W-3] a half, single or double float. */
  | 'FLOAT_NOT_ALLOWED'
  /** [W-3] null, undefined or any simple value other than true/false. */
  | 'SIMPLE_NOT_ALLOWED'
  /** [W-4] a map key that is not an unsigned integer below 2^32. */
  | 'BAD_KEY'
  /** [W-6] a text string that is not valid UTF-8. */
  | 'BAD_UTF8'
  /** [W-6] containers nested deeper than 8. */
  | 'TOO_DEEP'
  /** [W-6] more data items than the limit. */
  | 'TOO_MANY_ITEMS'
  /** [W-4] the same key twice in one map. */
  | 'DUPLICATE_KEY'
  /** [W-1] bytes after the one top-level item. */
  | 'TRAILING_BYTES'
  /** [W-1] the top-level item is not a map. */
  | 'NOT_A_MAP'
  /** [W-7] key 0 is not a version this implementation speaks. */
  | 'UNSUPPORTED_VERSION'
  /** [W-8] key 1 is not in the type table; `typeCode` says which. */
  | 'UNKNOWN_TYPE'
  /** [W-9] an even key this implementation does not know. */
  | 'UNKNOWN_EVEN_FIELD'
  /** A key a strict struct (the hardware key's commands and state) does not define, odd or even. */
  | 'UNKNOWN_FIELD'
  /** [W-10] a mandatory field is absent. */
  | 'MISSING_FIELD'
  /** [W-10] a field of the wrong CBOR type. */
  | 'BAD_TYPE'
  /** [W-10] an integer outside the field's range, or an enum value not defined. */
  | 'OUT_OF_RANGE'
  /** [W-10] a byte string, text or array of the wrong length. */
  | 'BAD_LENGTH'
  /** [W-10] 33 bytes that are not a compressed secp256k1 point. */
  | 'BAD_PUBKEY'
  /** [W-14] an announcement signature that does not verify under its nodeId. */
  | 'BAD_SIGNATURE'
  /** [W-14] an announcement from a different node than the caller expected. */
  | 'NODE_ID_MISMATCH';

export interface WireErrorDetails {
  /** Field path, e.g. `amountMsat` or `services[2].unit`. */
  field?: string;
  /** Byte offset into the message where the CBOR guard stopped. */
  offset?: number;
  /** For UNKNOWN_TYPE: the type code received, so the session layer can count or act on it. */
  typeCode?: number;
}

export class WireError extends Error {
  override readonly name = 'WireError';
  /** The message without the code and field prefix. */
  readonly detail: string;
  readonly field: string | undefined;
  readonly offset: number | undefined;
  readonly typeCode: number | undefined;

  constructor(
    readonly code: WireErrorCode,
    message: string,
    details: WireErrorDetails = {},
  ) {
    super(details.field === undefined ? `${code}: ${message}` : `${code}: ${details.field}: ${message}`);
    this.detail = message;
    this.field = details.field;
    this.offset = details.offset;
    this.typeCode = details.typeCode;
  }
}

/**
 * Errors of the host side of the Trickle key's USB HID link (firmware-bridge/PROTOCOL.md §1–§2, after
 * CTAP 2.1 §11.2 CTAPHID). Programmer misuse throws TypeError/RangeError naming the field; everything
 * that goes wrong with the key or its link is a HidError with a stable `code` the caller can act on.
 */

export type HidErrorCode =
  /** No matching key is attached (or the emulator's socket is not there). */
  | 'NOT_FOUND'
  /** The key went away (unplugged, socket closed by the other end, I/O error). */
  | 'DISCONNECTED'
  /** The key sent nothing for the timeout (KEEPALIVE restarts it). */
  | 'TIMEOUT'
  /** The caller's AbortSignal fired; CANCEL was sent to the key. */
  | 'CANCELLED'
  /** The key answered ERROR CHANNEL_BUSY: another channel's command is running. */
  | 'BUSY'
  /** The key answered ERROR with another code (`deviceErrorCode`). */
  | 'DEVICE_ERROR'
  /** The key's answer does not follow the framing (wrong size, bad sequence). */
  | 'BAD_RESPONSE'
  /** The client or transport was closed by this side. */
  | 'CLOSED';

export class HidError extends Error {
  override readonly name = 'HidError';
  readonly code: HidErrorCode;
  /** The ERROR payload byte from the key (PROTOCOL.md [F-5]), for DEVICE_ERROR and BUSY. */
  readonly deviceErrorCode?: number;

  constructor(code: HidErrorCode, message: string, deviceErrorCode?: number, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    if (deviceErrorCode !== undefined) this.deviceErrorCode = deviceErrorCode;
  }
}

/**
 * HID report framing of the Trickle key (firmware-bridge/PROTOCOL.md §2), shared by the host (HidSigner)
 * and the key (firmware-bridge/core). It follows FIDO CTAPHID (CTAP 2.1 §11.2.4): 64-byte reports, a
 * 4-byte channel id, an init packet (command with bit 7 set, 2-byte big-endian length, 57 data bytes) and
 * continuation packets (sequence 0–127, 59 data bytes each), so a message carries at most 7609 bytes.
 *
 * Pure code: no I/O, no timers. The assembler never throws on bad reports; it returns a typed result.
 */

/** [F-1] Every report is exactly 64 bytes (no report id on the device side; hidraw's 0x00 is the host's). */
export const REPORT_SIZE = 64;
export const INIT_DATA_SIZE = REPORT_SIZE - 7;
export const CONT_DATA_SIZE = REPORT_SIZE - 5;
export const MAX_SEQUENCE = 127;
/** [F-2] 57 + 128 × 59. */
export const MAX_MESSAGE_SIZE = INIT_DATA_SIZE + (MAX_SEQUENCE + 1) * CONT_DATA_SIZE;
/** [F-3] The broadcast channel: only INIT is accepted on it. */
export const BROADCAST_CID = 0xffff_ffff;
/** Channel ids 0 and the broadcast id are never allocated. */
export const RESERVED_CID = 0;

/** [F-4] Transport commands (CTAPHID values) and the vendor range the key's commands live in. */
export const HidCommand = {
  PING: 0x01,
  INIT: 0x06,
  CANCEL: 0x11,
  KEEPALIVE: 0x3b,
  ERROR: 0x3f,
  VENDOR_FIRST: 0x40,
  VENDOR_LAST: 0x7f,
} as const;

/** [F-5] ERROR payload codes (CTAPHID's). */
export const HidErrorCode = {
  INVALID_CMD: 0x01,
  INVALID_PAR: 0x02,
  INVALID_LEN: 0x03,
  INVALID_SEQ: 0x04,
  MSG_TIMEOUT: 0x05,
  CHANNEL_BUSY: 0x06,
  INVALID_CHANNEL: 0x0b,
  OTHER: 0x7f,
} as const;

/** [F-6] KEEPALIVE payload: still working, or waiting for the user's confirmation. */
export const KeepaliveStatus = { PROCESSING: 1, UP_NEEDED: 2 } as const;

/** INIT: an 8-byte nonce in, nonce ‖ cid ‖ protocol version ‖ major ‖ minor ‖ build ‖ capabilities out. */
export const INIT_NONCE_SIZE = 8;
export const INIT_RESPONSE_SIZE = 17;
export const FRAMING_PROTOCOL_VERSION = 2;

export interface Message {
  cid: number;
  /** 7-bit command (bit 7 of the init packet's command byte is the init marker). */
  command: number;
  payload: Uint8Array;
}

export type Packet =
  | { kind: 'init'; cid: number; command: number; length: number; data: Uint8Array }
  | { kind: 'cont'; cid: number; sequence: number; data: Uint8Array };

function assertCid(cid: number): void {
  if (!Number.isInteger(cid) || cid < 0 || cid > 0xffff_ffff) throw new RangeError('"cid" expected a uint32');
}

/** Split a message into 64-byte reports, zero-padded. Throws RangeError on a bad command or size. */
export function encodeMessage(message: Message): Uint8Array[] {
  const { cid, command, payload } = message;
  assertCid(cid);
  if (!Number.isInteger(command) || command < 0 || command > 0x7f) throw new RangeError('"command" expected 0..127');
  if (!(payload instanceof Uint8Array)) throw new TypeError('"payload" expected Uint8Array');
  if (payload.length > MAX_MESSAGE_SIZE) throw new RangeError(`"payload" is ${payload.length} bytes, above ${MAX_MESSAGE_SIZE}`);
  const reports: Uint8Array[] = [];
  const first = new Uint8Array(REPORT_SIZE);
  writeCid(first, cid);
  first[4] = 0x80 | command;
  first[5] = payload.length >> 8;
  first[6] = payload.length & 0xff;
  first.set(payload.subarray(0, INIT_DATA_SIZE), 7);
  reports.push(first);
  let offset = INIT_DATA_SIZE;
  for (let sequence = 0; offset < payload.length; sequence++) {
    const report = new Uint8Array(REPORT_SIZE);
    writeCid(report, cid);
    report[4] = sequence;
    report.set(payload.subarray(offset, offset + CONT_DATA_SIZE), 5);
    reports.push(report);
    offset += CONT_DATA_SIZE;
  }
  return reports;
}

/** Parse one report's header. Only its size is checked here; the assembler checks the rest. */
export function decodePacket(report: Uint8Array): Packet | undefined {
  if (!(report instanceof Uint8Array) || report.length !== REPORT_SIZE) return undefined;
  const cid = readCid(report);
  const byte = report[4]!;
  if (byte & 0x80) {
    return { kind: 'init', cid, command: byte & 0x7f, length: (report[5]! << 8) | report[6]!, data: report.subarray(7) };
  }
  return { kind: 'cont', cid, sequence: byte, data: report.subarray(5) };
}

export function readCid(report: Uint8Array): number {
  return ((report[0]! << 24) | (report[1]! << 16) | (report[2]! << 8) | report[3]!) >>> 0;
}

function writeCid(report: Uint8Array, cid: number): void {
  report[0] = cid >>> 24;
  report[1] = (cid >>> 16) & 0xff;
  report[2] = (cid >>> 8) & 0xff;
  report[3] = cid & 0xff;
}

/** The outcome of feeding one report to an assembler. */
export type AssembleResult =
  /** The report was taken; the message is not complete yet. */
  | { kind: 'partial' }
  | { kind: 'message'; message: Message }
  /**
   * A framing error to report on `cid` with ERROR `code` ([F-7]); the message under way on that
   * channel, if any, is dropped. `ignore` reports (a stray continuation, a wrong size) are dropped silently.
   */
  | { kind: 'error'; cid: number; code: number }
  | { kind: 'ignore'; reason: string };

/** INIT and CANCEL may arrive in the middle of another message (CTAP 2.1 §11.2.9.1.3, §11.2.9.1.5). */
function isControl(packet: Extract<Packet, { kind: 'init' }>): boolean {
  return packet.command === HidCommand.INIT || packet.command === HidCommand.CANCEL;
}

function complete(packet: Extract<Packet, { kind: 'init' }>): AssembleResult {
  return { kind: 'message', message: { cid: packet.cid, command: packet.command, payload: packet.data.slice(0, packet.length) } };
}

/**
 * Reassembles one message at a time, like a CTAPHID device or host: an init packet starts a message,
 * continuations must follow in sequence on the same channel. A report from another channel while a
 * message is under way is answered with CHANNEL_BUSY by the caller (the assembler says so); a short INIT
 * or CANCEL is let through (CTAPHID's INIT and CANCEL are outside transaction semantics). No timers:
 * the caller calls `reset()` when its transaction timeout fires ([F-8]).
 */
export class MessageAssembler {
  #cid = 0;
  #command = 0;
  #buffer: Uint8Array | undefined;
  #filled = 0;
  #nextSequence = 0;

  /** True while a message is half received. */
  get busy(): boolean {
    return this.#buffer !== undefined;
  }

  /** The channel of the message under way (meaningful only while busy). */
  get cid(): number {
    return this.#cid;
  }

  reset(): void {
    this.#buffer = undefined;
    this.#filled = 0;
    this.#nextSequence = 0;
  }

  feed(report: Uint8Array): AssembleResult {
    const packet = decodePacket(report);
    if (!packet) return { kind: 'ignore', reason: 'report size' };
    if (packet.kind === 'init') {
      if (this.#buffer) {
        if (packet.cid !== this.#cid) {
          // [F-7] Another channel's message is under way. A short INIT (resynchronise or allocate) or
          // CANCEL (of that other channel's running command) is passed on at once without disturbing
          // it; anything else is told the key is busy.
          if (isControl(packet) && packet.length <= INIT_DATA_SIZE) return complete(packet);
          return { kind: 'error', cid: packet.cid, code: HidErrorCode.CHANNEL_BUSY };
        }
        this.reset();
        // INIT (resynchronisation) or CANCEL on the same channel abandons the message under way; any
        // other init packet mid-message is a sequence error, as in CTAPHID.
        if (!isControl(packet)) return { kind: 'error', cid: packet.cid, code: HidErrorCode.INVALID_SEQ };
      }
      if (packet.length > MAX_MESSAGE_SIZE) return { kind: 'error', cid: packet.cid, code: HidErrorCode.INVALID_LEN };
      if (packet.length <= INIT_DATA_SIZE) return complete(packet);
      this.#cid = packet.cid;
      this.#command = packet.command;
      this.#buffer = new Uint8Array(packet.length);
      this.#buffer.set(packet.data);
      this.#filled = INIT_DATA_SIZE;
      this.#nextSequence = 0;
      return { kind: 'partial' };
    }
    if (!this.#buffer) return { kind: 'ignore', reason: 'continuation without an init packet' };
    if (packet.cid !== this.#cid) return { kind: 'error', cid: packet.cid, code: HidErrorCode.CHANNEL_BUSY };
    if (packet.sequence !== this.#nextSequence) {
      this.reset();
      return { kind: 'error', cid: packet.cid, code: HidErrorCode.INVALID_SEQ };
    }
    const take = Math.min(CONT_DATA_SIZE, this.#buffer.length - this.#filled);
    this.#buffer.set(packet.data.subarray(0, take), this.#filled);
    this.#filled += take;
    this.#nextSequence++;
    if (this.#filled < this.#buffer.length) return { kind: 'partial' };
    const message = { cid: this.#cid, command: this.#command, payload: this.#buffer };
    this.reset();
    return { kind: 'message', message };
  }
}

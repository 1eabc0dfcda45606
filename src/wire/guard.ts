/**
 * The CBOR guard: one pass over the raw bytes that checks the Trickle subset (docs/protocol.md §2.3,
 * [W-1], [W-3]–[W-6]) before cbor-x sees them. It reads heads and skips payloads in place and allocates
 * nothing sized by the input, so a 10-byte message that declares a 4 GiB byte string, array or map fails
 * here in constant time instead of reaching an allocator.
 *
 * Accepted: unsigned and negative integers, byte and text strings, arrays and maps, all with definite,
 * shortest-form lengths; true and false. Map keys are unsigned integers below 2^32 in strictly ascending
 * order, which also makes every duplicate key (at any level) detectable without remembering keys.
 *
 * @example
 *   checkCborSubset(bytes); // throws WireError, or returns when cbor-x may decode `bytes`
 */
import { WireError, type WireErrorCode } from './wire-error.js';

/** [W-6] Containers may nest this deep; the envelope map is depth 1. */
export const MAX_DEPTH = 8;
/** [W-6] Data items per message, map keys included (commitment_signed at 483 HTLCs needs ~500). */
export const MAX_ITEMS = 4096;

const MAJOR_MAP = 5;

class Walker {
  pos = 0;
  items = 0;
  // Head of the item just read, kept in fields so reading a head allocates nothing.
  major = 0;
  arg = 0;
  /** The argument did not fit 32 bits (an 8-byte head); `arg` is then approximate. */
  big = false;

  constructor(private readonly b: Uint8Array) {}

  fail(code: WireErrorCode, message: string, at: number): never {
    throw new WireError(code, `${message} at byte ${at}`, { offset: at });
  }

  head(): void {
    const b = this.b;
    const start = this.pos;
    if (start >= b.length) this.fail('MALFORMED', 'unexpected end of input', start);
    const initial = b[this.pos++]!;
    const major = initial >> 5;
    const ai = initial & 0x1f;
    this.major = major;
    this.big = false;
    // [W-3] tags, floats and simple values other than true/false are outside the subset.
    if (major === 6) this.fail('TAG_NOT_ALLOWED', 'CBOR tag', start);
    if (major === 7) {
      if (ai === 20 || ai === 21) {
        this.arg = ai;
        return;
      }
      if (ai >= 25 && ai <= 27) this.fail('FLOAT_NOT_ALLOWED', 'floating-point value', start);
      if (ai === 31) this.fail('MALFORMED', 'break outside an indefinite-length item', start);
      if (ai >= 28) this.fail('MALFORMED', 'reserved additional information', start);
      this.fail('SIMPLE_NOT_ALLOWED', 'null, undefined or a simple value', start);
    }
    if (ai < 24) {
      this.arg = ai;
      return;
    }
    if (ai === 31) {
      if (major >= 2) this.fail('INDEFINITE_LENGTH', 'indefinite length', start);
      this.fail('MALFORMED', 'indefinite length on an integer', start);
    }
    if (ai >= 28) this.fail('MALFORMED', 'reserved additional information', start);
    const size = 1 << (ai - 24);
    if (b.length - this.pos < size) this.fail('MALFORMED', 'truncated head', start);
    const p = this.pos;
    let value: number;
    let min: number;
    if (size === 1) {
      value = b[p]!;
      min = 24;
    } else if (size === 2) {
      value = (b[p]! << 8) | b[p + 1]!;
      min = 0x100;
    } else if (size === 4) {
      value = b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
      min = 0x10000;
    } else {
      const hi = b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
      const lo = b[p + 4]! * 0x1000000 + ((b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!);
      value = hi * 0x100000000 + lo;
      min = 0;
      this.big = true;
      if (hi === 0) this.fail('NON_CANONICAL', 'integer head longer than needed', start);
    }
    // [W-5] shortest form only: one encoding per value.
    if (value < min) this.fail('NON_CANONICAL', 'integer head longer than needed', start);
    this.pos += size;
    this.arg = value;
  }

  /** [W-6] A declared length or count, checked against what is left: each unit takes at least `unit` bytes. */
  length(start: number, unit: number): number {
    const remaining = this.b.length - this.pos;
    if (this.big || this.arg * unit > remaining) {
      this.fail('MALFORMED', 'declared length exceeds the bytes remaining', start);
    }
    return this.arg;
  }

  countItem(at: number): void {
    if (++this.items > MAX_ITEMS) this.fail('TOO_MANY_ITEMS', `more than ${MAX_ITEMS} data items`, at);
  }

  item(depth: number): void {
    const start = this.pos;
    this.countItem(start);
    this.head();
    switch (this.major) {
      case 2:
      case 3: {
        const len = this.length(start, 1);
        if (this.major === 3 && !isValidUtf8(this.b, this.pos, this.pos + len)) {
          this.fail('BAD_UTF8', 'text string is not valid UTF-8', start);
        }
        this.pos += len;
        return;
      }
      case 4: {
        if (depth > MAX_DEPTH) this.fail('TOO_DEEP', `nesting deeper than ${MAX_DEPTH}`, start);
        const count = this.length(start, 1);
        for (let i = 0; i < count; i++) this.item(depth + 1);
        return;
      }
      case MAJOR_MAP: {
        if (depth > MAX_DEPTH) this.fail('TOO_DEEP', `nesting deeper than ${MAX_DEPTH}`, start);
        this.map(this.length(start, 2), depth);
        return;
      }
      default:
        return; // integers, true, false
    }
  }

  map(pairs: number, depth: number): void {
    const first = this.pos;
    let previous = -1;
    for (let i = 0; i < pairs; i++) {
      const keyAt = this.pos;
      this.countItem(keyAt);
      this.head();
      // [W-4] keys are unsigned integers below 2^32.
      if (this.major !== 0 || this.big) this.fail('BAD_KEY', 'map key is not an unsigned integer below 2^32', keyAt);
      const key = this.arg;
      if (key <= previous) {
        // [W-4] a duplicate anywhere in the map; otherwise [W-5] keys out of order.
        if (key === previous || this.hasKey(first, i, key, depth)) {
          this.fail('DUPLICATE_KEY', `duplicate map key ${key}`, keyAt);
        }
        this.fail('NON_CANONICAL', 'map keys not in ascending order', keyAt);
      }
      previous = key;
      this.item(depth + 1);
    }
  }

  /** Whether one of the first `pairs` keys of the map starting at `first` equals `key` (already walked, so safe). */
  private hasKey(first: number, pairs: number, key: number, depth: number): boolean {
    this.pos = first;
    this.items = 0; // the rescan re-counts items already counted; the caller throws right after
    for (let i = 0; i < pairs; i++) {
      this.head();
      if (this.arg === key) return true;
      this.item(depth + 1);
    }
    return false;
  }
}

/**
 * [W-1], [W-3]–[W-6] Check that `bytes` is exactly one CBOR map in the Trickle subset. Throws WireError
 * (NOT_A_MAP, MALFORMED, TAG_NOT_ALLOWED, INDEFINITE_LENGTH, FLOAT_NOT_ALLOWED, SIMPLE_NOT_ALLOWED, BAD_KEY,
 * BAD_UTF8, NON_CANONICAL, TOO_DEEP, TOO_MANY_ITEMS, DUPLICATE_KEY, TRAILING_BYTES).
 */
export function checkCborSubset(bytes: Uint8Array): void {
  if (bytes.length === 0) throw new WireError('MALFORMED', 'empty message', { offset: 0 });
  if (bytes[0]! >> 5 !== MAJOR_MAP) throw new WireError('NOT_A_MAP', 'the message is not a CBOR map', { offset: 0 });
  const walker = new Walker(bytes);
  walker.item(1);
  if (walker.pos !== bytes.length) {
    throw new WireError('TRAILING_BYTES', `bytes after the message at byte ${walker.pos}`, { offset: walker.pos });
  }
}

/** Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
export function isValidUtf8(b: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let cp: number;
    let min: number;
    if ((c & 0xe0) === 0xc0) {
      need = 1;
      cp = c & 0x1f;
      min = 0x80;
    } else if ((c & 0xf0) === 0xe0) {
      need = 2;
      cp = c & 0x0f;
      min = 0x800;
    } else if ((c & 0xf8) === 0xf0) {
      need = 3;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return false;
    }
    if (end - i <= need) return false;
    for (let k = 1; k <= need; k++) {
      const cc = b[i + k]!;
      if ((cc & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += need + 1;
  }
  return true;
}

/**
 * BOLT 3 per-commitment secrets ("shachain").
 *
 * Sender side: every per-commitment secret is derived from one 32-byte per-channel seed and a
 * 48-bit index (BOLT 3 § "Per-commitment Secret Requirements", generate_from_seed). The first
 * commitment uses index 2^48-1 and each later one the index below it, so revealing an old secret
 * never reveals a newer one.
 *
 * Receiver side: secrets arrive in descending index order, and a secret whose index ends in k zero
 * bits derives every secret that shares its upper 48-k bits. {@link PerCommitmentSecretStore}
 * therefore keeps at most one secret per trailing-zero count (49 slots) and can still hand back any
 * secret received so far (BOLT 3 § "Efficient Per-commitment Secret Storage", insert_secret /
 * derive_old_secret). Each insert is checked against the slots it can derive, which is how a peer
 * that sends secrets not from one seed is caught.
 */
import { sha256 } from '../../crypto/hash.js';
import { bytesToHex, equalBytes, hexToBytes } from '../../bytes.js';
import { SecretStoreError } from '../../errors.js';

/** Width of a per-commitment index in bits. */
export const INDEX_BITS = 48;

/** Largest index, 2^48-1: the index of the first secret (commitment number 0). */
export const FIRST_INDEX = (1n << 48n) - 1n;

/** Largest commitment number that has an index (index 0). */
export const MAX_COMMITMENT_NUMBER = FIRST_INDEX;

/** Slots of the compact store: one per trailing-zero count 0..47, plus 48 for index 0. */
export const SECRET_STORE_SLOTS = INDEX_BITS + 1;

const SECRET_BYTES = 32;
const DECIMAL = /^(0|[1-9][0-9]{0,14})$/; // 2^48-1 has 15 digits; canonical form only
const LOWER_HEX_32 = /^[0-9a-f]{64}$/;

function checkIndex(index: unknown, field: string): bigint {
  if (typeof index !== 'bigint') throw new TypeError(`"${field}" expected a bigint`);
  if (index < 0n || index > FIRST_INDEX) throw new RangeError(`"${field}" expected 0 <= ${field} <= 2^48-1`);
  return index;
}

function checkSecret(secret: unknown, field: string): Uint8Array {
  if (!(secret instanceof Uint8Array) || secret.length !== SECRET_BYTES) {
    throw new TypeError(`"${field}" expected 32-byte Uint8Array`);
  }
  return secret;
}

/**
 * derive_secret(base, bits, I): starting from `base`, for B = bits-1 down to 0, when bit B of I is
 * set flip bit (B mod 8) of byte (B div 8) (byte 0 first, bit 0 = LSB) and hash with SHA256.
 * Works on a copy so the caller's (or the store's) bytes are never modified.
 */
function deriveSecret(base: Uint8Array, bits: number, index: bigint): Uint8Array {
  let p: Uint8Array = Uint8Array.from(base);
  for (let b = bits - 1; b >= 0; b--) {
    if ((index >> BigInt(b)) & 1n) {
      p[b >> 3]! ^= 1 << (b & 7);
      p = sha256(p);
    }
  }
  return p;
}

/** where_to_put_secret(I): the number of trailing zero bits of I, 48 for I = 0. */
function slotOf(index: bigint): number {
  for (let b = 0; b < INDEX_BITS; b++) {
    if ((index >> BigInt(b)) & 1n) return b;
  }
  return INDEX_BITS;
}

/** The low `bits` bits of an index cleared: the index a slot-`bits` secret must hold to derive `index`. */
function prefixOf(index: bigint, bits: number): bigint {
  return (index >> BigInt(bits)) << BigInt(bits);
}

/**
 * BOLT 3 generate_from_seed(seed, I): the per-commitment secret for 48-bit index I.
 * Index 2^48-1 is commitment number 0 (see {@link commitmentIndex}). Note that index 0 returns the
 * seed itself; that secret would only be revealed when revoking commitment 2^48-1, which cannot happen.
 */
export function generatePerCommitmentSecret(seed: Uint8Array, index: bigint): Uint8Array {
  checkSecret(seed, 'seed');
  checkIndex(index, 'index');
  return deriveSecret(seed, INDEX_BITS, index);
}

/** Index of commitment number n: 2^48-1-n (BOLT 3: the index counts down from 2^48-1). */
export function commitmentIndex(commitmentNumber: bigint): bigint {
  if (typeof commitmentNumber !== 'bigint') throw new TypeError('"commitmentNumber" expected a bigint');
  if (commitmentNumber < 0n || commitmentNumber > MAX_COMMITMENT_NUMBER) {
    throw new RangeError('"commitmentNumber" expected 0 <= commitmentNumber <= 2^48-1');
  }
  return FIRST_INDEX - commitmentNumber;
}

/** Persisted form of a {@link PerCommitmentSecretStore}: decimal index strings, lowercase hex secrets. */
export interface PerCommitmentSecretStoreJSON {
  version: 1;
  /** Index of the last secret inserted, or null when nothing has been received. */
  lastIndex: string | null;
  /** The filled slots, in slot order (trailing-zero count of the index, ascending). */
  secrets: Array<{ index: string; secret: string }>;
}

interface Entry {
  readonly index: bigint;
  readonly secret: Uint8Array;
}

/**
 * Receiver storage for the peer's per-commitment secrets: O(log n) space, never more than 49 entries.
 * Secrets must be inserted in order: 2^48-1 first, then each index one below the previous.
 */
export class PerCommitmentSecretStore {
  // known[b] holds the most recent secret whose index has exactly b trailing zeros (b = 48: index 0).
  readonly #known: Array<Entry | undefined> = new Array<Entry | undefined>(SECRET_STORE_SLOTS).fill(undefined);
  #lastIndex: bigint | undefined = undefined;

  /** Index of the last secret inserted; undefined for an empty store. */
  get lastIndex(): bigint | undefined {
    return this.#lastIndex;
  }

  /** The index the next insert must carry; undefined once index 0 has been received. */
  get nextIndex(): bigint | undefined {
    if (this.#lastIndex === undefined) return FIRST_INDEX;
    return this.#lastIndex === 0n ? undefined : this.#lastIndex - 1n;
  }

  /**
   * BOLT 3 insert_secret. Throws SecretStoreError SECRET_BAD_INDEX when `index` is not
   * {@link nextIndex}, and SECRET_MISMATCH when `secret` does not derive the already stored secrets
   * it should (the peer is not revealing secrets from one seed); in both cases nothing is stored.
   * Throws TypeError/RangeError on a malformed argument.
   */
  insert(index: bigint, secret: Uint8Array): void {
    checkIndex(index, 'index');
    checkSecret(secret, 'secret');
    const expected = this.nextIndex;
    if (index !== expected) {
      throw new SecretStoreError(
        'SECRET_BAD_INDEX',
        expected === undefined
          ? `index ${index} rejected: all 2^48 secrets already received`
          : `index ${index} rejected: expected ${expected}`,
      );
    }
    const slot = slotOf(index);
    // Every filled slot below `slot` holds an index sharing the upper 48-slot bits of `index`
    // (strict descending order guarantees it), so the new secret must derive each of them.
    // The spec's loop bound reads "0 to B"; only b < B makes sense (slot B itself is replaced).
    // The prefix test cannot fail while that invariant holds; it keeps a broken invariant from
    // ever comparing unrelated secrets.
    for (let b = 0; b < slot; b++) {
      const entry = this.#known[b];
      if (entry === undefined) continue;
      if (prefixOf(entry.index, slot) !== index || !equalBytes(deriveSecret(secret, slot, entry.index), entry.secret)) {
        throw new SecretStoreError(
          'SECRET_MISMATCH',
          `secret for index ${index} does not derive the stored secret for index ${entry.index}`,
        );
      }
    }
    this.#known[slot] = { index, secret: Uint8Array.from(secret) };
    this.#lastIndex = index;
  }

  /**
   * BOLT 3 derive_old_secret: the secret for `index` if it has been received, else undefined.
   * Returns a fresh copy.
   */
  get(index: bigint): Uint8Array | undefined {
    checkIndex(index, 'index');
    for (let b = 0; b < SECRET_STORE_SLOTS; b++) {
      const entry = this.#known[b];
      if (entry !== undefined && entry.index === prefixOf(index, b)) return deriveSecret(entry.secret, b, index);
    }
    return undefined;
  }

  toJSON(): PerCommitmentSecretStoreJSON {
    const secrets: Array<{ index: string; secret: string }> = [];
    for (const entry of this.#known) {
      if (entry !== undefined) secrets.push({ index: entry.index.toString(10), secret: bytesToHex(entry.secret) });
    }
    return {
      version: 1,
      lastIndex: this.#lastIndex === undefined ? null : this.#lastIndex.toString(10),
      secrets,
    };
  }

  /**
   * Rebuild a store from {@link toJSON} output, validating everything, since a damaged store would
   * silently lose the ability to punish a revoked commitment. Throws TypeError on a wrong shape or
   * encoding, RangeError on an index outside 48 bits, SecretStoreError SECRET_BAD_INDEX when the slots
   * are not exactly those that inserting 2^48-1 down to lastIndex leaves, and SECRET_MISMATCH when the
   * stored secrets do not derive one another as insert would have required.
   */
  static fromJSON(json: unknown): PerCommitmentSecretStore {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new TypeError('secret store: expected an object');
    }
    const obj = json as Record<string, unknown>;
    checkKeys(obj, ['version', 'lastIndex', 'secrets'], 'secret store');
    if (obj.version !== 1) throw new TypeError('secret store: unsupported "version"');
    const lastIndex = obj.lastIndex === null ? undefined : parseIndex(obj.lastIndex, 'lastIndex');
    if (!Array.isArray(obj.secrets)) throw new TypeError('secret store: "secrets" expected an array');
    if (obj.secrets.length > SECRET_STORE_SLOTS) {
      throw new TypeError(`secret store: "secrets" holds more than ${SECRET_STORE_SLOTS} entries`);
    }

    const known = new Array<Entry | undefined>(SECRET_STORE_SLOTS).fill(undefined);
    obj.secrets.forEach((raw: unknown, i: number) => {
      const field = `secrets[${i}]`;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        throw new TypeError(`secret store: "${field}" expected an object`);
      }
      const rec = raw as Record<string, unknown>;
      checkKeys(rec, ['index', 'secret'], `secret store: ${field}`);
      const index = parseIndex(rec.index, `${field}.index`);
      if (typeof rec.secret !== 'string' || !LOWER_HEX_32.test(rec.secret)) {
        throw new TypeError(`secret store: "${field}.secret" expected 64 lowercase hex characters`);
      }
      const slot = slotOf(index);
      if (known[slot] !== undefined) {
        throw new SecretStoreError('SECRET_BAD_INDEX', `secret store: two secrets for slot ${slot}`);
      }
      known[slot] = { index, secret: hexToBytes(rec.secret) };
    });

    // Inserting 2^48-1 down to lastIndex leaves in slot b the smallest index >= lastIndex with
    // exactly b trailing zeros (descending order: the last one written). Anything else is damage.
    for (let b = 0; b < SECRET_STORE_SLOTS; b++) {
      const want = lastIndex === undefined ? undefined : expectedSlotIndex(lastIndex, b);
      const have = known[b]?.index;
      if (want !== have) {
        throw new SecretStoreError(
          'SECRET_BAD_INDEX',
          `secret store: slot ${b} holds index ${have ?? 'none'}, expected ${want ?? 'none'}`,
        );
      }
    }

    // Every pair that insert would have compared (slot b < B, same upper 48-B bits) must still agree.
    for (let hi = 1; hi < SECRET_STORE_SLOTS; hi++) {
      const top = known[hi];
      if (top === undefined) continue;
      for (let lo = 0; lo < hi; lo++) {
        const entry = known[lo];
        if (entry === undefined || prefixOf(entry.index, hi) !== top.index) continue;
        if (!equalBytes(deriveSecret(top.secret, hi, entry.index), entry.secret)) {
          throw new SecretStoreError(
            'SECRET_MISMATCH',
            `secret store: secret for index ${top.index} does not derive the one for index ${entry.index}`,
          );
        }
      }
    }

    const store = new PerCommitmentSecretStore();
    known.forEach((entry, b) => (store.#known[b] = entry));
    store.#lastIndex = lastIndex;
    return store;
  }
}

function checkKeys(obj: Record<string, unknown>, keys: string[], what: string): void {
  for (const key of Object.keys(obj)) {
    if (!keys.includes(key)) throw new TypeError(`${what}: unexpected field "${key}"`);
  }
  for (const key of keys) {
    if (!Object.hasOwn(obj, key)) throw new TypeError(`${what}: missing field "${key}"`);
  }
}

function parseIndex(value: unknown, field: string): bigint {
  if (typeof value !== 'string' || !DECIMAL.test(value)) {
    throw new TypeError(`secret store: "${field}" expected a canonical decimal string`);
  }
  const index = BigInt(value);
  if (index > FIRST_INDEX) throw new RangeError(`secret store: "${field}" exceeds 2^48-1`);
  return index;
}

/** Smallest index in [lastIndex, 2^48-1] with exactly `bits` trailing zeros, or undefined if none. */
function expectedSlotIndex(lastIndex: bigint, bits: number): bigint | undefined {
  if (bits === INDEX_BITS) return lastIndex === 0n ? 0n : undefined;
  const step = 1n << BigInt(bits);
  // Candidates are odd multiples of 2^bits; take the first multiple >= lastIndex, then the next odd one.
  let candidate = ((lastIndex + step - 1n) / step) * step;
  if (((candidate >> BigInt(bits)) & 1n) === 0n) candidate += step;
  return candidate <= FIRST_INDEX ? candidate : undefined;
}

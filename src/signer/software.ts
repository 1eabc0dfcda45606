/**
 * Software signer: keys derived from a 32-byte seed held in memory. For tests, the simnet and devices
 * without a hardware key. RFC 6979 deterministic nonces, low-S (via @noble/secp256k1).
 */
import type { KeyLocator, Signer, SignInputRequest } from './port.js';
import { hmacSha256 } from '../crypto/hash.js';
import { isValidSecretKey, publicKeyOf, signDigest } from '../crypto/secp256k1.js';
import { derivePrivateKey, deriveRevocationPrivateKey } from '../onchain/rsmc/keys.js';
import { commitmentIndex, generatePerCommitmentSecret } from '../onchain/rsmc/shachain.js';
import { segwitV0Sighash } from '../onchain/sighash.js';
import { SIGHASH_ALL } from '../onchain/script.js';

const encoder = new TextEncoder();

export class SoftwareSigner implements Signer {
  readonly #seed: Uint8Array | undefined;
  readonly #explicit = new Map<string, Uint8Array>();

  private constructor(seed?: Uint8Array) {
    this.#seed = seed ? Uint8Array.from(seed) : undefined;
  }

  /** Keys derived as HMAC-SHA256(seed, "trickle/<family>/<index>[/<counter>]") until a valid scalar comes out. */
  static fromSeed(seed: Uint8Array): SoftwareSigner {
    if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('"seed" expected 32 bytes');
    return new SoftwareSigner(seed);
  }

  /** Explicit secrets per locator, e.g. to reproduce published test vectors. */
  static fromSecrets(secrets: Array<{ key: KeyLocator; secret: Uint8Array }>): SoftwareSigner {
    const signer = new SoftwareSigner();
    for (const { key, secret } of secrets) {
      if (!isValidSecretKey(secret)) throw new RangeError(`secret for ${key.family}/${key.index} is not a valid key`);
      signer.#explicit.set(locatorId(key), Uint8Array.from(secret));
    }
    return signer;
  }

  async getPublicKey(key: KeyLocator): Promise<Uint8Array> {
    return publicKeyOf(this.#secretFor(key));
  }

  async signInput(request: SignInputRequest): Promise<Uint8Array> {
    const base = this.#secretFor(request.key);
    let secret = base;
    if (request.tweak?.kind === 'perCommitment') {
      secret = derivePrivateKey(base, request.tweak.perCommitmentPoint);
    } else if (request.tweak?.kind === 'revocation') {
      secret = deriveRevocationPrivateKey(base, request.tweak.perCommitmentSecret);
    }
    const digest = segwitV0Sighash(
      request.tx,
      request.inputIndex,
      request.scriptCode,
      request.valueSat,
      request.sighashType ?? SIGHASH_ALL,
    );
    return signDigest(digest, secret);
  }

  async perCommitmentPoint(seed: KeyLocator, commitmentNumber: bigint): Promise<Uint8Array> {
    return publicKeyOf(this.#perCommitmentSecret(seed, commitmentNumber));
  }

  async revokeCommitment(seed: KeyLocator, commitmentNumber: bigint): Promise<{ secret: Uint8Array; nextPoint: Uint8Array }> {
    return {
      secret: this.#perCommitmentSecret(seed, commitmentNumber),
      nextPoint: publicKeyOf(this.#perCommitmentSecret(seed, commitmentNumber + 2n)),
    };
  }

  #perCommitmentSecret(seed: KeyLocator, commitmentNumber: bigint): Uint8Array {
    if (seed.family !== 'commitment') throw new RangeError('per-commitment secrets come from a key of family "commitment"');
    return generatePerCommitmentSecret(this.#secretFor(seed), commitmentIndex(commitmentNumber));
  }

  #secretFor(key: KeyLocator): Uint8Array {
    if (!Number.isSafeInteger(key.index) || key.index < 0) throw new RangeError('"key.index" expected a non-negative integer');
    const explicit = this.#explicit.get(locatorId(key));
    if (explicit) return explicit;
    if (!this.#seed) throw new RangeError(`no key for ${locatorId(key)}`);
    for (let counter = 0; ; counter++) {
      const label = counter === 0 ? `trickle/${locatorId(key)}` : `trickle/${locatorId(key)}/${counter}`;
      const candidate = hmacSha256(this.#seed, encoder.encode(label));
      if (isValidSecretKey(candidate)) return candidate;
    }
  }
}

function locatorId(key: KeyLocator): string {
  return `${key.family}/${key.index}`;
}

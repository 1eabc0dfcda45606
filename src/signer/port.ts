/**
 * The Signer port: everything that needs a private key goes through it, so a USB hardware key can
 * stand in for the software signer. It signs a BIP 143 (segwit v0) input of a whole transaction, not a
 * bare digest, so a validating signer can inspect what it is asked to sign.
 */

/** Which of the node's keys. A signer derives each family's keys from its own secret material. */
/** 'commitment': the per-channel seed of our per-commitment secrets (BOLT 3 shachain); it never leaves the signer. */
export type KeyFamily = 'funding' | 'payment' | 'delayed' | 'htlc' | 'revocation' | 'commitment' | 'wallet' | 'identity';

export interface KeyLocator {
  family: KeyFamily;
  index: number;
}

/** How the located base key is tweaked for one signature (BOLT 3 § Key Derivation). */
export type KeyTweak =
  /** privkey = basepoint_secret + SHA256(per_commitment_point || basepoint). */
  | { kind: 'perCommitment'; perCommitmentPoint: Uint8Array }
  /** revocationprivkey from our revocation basepoint secret and the per-commitment secret the peer revealed. */
  | { kind: 'revocation'; perCommitmentSecret: Uint8Array };

export interface SignInputRequest {
  key: KeyLocator;
  tweak?: KeyTweak;
  /** The serialised transaction (witnesses may be empty). */
  tx: Uint8Array;
  inputIndex: number;
  /** BIP 143 scriptCode: the witness script for P2WSH, the P2PKH script for P2WPKH. */
  scriptCode: Uint8Array;
  /** Value of the output being spent (BIP 143 commits to it). */
  valueSat: bigint;
  /** Defaults to SIGHASH_ALL. */
  sighashType?: number;
}

export interface Signer {
  /** The compressed public key of a located (untweaked) key. */
  getPublicKey(key: KeyLocator): Promise<Uint8Array>;
  /** A 64-byte compact low-S ECDSA signature over the BIP 143 sighash of one input. */
  signInput(request: SignInputRequest): Promise<Uint8Array>;
  /**
   * BOLT 3 per_commitment_point of commitment `commitmentNumber` of the channel whose shachain seed is
   * `seed` (family 'commitment').
   */
  perCommitmentPoint(seed: KeyLocator, commitmentNumber: bigint): Promise<Uint8Array>;
  /**
   * Reveal the per-commitment secret of commitment `commitmentNumber`, revoking it. The channel asks only
   * once the next commitment is durably stored with the peer's signature; a validating signer refuses
   * to reveal the secret of the commitment it considers current.
   */
  revealPerCommitmentSecret(seed: KeyLocator, commitmentNumber: bigint): Promise<Uint8Array>;
}

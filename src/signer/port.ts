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

/**
 * What a signature is for, so a validating signer (the hardware key, firmware-bridge/PROTOCOL.md §3) can
 * check the transaction against the channel's terms and its own record of what it signed. A software
 * signer ignores it. Balances are as seen by the commitment's holder.
 */
export type SignContext =
  /** One-way payer: payment `stateNumber` of cumulative `amountMsat`; `tipHeight` is the host's tip. */
  | { kind: 'oneway-payment'; stateNumber: bigint; amountMsat: bigint; tipHeight: number }
  | { kind: 'oneway-refund' }
  /** RSMC: the peer's commitment `number`, built with the peer's `perCommitmentPoint`. */
  | { kind: 'counterparty-commitment'; number: bigint; perCommitmentPoint: Uint8Array; toLocalMsat: bigint; toRemoteMsat: bigint; feeratePerKw: bigint }
  /** RSMC: our latest commitment, to broadcast it. */
  | { kind: 'holder-commitment' }
  | { kind: 'cooperative-close' }
  /** RSMC: an output of commitment `number` (the peer's for penalty and to-remote, ours for to-local). */
  | { kind: 'sweep'; sweep: 'penalty' | 'to-local' | 'to-remote'; number: bigint };

export interface SignInputRequest {
  key: KeyLocator;
  /** Optional for a software signer; a validating signer refuses a channel key's signature without it. */
  context?: SignContext;
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
   * Revoke commitment `commitmentNumber`: its per-commitment secret, with the point of
   * `commitmentNumber + 2` that goes in the same revoke_and_ack (BOLT 2). The channel asks only once the
   * next commitment is durably stored with the peer's signature; a validating signer refuses to reveal
   * the secret of the commitment it considers current.
   */
  revokeCommitment(seed: KeyLocator, commitmentNumber: bigint): Promise<{ secret: Uint8Array; nextPoint: Uint8Array }>;

  // A validating signer also needs to follow the channel. These are optional: a software signer, which
  // trusts its host, has nothing to check.

  /** The channel's terms, before its first signature. Idempotent for the same terms. */
  setupChannel?(setup: ChannelSetup): Promise<void>;
  /** Our commitment `number`, with the peer's signature, before the previous one is revoked. */
  validateHolderCommitment?(check: HolderCommitmentCheck): Promise<void>;
  /** The peer's secret for its commitment `number`, before a penalty for it is asked for. */
  validateCounterpartyRevocation?(revocation: { keyIndex: number; number: bigint; secret: Uint8Array }): Promise<void>;
  /**
   * The last one-way payment the signer signed for channel `keyIndex` (0/0 before the first; undefined if
   * it does not know the channel). A payer that crashed after the key signed but before it stored the
   * payment asks for that same payment again on restart instead of being refused a different one.
   */
  onewaySignedState?(keyIndex: number): Promise<{ stateNumber: bigint; amountMsat: bigint } | undefined>;
}

/** The peer's public keys of an RSMC channel. */
export interface RemoteBasepoints {
  fundingPubkey: Uint8Array;
  revocationBasepoint: Uint8Array;
  paymentBasepoint: Uint8Array;
  delayedPaymentBasepoint: Uint8Array;
  htlcBasepoint: Uint8Array;
}

/** One-way channel, our key the payer's (docs/protocol.md §3.4). */
export interface OnewaySetup {
  payeeFundingPubkey: Uint8Array;
  /** Refund and change go here. */
  payerScript: Uint8Array;
  /** Payments go here. */
  payeeScript: Uint8Array;
  /** The refund's nLockTime. */
  expiryHeight: number;
  /** The fee rate of every payment transaction (fixed at open). */
  feerateSatPerVb: bigint;
}

/** Revocable channel (BOLT 2/3 as docs/protocol.md §3.5). */
export interface RsmcSetup {
  opener: boolean;
  remote: RemoteBasepoints;
  /** The delay the peer imposes on our to_local (the peer's BOLT 2 to_self_delay). */
  localDelay: number;
  /** The delay we impose on the peer's to_local. */
  remoteDelay: number;
  localDustLimitSat: bigint;
  remoteDustLimitSat: bigint;
  minFeeratePerKw: bigint;
  maxFeeratePerKw: bigint;
  /** Our output of a cooperative close goes here, and nowhere else. */
  closeScript: Uint8Array;
  /** Sweeps and penalties go here, and nowhere else. */
  sweepScript: Uint8Array;
}

/** A channel's terms for a validating signer: every key of the channel is `<family>/<keyIndex>`. */
export interface ChannelSetup {
  keyIndex: number;
  fundingOutpoint: { txid: string; vout: number };
  capacitySat: bigint;
  oneway?: OnewaySetup;
  rsmc?: RsmcSetup;
}

export interface HolderCommitmentCheck {
  keyIndex: number;
  number: bigint;
  toLocalMsat: bigint;
  toRemoteMsat: bigint;
  feeratePerKw: bigint;
  /** The unsigned commitment. */
  tx: Uint8Array;
  /** The peer's 64-byte compact signature on its funding input. */
  counterpartySignature: Uint8Array;
}

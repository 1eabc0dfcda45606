/**
 * Deterministic test fixtures: parties with SoftwareSigner keys from fixed seeds, fake outpoints, a
 * one-way channel's terms, and a full RSMC scenario (A's commitment with one offered and one received
 * HTLC) with the keys and tweaks each signature needs. Shared by the interpreter tests and simnet scenarios.
 */
import { Transaction } from 'bitcoinjs-lib';
import { bytesToHex } from '../../src/bytes.js';
import { sha256 } from '../../src/crypto/hash.js';
import type { OutPoint, TxOut } from '../../src/chain/port.js';
import type { KeyFamily, KeyLocator, KeyTweak } from '../../src/signer/port.js';
import { SoftwareSigner } from '../../src/signer/software.js';
import { p2wpkhOutput, p2wshOutput } from '../../src/onchain/script.js';
import { signInput } from '../../src/onchain/tx.js';
import { fundingScript, fundingWitness, signFundingSpend, type WalletCoin } from '../../src/onchain/funding.js';
import type { OneWayChannelTerms } from '../../src/onchain/oneway.js';
import {
  buildCommitmentTransaction,
  deriveCommitmentKeys,
  type CommitmentKeys,
  type CommitmentParams,
  type CommitmentTransaction,
  type Htlc,
  type HtlcTransaction,
} from '../../src/onchain/rsmc/commitment.js';
import { perCommitmentPoint as pointOf } from '../../src/onchain/rsmc/keys.js';
import { commitmentIndex, generatePerCommitmentSecret } from '../../src/onchain/rsmc/shachain.js';
import { htlcSuccessWitness, htlcTimeoutWitness, paymentHashOf } from '../../src/onchain/rsmc/witnesses.js';

export const KEY_FAMILIES = ['funding', 'payment', 'delayed', 'htlc', 'revocation', 'wallet'] as const satisfies readonly KeyFamily[];
export type PartyKeyFamily = (typeof KEY_FAMILIES)[number];

export interface Party {
  name: string;
  signer: SoftwareSigner;
  /** Index 0 of each family: the channel's basepoint keys and the first wallet key. */
  keys: Record<PartyKeyFamily, KeyLocator>;
  /** Untweaked public keys (basepoints) of `keys`. */
  pubkeys: Record<PartyKeyFamily, Uint8Array>;
  /** P2WPKH of the wallet key: where sweeps, change and closing outputs go. */
  walletScript: Uint8Array;
}

/** A party whose seed is 32 bytes of `seedByte`: same byte, same keys, every run. */
export async function makeParty(name: string, seedByte: number): Promise<Party> {
  const signer = SoftwareSigner.fromSeed(new Uint8Array(32).fill(seedByte));
  const keys = {} as Record<PartyKeyFamily, KeyLocator>;
  const pubkeys = {} as Record<PartyKeyFamily, Uint8Array>;
  for (const family of KEY_FAMILIES) {
    keys[family] = { family, index: 0 };
    pubkeys[family] = await signer.getPublicKey(keys[family]);
  }
  return { name, signer, keys, pubkeys, walletScript: p2wpkhOutput(pubkeys.wallet) };
}

/** Alice (seed 0x11) and Bob (seed 0x22); Mallory (0x33) is the third key that must not be able to sign. */
export function makeParties(): Promise<[Party, Party, Party]> {
  return Promise.all([makeParty('alice', 0x11), makeParty('bob', 0x22), makeParty('mallory', 0x33)]);
}

/** A fake outpoint: txid = SHA256("trickle-test/<label>"), any 64-hex value will do for script checks. */
export function fakeOutpoint(label: string | number, vout = 0): OutPoint {
  return { txid: bytesToHex(sha256(new TextEncoder().encode(`trickle-test/${label}`))), vout };
}

/** A P2WPKH wallet coin of `party` under wallet key `index`, and the output it spends (for verification). */
export async function walletCoin(
  party: Party,
  outpoint: OutPoint,
  valueSat: bigint,
  index = 0,
): Promise<{ coin: WalletCoin; prevout: TxOut }> {
  const key: KeyLocator = { family: 'wallet', index };
  const pubkey = await party.signer.getPublicKey(key);
  return { coin: { outpoint, valueSat, pubkey, key }, prevout: { valueSat, script: p2wpkhOutput(pubkey) } };
}

/** The output `vout` of `tx`, as `verifyTransaction` wants its prevouts. */
export function prevoutOf(tx: Transaction, vout: number): TxOut {
  const out = tx.outs[vout];
  if (!out) throw new RangeError(`no output ${vout}`);
  return { valueSat: BigInt(out.value), script: out.script };
}

/** Both signatures on input 0 of a spend of the 2-of-2 funding output, set as its witness. */
export async function signFundingSpendBoth(
  tx: Transaction,
  a: Party,
  b: Party,
  fundingValueSat: bigint,
): Promise<{ sigA: Uint8Array; sigB: Uint8Array }> {
  const context = { fundingScript: fundingScript(a.pubkeys.funding, b.pubkeys.funding), fundingValueSat };
  const sigA = await signFundingSpend(a.signer, a.keys.funding, tx, context);
  const sigB = await signFundingSpend(b.signer, b.keys.funding, tx, context);
  tx.setWitness(0, fundingWitness(a.pubkeys.funding, sigA, b.pubkeys.funding, sigB));
  return { sigA, sigB };
}

/** One-way channel terms: `payer` funds, `payee` is paid; expiry height 700, 2 sat/vB. */
export function oneWayTerms(payer: Party, payee: Party, overrides: Partial<OneWayChannelTerms> = {}): OneWayChannelTerms {
  return {
    fundingOutpoint: fakeOutpoint('oneway-funding'),
    fundingValueSat: 100_000n,
    payerFundingPubkey: payer.pubkeys.funding,
    payeeFundingPubkey: payee.pubkeys.funding,
    payerScript: payer.walletScript,
    payeeScript: payee.walletScript,
    expiryHeight: 700,
    feerateSatPerVb: 2n,
    ...overrides,
  };
}

export interface ScenarioHtlc {
  htlc: Htlc;
  preimage: Uint8Array;
}

export interface RsmcScenarioOptions {
  fundingOutpoint?: OutPoint;
  fundingValueSat?: bigint;
  commitmentNumber?: bigint;
  toRemoteMsat?: bigint;
  /** HTLCs of A's commitment; default: one offered (5000 sat, cltv 500), one received (7000 sat, cltv 520). */
  htlcs?: ScenarioHtlc[];
  toSelfDelay?: number;
  dustLimitSat?: bigint;
  feeratePerKw?: bigint;
}

export interface RsmcScenario {
  /** A: owner of the commitment (local) and opener; B: the remote. */
  a: Party;
  b: Party;
  fundingOutpoint: OutPoint;
  fundingValueSat: bigint;
  fundingWitnessScript: Uint8Array;
  /** The funding output as a prevout of the commitment. */
  fundingPrevout: TxOut;
  commitmentNumber: bigint;
  /** A's per-commitment secret for this number (B learns it when A revokes) and its point. */
  perCommitmentSeed: Uint8Array;
  perCommitmentSecret: Uint8Array;
  perCommitmentPoint: Uint8Array;
  keys: CommitmentKeys;
  toSelfDelay: number;
  dustLimitSat: bigint;
  feeratePerKw: bigint;
  htlcs: ScenarioHtlc[];
  params: CommitmentParams;
  /** Built, unsigned. */
  commitment: CommitmentTransaction;
  /** Who signs what on A's commitment (locator + tweak). */
  signing: {
    /** local_htlcsig: A's htlc basepoint key tweaked by A's per-commitment point. */
    localHtlc: { signer: SoftwareSigner; key: KeyLocator; tweak: KeyTweak };
    /** remote_htlcsig: B's htlc basepoint key tweaked by the same (A's) point. */
    remoteHtlc: { signer: SoftwareSigner; key: KeyLocator; tweak: KeyTweak };
    /** local_delayedsig: A's delayed basepoint key tweaked by A's point. */
    delayed: { signer: SoftwareSigner; key: KeyLocator; tweak: KeyTweak };
    /** revocationsig: B's revocation basepoint key with A's revealed per-commitment secret. */
    revocation: { signer: SoftwareSigner; key: KeyLocator; tweak: KeyTweak };
  };
}

export const DEFAULT_PER_COMMITMENT_SEED = new Uint8Array(32).fill(0x5e);

/** Default HTLCs: preimages are 32 bytes of 0x01 (offered) and 0x02 (received); both above the trim threshold. */
export function defaultHtlcs(): ScenarioHtlc[] {
  const offered = new Uint8Array(32).fill(0x01);
  const received = new Uint8Array(32).fill(0x02);
  return [
    {
      htlc: { id: 0n, direction: 'offered', amountMsat: 5_000_000n, paymentHash: paymentHashOf(offered), cltvExpiry: 500 },
      preimage: offered,
    },
    {
      htlc: { id: 0n, direction: 'received', amountMsat: 7_000_000n, paymentHash: paymentHashOf(received), cltvExpiry: 520 },
      preimage: received,
    },
  ];
}

/**
 * A's commitment in a 1_000_000 sat channel A opened: to_remote 400_000 sat by default, to_local the rest
 * minus HTLCs (before fees), to_self_delay 144, dust 546, feerate 2500 per kw.
 */
export async function makeRsmcScenario(options: RsmcScenarioOptions = {}): Promise<RsmcScenario> {
  const [a, b] = await makeParties();
  const fundingOutpoint = options.fundingOutpoint ?? fakeOutpoint('rsmc-funding');
  const fundingValueSat = options.fundingValueSat ?? 1_000_000n;
  const commitmentNumber = options.commitmentNumber ?? 42n;
  const htlcs = options.htlcs ?? defaultHtlcs();
  const toSelfDelay = options.toSelfDelay ?? 144;
  const dustLimitSat = options.dustLimitSat ?? 546n;
  const feeratePerKw = options.feeratePerKw ?? 2500n;
  const toRemoteMsat = options.toRemoteMsat ?? 400_000_000n;
  const htlcMsat = htlcs.reduce((s, h) => s + h.htlc.amountMsat, 0n);
  const toLocalMsat = fundingValueSat * 1000n - toRemoteMsat - htlcMsat;

  const perCommitmentSeed = DEFAULT_PER_COMMITMENT_SEED;
  const perCommitmentSecret = generatePerCommitmentSecret(perCommitmentSeed, commitmentIndex(commitmentNumber));
  const perCommitmentPoint = pointOf(perCommitmentSecret);
  const keys = deriveCommitmentKeys({
    perCommitmentPoint,
    localDelayedPaymentBasepoint: a.pubkeys.delayed,
    localHtlcBasepoint: a.pubkeys.htlc,
    remoteHtlcBasepoint: b.pubkeys.htlc,
    remoteRevocationBasepoint: b.pubkeys.revocation,
    remotePaymentBasepoint: b.pubkeys.payment,
  });
  const params: CommitmentParams = {
    fundingOutpoint,
    fundingValueSat,
    localFundingPubkey: a.pubkeys.funding,
    remoteFundingPubkey: b.pubkeys.funding,
    keys,
    commitmentNumber,
    openerPaymentBasepoint: a.pubkeys.payment,
    accepterPaymentBasepoint: b.pubkeys.payment,
    localIsOpener: true,
    toSelfDelay,
    dustLimitSat,
    feeratePerKw,
    toLocalMsat,
    toRemoteMsat,
    htlcs: htlcs.map((h) => h.htlc),
  };
  const commitment = buildCommitmentTransaction(params);
  const fundingWitnessScript = fundingScript(a.pubkeys.funding, b.pubkeys.funding);
  const pc: KeyTweak = { kind: 'perCommitment', perCommitmentPoint };
  return {
    a,
    b,
    fundingOutpoint,
    fundingValueSat,
    fundingWitnessScript,
    fundingPrevout: { valueSat: fundingValueSat, script: p2wshOutput(fundingWitnessScript) },
    commitmentNumber,
    perCommitmentSeed,
    perCommitmentSecret,
    perCommitmentPoint,
    keys,
    toSelfDelay,
    dustLimitSat,
    feeratePerKw,
    htlcs,
    params,
    commitment,
    signing: {
      localHtlc: { signer: a.signer, key: a.keys.htlc, tweak: pc },
      remoteHtlc: { signer: b.signer, key: b.keys.htlc, tweak: pc },
      delayed: { signer: a.signer, key: a.keys.delayed, tweak: pc },
      revocation: { signer: b.signer, key: b.keys.revocation, tweak: { kind: 'revocation', perCommitmentSecret } },
    },
  };
}

/** Sign the scenario's commitment with both funding keys (sets the witness; returns the tx). */
export async function signCommitment(s: RsmcScenario): Promise<Transaction> {
  await signFundingSpendBoth(s.commitment.tx, s.a, s.b, s.fundingValueSat);
  return s.commitment.tx;
}

/** The preimage of an HTLC of the scenario. */
export function preimageOf(s: RsmcScenario, htlc: Htlc): Uint8Array {
  const found = s.htlcs.find((h) => h.htlc.direction === htlc.direction && h.htlc.id === htlc.id);
  if (!found) throw new Error(`no preimage for ${htlc.direction} HTLC ${htlc.id}`);
  return found.preimage;
}

/** One of the scenario's signing roles: whose signer, which base key, which tweak. */
export type SigningRole = RsmcScenario['signing'][keyof RsmcScenario['signing']];

/** Sign input `inputIndex` of `tx` (spending `valueSat` locked by `scriptCode`) in `role`: DER + SIGHASH_ALL. */
export function signAs(
  role: SigningRole,
  tx: Transaction,
  inputIndex: number,
  scriptCode: Uint8Array,
  valueSat: bigint,
): Promise<Uint8Array> {
  return signInput(role.signer, tx, { key: role.key, tweak: role.tweak, inputIndex, scriptCode, valueSat });
}

/** The remote's and the local's signatures (DER + SIGHASH_ALL) on an HTLC-timeout/success tx of A's commitment. */
export async function signHtlcTransaction(
  s: RsmcScenario,
  htlcTx: HtlcTransaction,
): Promise<{ remoteSig: Uint8Array; localSig: Uint8Array }> {
  const sign = (role: SigningRole) => signAs(role, htlcTx.tx, 0, htlcTx.htlcWitnessScript, htlcTx.htlcValueSat);
  return { remoteSig: await sign(s.signing.remoteHtlc), localSig: await sign(s.signing.localHtlc) };
}

/** Sign an HTLC tx with both keys and set the timeout or success witness (with the scenario's preimage). */
export async function completeHtlcTransaction(s: RsmcScenario, htlcTx: HtlcTransaction): Promise<Transaction> {
  const { remoteSig, localSig } = await signHtlcTransaction(s, htlcTx);
  htlcTx.tx.setWitness(
    0,
    htlcTx.kind === 'htlc-success'
      ? htlcSuccessWitness(remoteSig, localSig, preimageOf(s, htlcTx.htlc), htlcTx.htlcWitnessScript)
      : htlcTimeoutWitness(remoteSig, localSig, htlcTx.htlcWitnessScript),
  );
  return htlcTx.tx;
}

/**
 * Channels whose paying side's keys are on a Trickle key (behind a HidSigner), for the key's tests: the
 * terms, and one function per key command in the order a channel issues them, so a test can make the key
 * refuse a request or restart it between any two.
 */
import { buildPaymentTransaction, type OneWayChannelTerms } from '../../src/onchain/oneway.js';
import { fundingScript } from '../../src/onchain/funding.js';
import { p2wpkhOutput } from '../../src/onchain/script.js';
import { localCommitment, remoteCommitment, type CommitmentTerms } from '../../src/channel/rsmc/commitments.js';
import { SoftwareSigner } from '../../src/signer/software.js';
import type { HidSigner } from '../../src/signer/hid/signer.js';
import type { KeyLocator, SignContext, Signer } from '../../src/signer/port.js';
import type { Spec } from '../../src/channel/rsmc/types.js';
import { hostSigner } from './key-fixtures.js';

export const payee = SoftwareSigner.fromSeed(new Uint8Array(32).fill(9));
export const FUNDING_TXID = 'ab'.repeat(32);

export interface OnewayChannelOnKey {
  hid: HidSigner;
  terms: OneWayChannelTerms;
  /** SETUP_CHANNEL for these terms (key index 0). */
  setup(): Promise<void>;
  pay(stateNumber: bigint, amountMsat: bigint, options?: { tipHeight?: number; tx?: Uint8Array }): Promise<Uint8Array>;
}

/** A one-way channel (payer key index 0) whose payer keys are on the key behind `hid`. */
export async function onewayChannelOn(hid: HidSigner): Promise<OnewayChannelOnKey> {
  const terms: OneWayChannelTerms = {
    fundingOutpoint: { txid: FUNDING_TXID, vout: 1 },
    fundingValueSat: 1_000_000n,
    payerFundingPubkey: await hid.getPublicKey({ family: 'funding', index: 0 }),
    payeeFundingPubkey: await payee.getPublicKey({ family: 'funding', index: 0 }),
    payerScript: p2wpkhOutput(await hostSigner.getPublicKey({ family: 'wallet', index: 0 })),
    payeeScript: p2wpkhOutput(await payee.getPublicKey({ family: 'wallet', index: 0 })),
    expiryHeight: 1000,
    feerateSatPerVb: 2n,
  };
  const setup = () => hid.setupChannel({
    keyIndex: 0,
    fundingOutpoint: terms.fundingOutpoint,
    capacitySat: terms.fundingValueSat,
    oneway: { payeeFundingPubkey: terms.payeeFundingPubkey, payerScript: terms.payerScript, payeeScript: terms.payeeScript, expiryHeight: 1000, feerateSatPerVb: 2n },
  });
  const script = fundingScript(terms.payerFundingPubkey, terms.payeeFundingPubkey);
  const pay = (stateNumber: bigint, amountMsat: bigint, options: { tipHeight?: number; tx?: Uint8Array } = {}) =>
    hid.signInput({
      key: { family: 'funding', index: 0 },
      context: { kind: 'oneway-payment', stateNumber, amountMsat, tipHeight: options.tipHeight ?? 900 },
      tx: options.tx ?? buildPaymentTransaction(terms, amountMsat).tx.toBuffer(),
      inputIndex: 0,
      scriptCode: script,
      valueSat: terms.fundingValueSat,
    });
  return { hid, terms, setup, pay };
}


export const peer = SoftwareSigner.fromSeed(new Uint8Array(32).fill(11));
export const PEER_INDEX = 5;
export const KEY_INDEX = 1_000_000;
export const CAPACITY_SAT = 1_000_000n;
export const FEERATE = 2_500n;
export const peerLoc = (family: KeyLocator['family']): KeyLocator => ({ family, index: PEER_INDEX });
export const ourLoc = (family: KeyLocator['family']): KeyLocator => ({ family, index: KEY_INDEX });

export interface RsmcChannelOnKey {
  hid: HidSigner;
  /** SETUP_CHANNEL for these terms (key index 1,000,000, the opener's). */
  setup(): Promise<void>;
  terms: CommitmentTerms;
  closeScript: Uint8Array;
  fundingScript: Uint8Array;
  signTheirs(n: bigint, spec: Spec, options?: { tx?: Uint8Array; feeratePerKw?: bigint }): Promise<Uint8Array>;
  validateOurs(n: bigint, spec: Spec, options?: { badSignature?: boolean }): Promise<void>;
  peerRevokes(n: bigint, secret?: Uint8Array): Promise<void>;
  revoke(n: bigint): Promise<{ secret: Uint8Array; nextPoint: Uint8Array }>;
  /** One payment from us: their n+1, their revocation of n, our n+1, our revocation of n. */
  update(n: bigint, spec: Spec): Promise<void>;
}

export const spec = (localSat: bigint): Spec => ({ localMsat: localSat * 1000n, remoteMsat: (CAPACITY_SAT - localSat) * 1000n });

/** An RSMC channel, our side the opener with its keys on the key behind `hid`; the peer a software signer. */
export async function rsmcChannelOn(hid: HidSigner): Promise<RsmcChannelOnKey> {
  const basepoints = async (s: Signer, loc: (f: KeyLocator['family']) => KeyLocator) => ({
    fundingPubkey: await s.getPublicKey(loc('funding')),
    revocationBasepoint: await s.getPublicKey(loc('revocation')),
    paymentBasepoint: await s.getPublicKey(loc('payment')),
    delayedPaymentBasepoint: await s.getPublicKey(loc('delayed')),
    htlcBasepoint: await s.getPublicKey(loc('htlc')),
  });
  const ours = await basepoints(hid, ourLoc);
  const theirs = await basepoints(peer, peerLoc);
  const unused = { channelReserveSat: 0n, htlcMinimumMsat: 0n, maxHtlcValueInFlightMsat: 0n, maxAcceptedHtlcs: 0 };
  const fundingOutpoint = { txid: FUNDING_TXID, vout: 0 };
  const terms: CommitmentTerms = {
    role: 'opener',
    fundingOutpoint,
    fundingSat: CAPACITY_SAT,
    feeratePerKw: FEERATE,
    local: { ...ours, dustLimitSat: 546n, toSelfDelay: 144, ...unused },
    remote: { ...theirs, dustLimitSat: 546n, toSelfDelay: 144, ...unused },
  };
  const closeScript = p2wpkhOutput(await hostSigner.getPublicKey({ family: 'wallet', index: 0 }));
  const setup = () => hid.setupChannel({
    keyIndex: KEY_INDEX,
    fundingOutpoint,
    capacitySat: CAPACITY_SAT,
    rsmc: { opener: true, remote: theirs, localDelay: 144, remoteDelay: 144, localDustLimitSat: 546n, remoteDustLimitSat: 546n, minFeeratePerKw: 253n, maxFeeratePerKw: 10_000n, closeScript, sweepScript: closeScript },
  });
  const script = fundingScript(ours.fundingPubkey, theirs.fundingPubkey);
  const f: RsmcChannelOnKey = {
    hid,
    setup,
    terms,
    closeScript,
    fundingScript: script,
    async signTheirs(n, s, options = {}) {
      const point = await peer.perCommitmentPoint(peerLoc('commitment'), n);
      const feeratePerKw = options.feeratePerKw ?? FEERATE;
      const tx = options.tx ?? remoteCommitment({ ...terms, feeratePerKw }, n, s, point).tx.toBuffer();
      const context: SignContext = { kind: 'counterparty-commitment', number: n, perCommitmentPoint: point, toLocalMsat: s.remoteMsat, toRemoteMsat: s.localMsat, feeratePerKw };
      return hid.signInput({ key: ourLoc('funding'), context, tx, inputIndex: 0, scriptCode: script, valueSat: CAPACITY_SAT });
    },
    async validateOurs(n, s, options = {}) {
      const point = await hid.perCommitmentPoint(ourLoc('commitment'), n);
      const tx = localCommitment(terms, n, s, point).tx.toBuffer();
      const signTx = options.badSignature ? localCommitment(terms, n, spec(1n), point).tx.toBuffer() : tx;
      const counterpartySignature = await peer.signInput({ key: peerLoc('funding'), tx: signTx, inputIndex: 0, scriptCode: script, valueSat: CAPACITY_SAT });
      await hid.validateHolderCommitment({ keyIndex: KEY_INDEX, number: n, toLocalMsat: s.localMsat, toRemoteMsat: s.remoteMsat, feeratePerKw: FEERATE, tx, counterpartySignature });
    },
    async peerRevokes(n, secret) {
      await hid.validateCounterpartyRevocation({ keyIndex: KEY_INDEX, number: n, secret: secret ?? (await peer.revokeCommitment(peerLoc('commitment'), n)).secret });
    },
    revoke: (n) => hid.revokeCommitment(ourLoc('commitment'), n),
    async update(n, s) {
      await f.signTheirs(n + 1n, s);
      await f.peerRevokes(n);
      await f.validateOurs(n + 1n, s);
      await f.revoke(n);
    },
  };
  return f;
}


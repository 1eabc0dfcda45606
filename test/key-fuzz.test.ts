/**
 * The key's frame and CBOR parsers under random and mutated input (firmware-bridge/PROTOCOL.md §2–§4):
 * ≥ 10 000 reports reach a real KeyLink in front of a KeyCore in a realistic state (a one-way channel with
 * two payments, an RSMC channel after a full update cycle), and
 *  - nothing escapes `link.receive`, `MessageAssembler.feed` or the strict body decoder (which may throw
 *    WireError only), and no promise rejection goes unhandled;
 *  - every report the key sends is a 64-byte report of a well-formed message: ERROR with a known code
 *    (never OTHER: the key's handler never fails), KEEPALIVE 1 or 2, an INIT answer, a PING echo, or a
 *    vendor answer whose first byte is a KeyStatus and whose body decodes strictly;
 *  - a body that does not decode is answered BAD_REQUEST with the decoder's code, never anything else;
 *  - no answer is INTERNAL (bad input is a refusal or a bad request; the fuzzing found commitment numbers
 *    above 48 bits reaching the point derivation, now refused as out_of_range first);
 *  - the stored state (its bytes and the number of commits) does not change;
 *  - afterwards the key still answers GET_INFO and, with the policy restored, signs the next payment.
 *
 * Four parts: the seed requests sent unmodified, each answered exactly as expected; random reports
 * (any bytes, wrong sizes, on our channel, another allocated one, the broadcast channel, channel 0 or a
 * random one); framing mutations of every seed and of the link's own messages (bits, bytes, BCNT,
 * sequence numbers, reports dropped, duplicated, reordered, cut or resized, channels swapped, INIT,
 * CANCEL, PING and other channels' packets inserted, payloads cut or extended); CBOR mutations of every
 * vendor seed, framed correctly so that they reach the decoder (wrong types, extra, missing, duplicate
 * and unsorted keys, non-canonical heads, huge declared lengths, deep nesting, too many items, tags,
 * floats, simple values, bad UTF-8, indefinite lengths, then byte flips, inserts, cuts, random bodies).
 *
 * Keeping "the state does not change" exact. Mutated input is overwhelmingly invalid, but a mutation can
 * in principle land on a request the key must honour, and honouring it stores state (a retry stores the
 * same state again: one more commit). So:
 *  - the confirmation port denies everything while fuzzing: SET_POLICY and a new SETUP_CHANNEL can never
 *    commit (a setup with the stored terms answers OK without a commit, [K-3]);
 *  - before fuzzing the policy's expiry margin is raised so that the key's remembered tip is within it:
 *    every new one-way payment is refused ([P-15]) whatever the host says;
 *  - the RSMC channel is left after a complete update (both sides at commitment 1, 0 revoked both ways),
 *    so no new revocation is possible either way ([P-27], [P-29]);
 *  - every seed is refused or read-only (checked unmodified in the first part, and by the judge below);
 *  - what is left that may legally store state is narrow, and a judge (`mayStoreState`) recognises it
 *    from the stored state before the run (decodeKeyState) and from what the test knows outside the key
 *    (the peer's secrets and funding key), not through the key's own logic: a byte-identical retry of the
 *    last one-way payment ([P-12]); a commitment retried with the same txid ([P-23]) or the next one with
 *    its content in range and, for ours, the peer's valid signature; a revocation retried with the true
 *    secret. Every request the core receives is recorded by a wrapper around its handler. If the stored
 *    state changed in a run and none of that run's requests is one of those, the test fails with the
 *    requests. The runs with such a request and the runs that stored state are printed (expected: 0).
 *
 * Time: the link gets fake timers; after each run the handler is let settle, the message timeout is
 * fired (so a partial message never leaks into the next run) and the channel is resynchronised with INIT
 * (re-allocated if it was evicted). Nothing asserts a duration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Decoder } from 'cbor-x/index-no-eval';
import { Transaction } from 'bitcoinjs-lib';
import { MemoryKey, hidSignerFor, hostSigner, type MemoryKeyStorage } from './helpers/key-fixtures.js';
import { KeyLink } from '../firmware-bridge/core/link.js';
import { DEFAULT_KEY_POLICY, type ConfirmPort, type KeyCore } from '../firmware-bridge/core/key.js';
import { decodeKeyState, type KeyState } from '../firmware-bridge/core/state.js';
import {
  BROADCAST_CID,
  HidCommand,
  HidErrorCode,
  INIT_RESPONSE_SIZE,
  MessageAssembler,
  REPORT_SIZE,
  encodeMessage,
  type Message,
} from '../src/signer/hid/framing.js';
import { COMMAND_TYPES, KeyCommand, KeyStatus, decodeBody, encodeBody, failureType, type KeyPolicy } from '../src/signer/hid/commands.js';
import { WireError } from '../src/wire/wire-error.js';
import type { FieldType } from '../src/wire/schema.js';
import { SoftwareSigner } from '../src/signer/software.js';
import { buildPaymentTransaction, buildRefundTransaction, type OneWayChannelTerms } from '../src/onchain/oneway.js';
import { fundingScript } from '../src/onchain/funding.js';
import { p2wpkhOutput, p2wpkhScriptCode } from '../src/onchain/script.js';
import { segwitV0Sighash } from '../src/onchain/sighash.js';
import { verifyDigest } from '../src/crypto/secp256k1.js';
import { localCommitment, remoteCommitment, type CommitmentTerms } from '../src/channel/rsmc/commitments.js';
import { buildClosingTransaction } from '../src/onchain/rsmc/closing.js';
import { buildSweepTransaction } from '../src/onchain/rsmc/sweep.js';
import { DUMMY_SIGNATURE, txidToHash } from '../src/onchain/tx.js';
import { bytesToHex, concatBytes, equalBytes } from '../src/bytes.js';
import type { KeyLocator, OnewaySetup, RsmcSetup, Signer } from '../src/signer/port.js';
import type { Spec } from '../src/channel/rsmc/types.js';

// ---------------------------------------------------------------------------------------------------
// The key in a realistic state

const payee = SoftwareSigner.fromSeed(new Uint8Array(32).fill(9));
const peer = SoftwareSigner.fromSeed(new Uint8Array(32).fill(11));
const FUNDING_TXID = 'ab'.repeat(32);
const ONEWAY = 0;
const RSMC = 1_000_000;
const PEER_INDEX = 5;
const CAPACITY_SAT = 1_000_000n;
const FEERATE = 2_500n;
const EXPIRY = 1000;
/** Raised before fuzzing: with the key's tip at 993, 993 + 10 ≥ 1000 refuses every new payment ([P-15]). */
const FUZZ_SAFETY_BLOCKS = 10;
const peerLoc = (family: KeyLocator['family']): KeyLocator => ({ family, index: PEER_INDEX });
const ourLoc = (family: KeyLocator['family']): KeyLocator => ({ family, index: RSMC });
const spec = (localSat: bigint): Spec => ({ localMsat: localSat * 1000n, remoteMsat: (CAPACITY_SAT - localSat) * 1000n });

type Expect = { status: number; reason?: string };

/** A request to mutate: command, body and what the key answers to it unmutated in the fuzzing state. */
interface Seed {
  name: string;
  command: number;
  payload: Uint8Array;
  /** Vendor commands only. */
  expect?: Expect;
}

interface Prepared {
  key: MemoryKey;
  confirm: { approve: boolean };
  seeds: Seed[];
  onewayTerms: OneWayChannelTerms;
  outside: Outside;
}

function body<T>(type: FieldType<T>, value: T): Uint8Array {
  return encodeBody(type, value);
}

function seed<C extends keyof typeof COMMAND_TYPES>(
  name: string,
  command: C,
  value: (typeof COMMAND_TYPES)[C]['request'] extends FieldType<infer T> ? T : never,
  expect: Expect,
): Seed {
  return { name, command, payload: body(COMMAND_TYPES[command].request as FieldType<unknown>, value), expect };
}

const refused = (reason: string): Expect => ({ status: KeyStatus.REFUSED, reason });
const OK: Expect = { status: KeyStatus.OK };

async function basepointsOf(s: Signer, loc: (f: KeyLocator['family']) => KeyLocator) {
  return {
    fundingPubkey: await s.getPublicKey(loc('funding')),
    revocationBasepoint: await s.getPublicKey(loc('revocation')),
    paymentBasepoint: await s.getPublicKey(loc('payment')),
    delayedPaymentBasepoint: await s.getPublicKey(loc('delayed')),
    htlcBasepoint: await s.getPublicKey(loc('htlc')),
  };
}

async function prepare(): Promise<Prepared> {
  const confirm = { approve: true };
  const port: ConfirmPort = { confirm: async () => confirm.approve };
  const key = await MemoryKey.create({ confirm: port });
  const hid = await hidSignerFor(key);

  // One-way channel 0: two payments, the second at tip 993.
  const onewayTerms: OneWayChannelTerms = {
    fundingOutpoint: { txid: FUNDING_TXID, vout: 1 },
    fundingValueSat: CAPACITY_SAT,
    payerFundingPubkey: await hid.getPublicKey({ family: 'funding', index: ONEWAY }),
    payeeFundingPubkey: await payee.getPublicKey({ family: 'funding', index: 0 }),
    payerScript: p2wpkhOutput(await hostSigner.getPublicKey({ family: 'wallet', index: 0 })),
    payeeScript: p2wpkhOutput(await payee.getPublicKey({ family: 'wallet', index: 0 })),
    expiryHeight: EXPIRY,
    feerateSatPerVb: 2n,
  };
  const oneway: OnewaySetup = {
    payeeFundingPubkey: onewayTerms.payeeFundingPubkey,
    payerScript: onewayTerms.payerScript,
    payeeScript: onewayTerms.payeeScript,
    expiryHeight: EXPIRY,
    feerateSatPerVb: 2n,
  };
  await hid.setupChannel({ keyIndex: ONEWAY, fundingOutpoint: onewayTerms.fundingOutpoint, capacitySat: CAPACITY_SAT, oneway });
  const onewayScript = fundingScript(onewayTerms.payerFundingPubkey, onewayTerms.payeeFundingPubkey);
  const paymentTx = (amountMsat: bigint) => Uint8Array.from(buildPaymentTransaction(onewayTerms, amountMsat).tx.toBuffer());
  const pay = (stateNumber: bigint, amountMsat: bigint, tipHeight: number) =>
    hid.signInput({
      key: { family: 'funding', index: ONEWAY },
      context: { kind: 'oneway-payment', stateNumber, amountMsat, tipHeight },
      tx: paymentTx(amountMsat),
      inputIndex: 0,
      scriptCode: onewayScript,
      valueSat: CAPACITY_SAT,
    });
  await pay(1n, 10_000_000n, 900);
  await pay(2n, 20_000_000n, 993);

  // RSMC channel: commitments 0 both ways, then one full update to 1 (0 revoked both ways).
  const ours = await basepointsOf(hid, ourLoc);
  const theirs = await basepointsOf(peer, peerLoc);
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
  const rsmc: RsmcSetup = { opener: true, remote: theirs, localDelay: 144, remoteDelay: 144, localDustLimitSat: 546n, remoteDustLimitSat: 546n, minFeeratePerKw: 253n, maxFeeratePerKw: 10_000n, closeScript, sweepScript: closeScript };
  await hid.setupChannel({ keyIndex: RSMC, fundingOutpoint, capacitySat: CAPACITY_SAT, rsmc });
  const rsmcScript = fundingScript(ours.fundingPubkey, theirs.fundingPubkey);
  const peerPoint = (n: bigint) => peer.perCommitmentPoint(peerLoc('commitment'), n);
  const ourPoint = (n: bigint) => hid.perCommitmentPoint(ourLoc('commitment'), n);
  const theirTx = async (n: bigint, s: Spec, feeratePerKw = FEERATE) => Uint8Array.from(remoteCommitment({ ...terms, feeratePerKw }, n, s, await peerPoint(n)).tx.toBuffer());
  const ourTx = async (n: bigint, s: Spec) => Uint8Array.from(localCommitment(terms, n, s, await ourPoint(n)).tx.toBuffer());
  const peerSig = (tx: Uint8Array) => peer.signInput({ key: peerLoc('funding'), tx, inputIndex: 0, scriptCode: rsmcScript, valueSat: CAPACITY_SAT });
  const signTheirs = async (n: bigint, s: Spec) =>
    hid.signInput({
      key: ourLoc('funding'),
      context: { kind: 'counterparty-commitment', number: n, perCommitmentPoint: await peerPoint(n), toLocalMsat: s.remoteMsat, toRemoteMsat: s.localMsat, feeratePerKw: FEERATE },
      tx: await theirTx(n, s),
      inputIndex: 0,
      scriptCode: rsmcScript,
      valueSat: CAPACITY_SAT,
    });
  const validateOurs = async (n: bigint, s: Spec) => {
    const tx = await ourTx(n, s);
    await hid.validateHolderCommitment({ keyIndex: RSMC, number: n, toLocalMsat: s.localMsat, toRemoteMsat: s.remoteMsat, feeratePerKw: FEERATE, tx, counterpartySignature: await peerSig(tx) });
  };
  await signTheirs(0n, spec(600_000n));
  await validateOurs(0n, spec(600_000n));
  await signTheirs(1n, spec(590_000n));
  await hid.validateCounterpartyRevocation({ keyIndex: RSMC, number: 0n, secret: (await peer.revokeCommitment(peerLoc('commitment'), 0n)).secret });
  await validateOurs(1n, spec(590_000n));
  await hid.revokeCommitment(ourLoc('commitment'), 0n);

  // Fuzzing state: every new one-way payment is refused ([P-15]).
  const fuzzPolicy: KeyPolicy = { ...DEFAULT_KEY_POLICY, expirySafetyBlocks: FUZZ_SAFETY_BLOCKS };
  await hid.setPolicy(fuzzPolicy);

  // ---- seeds: every command, read-only or refused in the fuzzing state ----
  const T = txidToHash(FUNDING_TXID);
  const otherScript = p2wpkhOutput(await payee.getPublicKey({ family: 'wallet', index: 66 }));
  const seeds: Seed[] = [];
  const add = (s: Seed) => seeds.push(s);
  const onewaySetup = { keyIndex: ONEWAY, fundingTxid: T, fundingVout: 1, capacitySat: CAPACITY_SAT, oneway };
  const rsmcSetup = { keyIndex: RSMC, fundingTxid: T, fundingVout: 0, capacitySat: CAPACITY_SAT, rsmc };

  add(seed('info', KeyCommand.GET_INFO, {}, OK));
  add(seed('public key', KeyCommand.GET_PUBLIC_KEY, { family: 'funding', index: ONEWAY }, OK));
  add(seed('commitment point', KeyCommand.GET_PUBLIC_KEY, { family: 'commitment', index: RSMC, commitmentNumber: 7n }, OK));
  add(seed('commitment without number', KeyCommand.GET_PUBLIC_KEY, { family: 'commitment', index: RSMC }, { status: KeyStatus.BAD_REQUEST, reason: 'out_of_range' }));
  add(seed('number without commitment', KeyCommand.GET_PUBLIC_KEY, { family: 'payment', index: 1, commitmentNumber: 1n }, { status: KeyStatus.BAD_REQUEST, reason: 'out_of_range' }));

  add(seed('setup again (one-way)', KeyCommand.SETUP_CHANNEL, onewaySetup, OK));
  add(seed('setup again (rsmc)', KeyCommand.SETUP_CHANNEL, rsmcSetup, OK));
  add(seed('setup conflict', KeyCommand.SETUP_CHANNEL, { ...onewaySetup, capacitySat: 2_000_000n }, refused('policy-setup-conflict')));
  add(seed('setup new (denied)', KeyCommand.SETUP_CHANNEL, { ...onewaySetup, keyIndex: 7 }, { status: KeyStatus.DENIED, reason: 'denied' }));
  add(seed('setup both kinds', KeyCommand.SETUP_CHANNEL, { ...onewaySetup, keyIndex: 8, rsmc }, refused('policy-setup-invalid')));
  add(seed('setup empty fee range', KeyCommand.SETUP_CHANNEL, { ...rsmcSetup, keyIndex: 9, rsmc: { ...rsmc, minFeeratePerKw: 20_000n } }, refused('policy-setup-invalid')));

  const payment = (stateNumber: bigint, amountMsat: bigint, tx: Uint8Array, keyIndex = ONEWAY, tipHeight = 900) => ({ keyIndex, stateNumber, amountMsat, tipHeight, tx });
  add(seed('payment next (expiry)', KeyCommand.SIGN_ONEWAY_PAYMENT, payment(3n, 30_000_000n, paymentTx(30_000_000n)), refused('policy-oneway-expiry-too-close')));
  add(seed('payment old state', KeyCommand.SIGN_ONEWAY_PAYMENT, payment(1n, 30_000_000n, paymentTx(30_000_000n)), refused('policy-oneway-state-not-increasing')));
  add(seed('payment lower amount', KeyCommand.SIGN_ONEWAY_PAYMENT, payment(3n, 15_000_000n, paymentTx(15_000_000n)), refused('policy-oneway-amount-not-increasing')));
  add(seed('payment above capacity', KeyCommand.SIGN_ONEWAY_PAYMENT, payment(3n, 10n ** 12n, paymentTx(30_000_000n)), refused('policy-oneway-amount-above-capacity')));
  add(seed('payment to another script', KeyCommand.SIGN_ONEWAY_PAYMENT, payment(3n, 30_000_000n, Uint8Array.from(buildPaymentTransaction({ ...onewayTerms, payeeScript: otherScript }, 30_000_000n).tx.toBuffer())), refused('policy-oneway-output-script')));
  add(seed('payment unknown channel', KeyCommand.SIGN_ONEWAY_PAYMENT, payment(3n, 30_000_000n, paymentTx(30_000_000n), 99), refused('policy-channel-unknown')));
  add(seed('payment on rsmc', KeyCommand.SIGN_ONEWAY_PAYMENT, payment(3n, 30_000_000n, paymentTx(30_000_000n), RSMC), refused('policy-channel-type')));
  add(seed('payment tx garbage', KeyCommand.SIGN_ONEWAY_PAYMENT, payment(3n, 30_000_000n, new Uint8Array(40).fill(0xee)), refused('policy-tx-malformed')));
  // 4000 bytes: the largest transaction the key looks at, and a message of 70 reports.
  add(seed('payment tx 4000 bytes', KeyCommand.SIGN_ONEWAY_PAYMENT, payment(3n, 30_000_000n, new Uint8Array(4000).fill(0x5a)), refused('policy-tx-malformed')));

  const theirs1 = await peerPoint(1n);
  const theirs2 = await peerPoint(2n);
  const counterparty = async (n: bigint, s: Spec, o: { feeratePerKw?: bigint; tx?: Uint8Array; point?: Uint8Array; keyIndex?: number } = {}) => ({
    keyIndex: o.keyIndex ?? RSMC,
    number: n,
    toLocalMsat: s.remoteMsat,
    toRemoteMsat: s.localMsat,
    feeratePerKw: o.feeratePerKw ?? FEERATE,
    tx: o.tx ?? (await theirTx(n, s)),
    perCommitmentPoint: o.point ?? (await peerPoint(n)),
  });
  add(seed('counterparty conflict', KeyCommand.SIGN_COUNTERPARTY_COMMITMENT, await counterparty(1n, spec(580_000n), { point: theirs1 }), refused('policy-rsmc-commitment-conflict')));
  add(seed('counterparty revoked', KeyCommand.SIGN_COUNTERPARTY_COMMITMENT, await counterparty(0n, spec(590_000n)), refused('policy-rsmc-commitment-revoked')));
  add(seed('counterparty skips', KeyCommand.SIGN_COUNTERPARTY_COMMITMENT, await counterparty(3n, spec(580_000n)), refused('policy-rsmc-commitment-number')));
  add(seed('counterparty fee', KeyCommand.SIGN_COUNTERPARTY_COMMITMENT, await counterparty(2n, spec(580_000n), { feeratePerKw: 20_000n, tx: await theirTx(2n, spec(580_000n)), point: theirs2 }), refused('policy-rsmc-feerate-out-of-range')));
  add(seed('counterparty balances', KeyCommand.SIGN_COUNTERPARTY_COMMITMENT, { ...(await counterparty(2n, spec(580_000n))), toLocalMsat: 1n }, refused('policy-rsmc-balances-not-capacity')));
  add(seed('counterparty on one-way', KeyCommand.SIGN_COUNTERPARTY_COMMITMENT, await counterparty(2n, spec(580_000n), { keyIndex: ONEWAY }), refused('policy-channel-type')));

  const holder = async (n: bigint, s: Spec, signature?: Uint8Array) => {
    const tx = await ourTx(n, s);
    return { keyIndex: RSMC, number: n, toLocalMsat: s.localMsat, toRemoteMsat: s.remoteMsat, feeratePerKw: FEERATE, tx, counterpartySignature: signature ?? (await peerSig(tx)) };
  };
  add(seed('holder revoked', KeyCommand.VALIDATE_HOLDER_COMMITMENT, await holder(0n, spec(600_000n)), refused('policy-rsmc-commitment-revoked')));
  add(seed('holder conflict', KeyCommand.VALIDATE_HOLDER_COMMITMENT, await holder(1n, spec(580_000n)), refused('policy-rsmc-commitment-conflict')));
  add(seed('holder bad signature', KeyCommand.VALIDATE_HOLDER_COMMITMENT, await holder(2n, spec(590_000n), await peerSig(await ourTx(2n, spec(1n)))), refused('policy-rsmc-holder-signature-invalid')));
  add(seed('holder zero signature', KeyCommand.VALIDATE_HOLDER_COMMITMENT, await holder(2n, spec(590_000n), new Uint8Array(64)), refused('policy-rsmc-holder-signature-invalid')));
  add(seed('holder skips', KeyCommand.VALIDATE_HOLDER_COMMITMENT, await holder(3n, spec(590_000n)), refused('policy-rsmc-commitment-number')));

  add(seed('revoke current', KeyCommand.REVOKE, { keyIndex: RSMC, number: 1n }, refused('policy-rsmc-revoke-current')));
  add(seed('revoke future', KeyCommand.REVOKE, { keyIndex: RSMC, number: 9n }, refused('policy-rsmc-revoke-without-next-commitment')));
  add(seed('revoke on one-way', KeyCommand.REVOKE, { keyIndex: ONEWAY, number: 0n }, refused('policy-channel-type')));

  add(seed('revocation wrong secret', KeyCommand.VALIDATE_COUNTERPARTY_REVOCATION, { keyIndex: RSMC, number: 0n, secret: new Uint8Array(32).fill(3) }, refused('policy-rsmc-revocation-invalid')));
  add(seed('revocation unexpected', KeyCommand.VALIDATE_COUNTERPARTY_REVOCATION, { keyIndex: RSMC, number: 1n, secret: (await peer.revokeCommitment(peerLoc('commitment'), 1n)).secret }, refused('policy-rsmc-revocation-unexpected')));

  const refund = Uint8Array.from(buildRefundTransaction(onewayTerms).tx.toBuffer());
  add(seed('refund', KeyCommand.SIGN_CLOSE, { keyIndex: ONEWAY, kind: 'oneway-refund', tx: refund }, OK));
  add(seed('refund elsewhere', KeyCommand.SIGN_CLOSE, { keyIndex: ONEWAY, kind: 'oneway-refund', tx: Uint8Array.from(buildRefundTransaction({ ...onewayTerms, payerScript: otherScript }).tx.toBuffer()) }, refused('policy-oneway-refund-mismatch')));
  const remoteScript = p2wpkhOutput(await peer.getPublicKey(peerLoc('wallet')));
  const closing = buildClosingTransaction({
    fundingOutpoint,
    fundingValueSat: CAPACITY_SAT,
    localFundingPubkey: ours.fundingPubkey,
    remoteFundingPubkey: theirs.fundingPubkey,
    localScript: remoteScript,
    remoteScript,
    toLocalMsat: 590_000_000n,
    toRemoteMsat: 410_000_000n,
    feeSat: 700n,
    localIsOpener: true,
    dustLimitSat: 546n,
  }).tx.toBuffer();
  add(seed('close to the wrong script', KeyCommand.SIGN_CLOSE, { keyIndex: RSMC, kind: 'cooperative', tx: Uint8Array.from(closing) }, refused('policy-rsmc-close-output-script')));
  add(seed('broadcast latest', KeyCommand.SIGN_CLOSE, { keyIndex: RSMC, kind: 'holder-commitment', tx: await ourTx(1n, spec(590_000n)) }, OK));
  add(seed('broadcast revoked', KeyCommand.SIGN_CLOSE, { keyIndex: RSMC, kind: 'holder-commitment', tx: await ourTx(0n, spec(600_000n)) }, refused('policy-rsmc-commitment-revoked')));
  add(seed('close one-way cooperatively', KeyCommand.SIGN_CLOSE, { keyIndex: ONEWAY, kind: 'cooperative', tx: refund }, refused('policy-channel-type')));

  const current = remoteCommitment(terms, 1n, spec(590_000n), theirs1);
  const toRemote = current.outputs.find((o) => o.kind === 'to_remote')!;
  const sweepTo = (script: Uint8Array) =>
    Uint8Array.from(buildSweepTransaction([{ outpoint: { txid: current.txid, vout: current.outputs.indexOf(toRemote) }, valueSat: toRemote.valueSat, sequence: 0xffffffff, witnessPlaceholder: [DUMMY_SIGNATURE, ours.paymentBasepoint] }], script, 2000n).tx.toBuffer());
  const sweep = (o: { kind?: 'penalty' | 'to-local' | 'to-remote'; number?: bigint; tx?: Uint8Array; scriptCode?: Uint8Array }) => ({
    keyIndex: RSMC,
    kind: o.kind ?? 'to-remote',
    number: o.number ?? 1n,
    tx: o.tx ?? sweepTo(closeScript),
    inputIndex: 0,
    scriptCode: o.scriptCode ?? p2wpkhScriptCode(ours.paymentBasepoint),
    valueSat: toRemote.valueSat,
  });
  add(seed('sweep to-remote', KeyCommand.SIGN_SWEEP, sweep({}), OK));
  add(seed('sweep elsewhere', KeyCommand.SIGN_SWEEP, sweep({ tx: sweepTo(otherScript) }), refused('policy-rsmc-sweep-output-script')));
  add(seed('penalty not revoked', KeyCommand.SIGN_SWEEP, sweep({ kind: 'penalty', number: 1n }), refused('policy-rsmc-sweep-not-revoked')));
  add(seed('sweep wrong input', KeyCommand.SIGN_SWEEP, sweep({ scriptCode: closeScript }), refused('policy-rsmc-sweep-input')));

  add(seed('state one-way', KeyCommand.GET_CHANNEL_STATE, { keyIndex: ONEWAY }, OK));
  add(seed('state rsmc', KeyCommand.GET_CHANNEL_STATE, { keyIndex: RSMC }, OK));
  add(seed('state unknown', KeyCommand.GET_CHANNEL_STATE, { keyIndex: 99 }, refused('policy-channel-unknown')));

  add(seed('policy (denied)', KeyCommand.SET_POLICY, { ...fuzzPolicy, expirySafetyBlocks: 1 }, { status: KeyStatus.DENIED, reason: 'denied' }));
  add(seed('policy period 0', KeyCommand.SET_POLICY, { ...fuzzPolicy, periodSeconds: 0 }, { status: KeyStatus.BAD_REQUEST, reason: 'out_of_range' }));
  add({ name: 'undefined vendor command', command: 0x4c, payload: body(COMMAND_TYPES[KeyCommand.GET_INFO].request, {}), expect: { status: KeyStatus.BAD_REQUEST, reason: 'unknown_command' } });
  add({ name: 'undefined vendor command 0x7f', command: 0x7f, payload: Uint8Array.of(0xa1, 0x01, 0x02), expect: { status: KeyStatus.BAD_REQUEST, reason: 'unknown_command' } });

  await hid.close();
  confirm.approve = false;
  const peerSecrets = new Map<bigint, Uint8Array>();
  for (const n of [0n]) peerSecrets.set(n, (await peer.revokeCommitment(peerLoc('commitment'), n)).secret);
  return { key, confirm, seeds, onewayTerms, outside: { rsmcFundingScript: rsmcScript, peerFundingPubkey: theirs.fundingPubkey, peerSecrets } };
}

/** Link-level messages to mutate alongside the vendor seeds. */
const LINK_SEEDS: Seed[] = [
  { name: 'ping', command: HidCommand.PING, payload: Uint8Array.from({ length: 150 }, (_, i) => i) },
  { name: 'ping empty', command: HidCommand.PING, payload: new Uint8Array(0) },
  { name: 'cancel', command: HidCommand.CANCEL, payload: new Uint8Array(0) },
  { name: 'init (resync)', command: HidCommand.INIT, payload: new Uint8Array(8).fill(0x42) },
  { name: 'keepalive from the host', command: HidCommand.KEEPALIVE, payload: Uint8Array.of(1) },
  { name: 'error from the host', command: HidCommand.ERROR, payload: Uint8Array.of(1) },
  { name: 'undefined command', command: 0x20, payload: Uint8Array.of(1, 2, 3) },
];

// ---------------------------------------------------------------------------------------------------
// "May this request legally store state?", judged from the stored state before the run

function txidOf(bytes: Uint8Array): Uint8Array | undefined {
  try {
    return Uint8Array.from(Transaction.fromBuffer(Buffer.from(bytes)).getHash());
  } catch {
    return undefined;
  }
}

/** What the judge knows from outside the key: the RSMC channel's funding script and the peer's secrets. */
interface Outside {
  rsmcFundingScript: Uint8Array;
  peerFundingPubkey: Uint8Array;
  peerSecrets: Map<bigint, Uint8Array>;
}

/**
 * True for the only requests that can store state in the fuzzing state: a byte-identical retry of the
 * last one-way payment ([P-12]); a commitment retried (same number and txid, [P-23]) or the next one with
 * its content in range ([P-20]) and, for ours, the peer's valid signature ([P-25]); a revocation retried
 * (the peer's with its true secret) or next. SET_POLICY and SETUP_CHANNEL cannot (the confirmation is
 * denied; the same setup does not commit), new one-way payments cannot ([P-15]), reads never do.
 */
function mayStoreState(command: number, payload: Uint8Array, state: KeyState, outside: Outside): boolean {
  const types = (COMMAND_TYPES as Record<number, { request: FieldType<unknown> } | undefined>)[command];
  if (!types) return false;
  type Loose = { keyIndex?: number; number?: bigint; stateNumber?: bigint; amountMsat?: bigint; tx?: Uint8Array; secret?: Uint8Array; toLocalMsat?: bigint; toRemoteMsat?: bigint; feeratePerKw?: bigint; counterpartySignature?: Uint8Array };
  let request: Loose;
  try {
    request = decodeBody(types.request, payload) as Loose;
  } catch {
    return false;
  }
  const ch = state.channels.find((c) => c.keyIndex === request.keyIndex);
  if (!ch) return false;
  const r = ch.rsmcState ?? { secrets: [] };
  const n = request.number!;
  const txid = request.tx ? txidOf(request.tx) : undefined;
  const sameTx = (stored: Uint8Array | undefined) => !!stored && !!txid && equalBytes(txid, stored);
  const contentInRange = () =>
    !!ch.rsmc && request.feeratePerKw! >= ch.rsmc.minFeeratePerKw && request.feeratePerKw! <= ch.rsmc.maxFeeratePerKw && request.toLocalMsat! + request.toRemoteMsat! === ch.capacitySat * 1000n;
  switch (command) {
    case KeyCommand.SIGN_ONEWAY_PAYMENT: {
      const s = ch.onewayState;
      return !!ch.oneway && !!s && request.stateNumber === s.stateNumber && request.amountMsat === s.amountMsat && sameTx(s.lastTxid);
    }
    case KeyCommand.SIGN_COUNTERPARTY_COMMITMENT:
      if (!ch.rsmc) return false;
      if (n === r.counterpartyNumber) return sameTx(r.counterpartyTxid);
      return n === (r.counterpartyNumber ?? -1n) + 1n && contentInRange();
    case KeyCommand.VALIDATE_HOLDER_COMMITMENT: {
      if (!ch.rsmc) return false;
      if (n === r.holderNumber) return sameTx(r.holderTxid);
      if (n !== (r.holderNumber ?? -1n) + 1n || !contentInRange() || request.keyIndex !== RSMC) return false;
      try {
        return verifyDigest(request.counterpartySignature!, segwitV0Sighash(request.tx!, 0, outside.rsmcFundingScript, ch.capacitySat, 1), outside.peerFundingPubkey);
      } catch {
        return false;
      }
    }
    case KeyCommand.REVOKE:
      if (!ch.rsmc) return false;
      return (r.holderRevoked !== undefined && n <= r.holderRevoked) || (n === (r.holderRevoked ?? -1n) + 1n && r.holderNumber !== undefined && n < r.holderNumber);
    case KeyCommand.VALIDATE_COUNTERPARTY_REVOCATION: {
      if (!ch.rsmc) return false;
      if (r.counterpartyRevoked !== undefined && n <= r.counterpartyRevoked) {
        const known = outside.peerSecrets.get(n);
        return !!known && equalBytes(known, request.secret!);
      }
      return n === (r.counterpartyRevoked ?? -1n) + 1n && r.counterpartyNumber !== undefined && n === r.counterpartyNumber - 1n;
    }
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// The harness: a KeyLink with fake timers in front of the prepared core

/** setTimeout/clearTimeout that fire only when told. */
class ManualTimers {
  #next = 1;
  readonly #pending = new Map<number, () => void>();
  setTimeout = (callback: () => void): unknown => {
    const id = this.#next++;
    this.#pending.set(id, callback);
    return id;
  };
  clearTimeout = (handle: unknown): void => {
    this.#pending.delete(handle as number);
  };
  fireAll(): void {
    for (let round = 0; round < 4 && this.#pending.size > 0; round++) {
      const due = [...this.#pending];
      this.#pending.clear();
      for (const [, callback] of due) callback();
    }
  }
}

interface Handled {
  command: number;
  payload: Uint8Array;
  response: Uint8Array;
}

const KNOWN_ERRORS = new Set<number>(Object.values(HidErrorCode));
const KNOWN_STATUSES = new Set<number>(Object.values(KeyStatus));
const STATUS_NAMES = new Map<number, string>(Object.entries(KeyStatus).map(([name, code]) => [code, name]));
const macrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

type CidChoice = 'ours' | 'other' | 'broadcast' | 'zero' | { random: number };

class Harness {
  readonly link: KeyLink;
  readonly timers = new ManualTimers();
  readonly storage: MemoryKeyStorage;
  sent: Uint8Array[] = [];
  handled: Handled[] = [];
  cid = 0;
  otherCid = 0;
  framesFed = 0;
  runs = 0;
  messagesHandled = 0;
  mayStoreRuns = 0;
  storedRuns = 0;
  reallocations = 0;
  readonly statuses = new Map<string, number>();
  readonly errors = new Map<string, number>();
  readonly reasons = new Map<string, number>();
  #snapshot: { bytes: Uint8Array; commits: number; state: KeyState };
  readonly #shadow = new MessageAssembler();
  #nonce = 0;

  constructor(
    core: KeyCore,
    storage: MemoryKeyStorage,
    readonly outside: Outside,
  ) {
    this.storage = storage;
    this.link = new KeyLink({
      send: (report) => this.sent.push(Uint8Array.from(report)),
      handle: async (command, payload, context) => {
        const copy = Uint8Array.from(payload);
        const response = await core.handle(command, payload, context);
        this.handled.push({ command, payload: copy, response });
        return response;
      },
      version: { major: 0, minor: 1, build: 0 },
      timers: this.timers,
      messageTimeoutMs: 500,
    });
    this.#snapshot = this.#takeSnapshot();
  }

  #takeSnapshot() {
    const bytes = Uint8Array.from(this.storage.bytes!);
    return { bytes, commits: this.storage.commits, state: decodeKeyState(bytes) };
  }

  resolve(choice: CidChoice): number {
    if (choice === 'ours') return this.cid;
    if (choice === 'other') return this.otherCid;
    if (choice === 'broadcast') return BROADCAST_CID;
    if (choice === 'zero') return 0;
    return choice.random >>> 0;
  }

  /** One report from the "host": the frame parser and the link must take anything. */
  feed(report: Uint8Array): void {
    this.framesFed++;
    try {
      this.#shadow.feed(report);
    } catch (error) {
      assert.fail(`MessageAssembler.feed threw on ${bytesToHex(report)}: ${String(error)}`);
    }
    try {
      this.link.receive(report);
    } catch (error) {
      assert.fail(`KeyLink.receive threw on ${bytesToHex(report)}: ${String(error)}`);
    }
  }

  /** The handler is async: wait until no command runs, then let the message timeout fire. */
  async settle(): Promise<void> {
    await macrotask();
    for (let i = 0; this.link.busy; i++) {
      if (i > 10_000) assert.fail('the key is still busy: a handler never settled');
      await macrotask();
    }
    this.timers.fireAll();
    await macrotask();
  }

  async allocate(): Promise<number> {
    const nonce = this.#nextNonce();
    this.sent = [];
    for (const report of encodeMessage({ cid: BROADCAST_CID, command: HidCommand.INIT, payload: nonce })) this.link.receive(report);
    const answer = reassemble(this.sent).find((m) => m.command === HidCommand.INIT && equalBytes(m.payload.subarray(0, 8), nonce));
    assert.ok(answer && answer.payload.length === INIT_RESPONSE_SIZE, 'INIT on the broadcast channel allocates a channel');
    this.sent = [];
    return ((answer.payload[8]! << 24) | (answer.payload[9]! << 16) | (answer.payload[10]! << 8) | answer.payload[11]!) >>> 0;
  }

  /** [F-11] Resynchronise a channel; allocate a new one if the key forgot it ([F-10]). */
  async resync(cid: number): Promise<number> {
    const nonce = this.#nextNonce();
    const before = this.sent.length;
    for (const report of encodeMessage({ cid, command: HidCommand.INIT, payload: nonce })) this.link.receive(report);
    const answers = reassemble(this.sent.slice(before));
    if (answers.some((m) => m.cid === cid && m.command === HidCommand.INIT && equalBytes(m.payload.subarray(0, 8), nonce))) return cid;
    assert.ok(answers.some((m) => m.cid === cid && m.command === HidCommand.ERROR && m.payload[0] === HidErrorCode.INVALID_CHANNEL), 'a resync is answered, or INVALID_CHANNEL');
    this.reallocations++;
    return this.allocate();
  }

  #nextNonce(): Uint8Array {
    const nonce = new Uint8Array(8);
    new DataView(nonce.buffer).setUint32(4, ++this.#nonce);
    return nonce;
  }

  /** One fuzz run: feed, settle, check every answer and the state. */
  async run(reports: Uint8Array[]): Promise<void> {
    this.runs++;
    this.sent = [];
    this.handled = [];
    this.#shadow.reset();
    for (const report of reports) this.feed(report);
    await this.settle();
    this.cid = await this.resync(this.cid);
    this.otherCid = await this.resync(this.otherCid);
    this.#checkAnswers();
    this.#checkState();
  }

  #checkAnswers(): void {
    const out = new MessageAssembler();
    for (const report of this.sent) {
      assert.equal(report.length, REPORT_SIZE, 'every report the key sends is 64 bytes');
      const result = out.feed(report);
      if (result.kind === 'partial') continue;
      assert.equal(result.kind, 'message', `the key's reports reassemble (${JSON.stringify(result)})`);
      if (result.kind === 'message') this.#checkMessage(result.message);
    }
    assert.ok(!out.busy, 'no message of the key is left half sent');
    for (const h of this.handled) {
      this.messagesHandled++;
      checkVendorAnswer(h.command, h.response);
      this.#count(this.statuses, `${STATUS_NAMES.get(h.response[0]!)}`);
      // Bad input is a refusal or a bad request, never an unexpected failure inside the key.
      assert.notEqual(h.response[0], KeyStatus.INTERNAL, `INTERNAL on 0x${h.command.toString(16)} ${bytesToHex(h.payload)}`);
      if (h.response[0] !== KeyStatus.OK) this.#count(this.reasons, decodeBody(failureType, h.response.subarray(1)).reason);
      // A body the strict decoder refuses is BAD_REQUEST with the decoder's code; the decoder throws only WireError.
      const types = (COMMAND_TYPES as Record<number, { request: FieldType<unknown> } | undefined>)[h.command];
      if (!types) continue;
      try {
        decodeBody(types.request, h.payload);
      } catch (error) {
        if (!(error instanceof WireError)) assert.fail(`decodeBody threw ${String(error)} on 0x${h.command.toString(16)} ${bytesToHex(h.payload)}`);
        assert.equal(h.response[0], KeyStatus.BAD_REQUEST, `an undecodable body is BAD_REQUEST (${error.code})`);
        assert.equal(decodeBody(failureType, h.response.subarray(1)).reason, error.code.toLowerCase());
      }
    }
  }

  #checkMessage(m: Message): void {
    switch (m.command) {
      case HidCommand.ERROR:
        assert.equal(m.payload.length, 1, 'ERROR carries one byte');
        assert.ok(KNOWN_ERRORS.has(m.payload[0]!), `ERROR code ${m.payload[0]} is known`);
        assert.notEqual(m.payload[0], HidErrorCode.OTHER, 'the key never fails a command (ERROR OTHER)');
        this.#count(this.errors, Object.entries(HidErrorCode).find(([, v]) => v === m.payload[0])![0]);
        return;
      case HidCommand.KEEPALIVE:
        assert.ok(m.payload.length === 1 && (m.payload[0] === 1 || m.payload[0] === 2), 'KEEPALIVE carries 1 or 2');
        return;
      case HidCommand.INIT:
        assert.equal(m.payload.length, INIT_RESPONSE_SIZE);
        return;
      case HidCommand.PING:
        return;
      default:
        assert.ok(m.command >= HidCommand.VENDOR_FIRST && m.command <= HidCommand.VENDOR_LAST, `command 0x${m.command.toString(16)} from the key`);
        checkVendorAnswer(m.command, m.payload);
    }
  }

  #checkState(): void {
    const bytes = this.storage.bytes!;
    const unchanged = equalBytes(bytes, this.#snapshot.bytes) && this.storage.commits === this.#snapshot.commits;
    const candidates = this.handled.filter((h) => mayStoreState(h.command, h.payload, this.#snapshot.state, this.outside));
    if (candidates.length > 0) this.mayStoreRuns++;
    if (unchanged) return;
    const before = this.#snapshot;
    // Re-based either way, so that fast-check's shrinking replays against the state the key now has.
    this.#snapshot = this.#takeSnapshot();
    if (candidates.length === 0) {
      const requests = this.handled.map((h) => `0x${h.command.toString(16)} ${bytesToHex(h.payload)} → ${bytesToHex(h.response)}`).join('\n');
      assert.fail(`the key's state changed (${before.commits} → ${this.storage.commits} commits) on requests that may not change it:\n${requests}`);
    }
    this.storedRuns++;
  }

  #count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  /** A well-formed request on our channel; resolves with its answer (for the before/after checks). */
  async exchange(command: number, payload: Uint8Array, cid = this.cid): Promise<Uint8Array> {
    this.sent = [];
    this.handled = [];
    for (const report of encodeMessage({ cid, command, payload })) this.link.receive(report);
    await this.settle();
    const answer = reassemble(this.sent).find((m) => m.cid === cid && m.command === command);
    assert.ok(answer, `an answer to 0x${command.toString(16)}`);
    this.#checkAnswers();
    return answer.payload;
  }
}

function reassemble(reports: Uint8Array[]): Message[] {
  const out = new MessageAssembler();
  const messages: Message[] = [];
  for (const report of reports) {
    const result = out.feed(report);
    if (result.kind === 'message') messages.push(result.message);
  }
  return messages;
}

/** status ‖ body, the body strict: the command's response on OK, a Failure otherwise. */
function checkVendorAnswer(command: number, response: Uint8Array): void {
  assert.ok(response.length >= 1 && KNOWN_STATUSES.has(response[0]!), `a vendor answer starts with a KeyStatus (0x${command.toString(16)}: ${bytesToHex(response.subarray(0, 4))})`);
  const types = (COMMAND_TYPES as Record<number, { response: FieldType<unknown> } | undefined>)[command];
  if (response[0] === KeyStatus.OK) {
    assert.ok(types, 'OK only for a defined command');
    decodeBody(types.response, response.subarray(1));
  } else {
    decodeBody(failureType, response.subarray(1));
  }
}

// ---------------------------------------------------------------------------------------------------
// A small CBOR writer that can also write what the key must refuse

type Item =
  | { t: 'uint'; v: bigint; w?: number }
  | { t: 'nint'; v: bigint }
  | { t: 'bytes'; v: Uint8Array; w?: number; indef?: boolean }
  | { t: 'text'; v: string; w?: number; indef?: boolean }
  | { t: 'array'; items: Item[]; w?: number; indef?: boolean }
  | { t: 'map'; entries: [Item, Item][]; w?: number; indef?: boolean }
  | { t: 'tag'; tag: bigint; item: Item }
  | { t: 'simple'; v: number }
  | { t: 'float'; bytes: Uint8Array }
  | { t: 'raw'; bytes: Uint8Array };

const U64_MAX = (1n << 64n) - 1n;

/** A head: `width` forces a longer (non-canonical) argument; never a shorter one than the value needs. */
function head(out: number[], major: number, value: bigint, width = 0): void {
  const need = value < 24n ? 0 : value < 0x100n ? 1 : value < 0x10000n ? 2 : value < 0x1_0000_0000n ? 4 : 8;
  const w = Math.max(need, width);
  if (w === 0) {
    out.push((major << 5) | Number(value));
    return;
  }
  out.push((major << 5) | ({ 1: 24, 2: 25, 4: 26, 8: 27 } as Record<number, number>)[w]!);
  for (let i = w - 1; i >= 0; i--) out.push(Number((value >> BigInt(8 * i)) & 0xffn));
}

function write(item: Item, out: number[]): void {
  switch (item.t) {
    case 'uint':
      return head(out, 0, item.v, item.w);
    case 'nint':
      return head(out, 1, item.v);
    case 'bytes':
    case 'text': {
      const major = item.t === 'bytes' ? 2 : 3;
      const data = item.t === 'bytes' ? item.v : new TextEncoder().encode(item.v);
      if (item.indef) {
        out.push((major << 5) | 31);
        head(out, major, BigInt(data.length));
        out.push(...data, 0xff);
        return;
      }
      head(out, major, BigInt(data.length), item.w);
      out.push(...data);
      return;
    }
    case 'array':
      if (item.indef) out.push(0x9f);
      else head(out, 4, BigInt(item.items.length), item.w);
      for (const i of item.items) write(i, out);
      if (item.indef) out.push(0xff);
      return;
    case 'map':
      if (item.indef) out.push(0xbf);
      else head(out, 5, BigInt(item.entries.length), item.w);
      for (const [k, v] of item.entries) {
        write(k, out);
        write(v, out);
      }
      if (item.indef) out.push(0xff);
      return;
    case 'tag':
      head(out, 6, item.tag);
      return write(item.item, out);
    case 'simple':
      if (item.v < 24) out.push(0xe0 | item.v);
      else out.push(0xf8, item.v);
      return;
    case 'float':
      out.push(item.bytes.length === 2 ? 0xf9 : item.bytes.length === 4 ? 0xfa : 0xfb, ...item.bytes);
      return;
    case 'raw':
      out.push(...item.bytes);
  }
}

function encodeItem(item: Item): Uint8Array {
  const out: number[] = [];
  write(item, out);
  return Uint8Array.from(out);
}

const cborDecoder = new Decoder({ mapsAsObjects: false, useRecords: false });

/** A valid body (canonical CBOR of our subset) as an Item tree. */
function toItem(value: unknown): Item {
  if (typeof value === 'number') return { t: 'uint', v: BigInt(value) };
  if (typeof value === 'bigint') return { t: 'uint', v: value };
  if (typeof value === 'boolean') return { t: 'simple', v: value ? 21 : 20 };
  if (typeof value === 'string') return { t: 'text', v: value };
  if (value instanceof Uint8Array) return { t: 'bytes', v: Uint8Array.from(value) };
  if (Array.isArray(value)) return { t: 'array', items: value.map(toItem) };
  if (value instanceof Map) return { t: 'map', entries: [...value].map(([k, v]) => [toItem(k), toItem(v)] as [Item, Item]) };
  throw new TypeError(`unexpected ${typeof value} in a body`);
}

interface Slot {
  get(): Item;
  set(item: Item): void;
}

function slots(root: { item: Item }): Slot[] {
  const all: Slot[] = [];
  const visit = (slot: Slot) => {
    all.push(slot);
    const item = slot.get();
    if (item.t === 'array') item.items.forEach((_, i) => visit({ get: () => item.items[i]!, set: (x) => (item.items[i] = x) }));
    if (item.t === 'map') {
      item.entries.forEach((entry) => {
        visit({ get: () => entry[0], set: (x) => (entry[0] = x) });
        visit({ get: () => entry[1], set: (x) => (entry[1] = x) });
      });
    }
    if (item.t === 'tag') visit({ get: () => item.item, set: (x) => (item.item = x) });
  };
  visit({ get: () => root.item, set: (x) => (root.item = x) });
  return all;
}

type TreeMutation =
  | { k: 'replace'; at: number; junk: Item }
  | { k: 'addKey'; at: number; key: Item; value: Item }
  | { k: 'deleteKey'; at: number }
  | { k: 'dupKey'; at: number }
  | { k: 'reverse'; at: number }
  | { k: 'widen'; at: number; width: number }
  | { k: 'intEdge'; at: number; v: bigint }
  | { k: 'nest'; at: number; depth: number; map: boolean }
  | { k: 'indefinite'; at: number }
  | { k: 'tagged'; at: number; tag: bigint }
  | { k: 'many'; at: number; n: number };

type ByteMutation =
  | { k: 'flip'; pos: number; bit: number }
  | { k: 'set'; pos: number; value: number }
  | { k: 'insert'; pos: number; bytes: Uint8Array }
  | { k: 'delete'; pos: number; length: number }
  | { k: 'truncate'; length: number }
  | { k: 'append'; bytes: Uint8Array }
  | { k: 'random'; bytes: Uint8Array };

function applyTree(root: { item: Item }, m: TreeMutation): void {
  const all = slots(root);
  const pick = <T>(list: T[], at: number): T | undefined => (list.length === 0 ? undefined : list[at % list.length]);
  const maps = all.map((s) => s.get()).filter((i): i is Extract<Item, { t: 'map' }> => i.t === 'map');
  switch (m.k) {
    case 'replace':
      pick(all, m.at)!.set(m.junk);
      return;
    case 'addKey': {
      const map = pick(maps, m.at);
      map?.entries.splice(m.at % (map.entries.length + 1), 0, [m.key, m.value]);
      return;
    }
    case 'deleteKey': {
      const map = pick(maps, m.at);
      if (map && map.entries.length > 0) map.entries.splice(m.at % map.entries.length, 1);
      return;
    }
    case 'dupKey': {
      const map = pick(maps, m.at);
      if (map && map.entries.length > 0) {
        const e = map.entries[m.at % map.entries.length]!;
        map.entries.splice(m.at % map.entries.length, 0, [e[0], e[1]]);
      }
      return;
    }
    case 'reverse':
      pick(maps, m.at)?.entries.reverse();
      return;
    case 'widen': {
      const item = pick(
        all.map((s) => s.get()).filter((i) => i.t === 'uint' || i.t === 'bytes' || i.t === 'text' || i.t === 'array' || i.t === 'map'),
        m.at,
      ) as { w?: number } | undefined;
      if (item) item.w = m.width;
      return;
    }
    case 'intEdge': {
      const slot = pick(all.filter((s) => s.get().t === 'uint'), m.at);
      slot?.set({ t: 'uint', v: m.v });
      return;
    }
    case 'nest': {
      const slot = pick(all, m.at)!;
      let item = slot.get();
      for (let i = 0; i < m.depth; i++) item = m.map ? { t: 'map', entries: [[{ t: 'uint', v: 1n }, item]] } : { t: 'array', items: [item] };
      slot.set(item);
      return;
    }
    case 'indefinite': {
      const item = pick(
        all.map((s) => s.get()).filter((i) => i.t === 'bytes' || i.t === 'text' || i.t === 'array' || i.t === 'map'),
        m.at,
      ) as { indef?: boolean } | undefined;
      if (item) item.indef = true;
      return;
    }
    case 'tagged': {
      const slot = pick(all, m.at)!;
      slot.set({ t: 'tag', tag: m.tag, item: slot.get() });
      return;
    }
    case 'many': {
      const slot = pick(all, m.at)!;
      slot.set({ t: 'array', items: Array.from({ length: m.n }, () => ({ t: 'uint', v: 0n }) as Item) });
    }
  }
}

function applyBytes(bytes: Uint8Array, m: ByteMutation): Uint8Array {
  const at = (pos: number, len: number) => (len === 0 ? 0 : pos % len);
  switch (m.k) {
    case 'flip': {
      if (bytes.length === 0) return bytes;
      const out = Uint8Array.from(bytes);
      out[at(m.pos, out.length)]! ^= 1 << m.bit;
      return out;
    }
    case 'set': {
      if (bytes.length === 0) return bytes;
      const out = Uint8Array.from(bytes);
      out[at(m.pos, out.length)] = m.value;
      return out;
    }
    case 'insert': {
      const p = at(m.pos, bytes.length + 1);
      return concatBytes(bytes.subarray(0, p), m.bytes, bytes.subarray(p));
    }
    case 'delete': {
      const p = at(m.pos, bytes.length);
      return concatBytes(bytes.subarray(0, p), bytes.subarray(p + m.length));
    }
    case 'truncate':
      return bytes.subarray(0, at(m.length, bytes.length + 1));
    case 'append':
      return concatBytes(bytes, m.bytes);
    case 'random':
      return m.bytes;
  }
}

// ---------------------------------------------------------------------------------------------------
// Arbitraries

const cidChoice: fc.Arbitrary<CidChoice> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom<CidChoice>('ours', 'other', 'broadcast', 'zero') },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }).map((random): CidChoice => ({ random })) },
);

const uintEdges = [0n, 1n, 23n, 24n, 255n, 256n, 65535n, 65536n, 0xffff_ffffn, 0x1_0000_0000n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2_100_000_000_000_000_000n, U64_MAX];

const leafJunk: fc.Arbitrary<Item> = fc.oneof(
  fc.bigInt({ min: 0n, max: U64_MAX }).map((v): Item => ({ t: 'uint', v })),
  fc.constantFrom(...uintEdges).map((v): Item => ({ t: 'uint', v })),
  fc.bigInt({ min: 0n, max: U64_MAX }).map((v): Item => ({ t: 'nint', v })),
  fc.uint8Array({ maxLength: 40 }).map((v): Item => ({ t: 'bytes', v })),
  // the right lengths with the wrong content: 32-byte hashes, 33-byte points (mostly off the curve), 64-byte signatures
  fc.constantFrom(32, 33, 64).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })).map((v): Item => ({ t: 'bytes', v })),
  fc.string({ maxLength: 24 }).map((v): Item => ({ t: 'text', v })),
  // a text string that is not UTF-8
  fc.uint8Array({ minLength: 1, maxLength: 8 }).map((b): Item => ({ t: 'raw', bytes: concatBytes(Uint8Array.of(0x60 | b.length), b.map((x) => x | 0x80)) })),
  fc.integer({ min: 0, max: 255 }).map((v): Item => ({ t: 'simple', v })),
  fc.constantFrom(2, 4, 8).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })).map((bytes): Item => ({ t: 'float', bytes })),
  // a declared length far beyond the bytes that follow
  fc
    .record({ major: fc.constantFrom(2, 3, 4, 5), length: fc.constantFrom(7610n, 65_536n, 2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 63n, U64_MAX) })
    .map(({ major, length }): Item => {
      const out: number[] = [];
      head(out, major, length);
      return { t: 'raw', bytes: Uint8Array.from(out) };
    }),
  fc.uint8Array({ maxLength: 8 }).map((bytes): Item => ({ t: 'raw', bytes })),
);

const junk: fc.Memo<Item> = fc.memo((n) =>
  n <= 1
    ? leafJunk
    : fc.oneof(
        { weight: 4, arbitrary: leafJunk },
        { weight: 1, arbitrary: fc.array(junk(n - 1), { maxLength: 3 }).map((items): Item => ({ t: 'array', items })) },
        { weight: 1, arbitrary: fc.array(fc.tuple(fc.nat(12).map((v): Item => ({ t: 'uint', v: BigInt(v) })), junk(n - 1)), { maxLength: 3 }).map((entries): Item => ({ t: 'map', entries })) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0n, 1n, 2n, 24n, 55799n, U64_MAX), junk(n - 1)).map(([tag, item]): Item => ({ t: 'tag', tag, item })) },
      ),
);

const keyJunk: fc.Arbitrary<Item> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(16).map((v): Item => ({ t: 'uint', v: BigInt(v) })) },
  { weight: 1, arbitrary: fc.constantFrom(0xffff_ffffn, 0x1_0000_0000n, U64_MAX).map((v): Item => ({ t: 'uint', v })) },
  { weight: 1, arbitrary: junk(2) },
);

const at = fc.nat();
const treeMutation: fc.Arbitrary<TreeMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('replace' as const), at, junk: junk(3) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('addKey' as const), at, key: keyJunk, value: junk(2) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('deleteKey' as const), at }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('dupKey' as const), at }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('reverse' as const), at }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('widen' as const), at, width: fc.constantFrom(1, 2, 4, 8) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('intEdge' as const), at, v: fc.constantFrom(...uintEdges) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('nest' as const), at, depth: fc.integer({ min: 1, max: 60 }), map: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('indefinite' as const), at }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('tagged' as const), at, tag: fc.constantFrom(0n, 2n, 24n, 64n, 55799n, U64_MAX) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('many' as const), at, n: fc.integer({ min: 4000, max: 5000 }) }) },
);

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('flip' as const), pos: at, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('set' as const), pos: at, value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('insert' as const), pos: at, bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('delete' as const), pos: at, length: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('truncate' as const), length: at }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 20 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 300 }) }) },
);

type RandomReport = { k: 'raw'; bytes: Uint8Array } | { k: 'onCid'; cid: CidChoice; rest: Uint8Array } | { k: 'init'; cid: CidChoice; command: number; length: number; data: Uint8Array };

const randomReport: fc.Arbitrary<RandomReport> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ minLength: 64, maxLength: 64 }).map((bytes): RandomReport => ({ k: 'raw', bytes })) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 63, 65, 200).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })).map((bytes): RandomReport => ({ k: 'raw', bytes })) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('onCid' as const), cid: cidChoice, rest: fc.uint8Array({ minLength: 60, maxLength: 60 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('init' as const),
      cid: cidChoice,
      command: fc.oneof(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0x40, max: 0x4c })),
      length: fc.oneof(fc.integer({ min: 0, max: 57 }), fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(58, 116, 7609, 7610)),
      data: fc.uint8Array({ minLength: 57, maxLength: 57 }),
    }),
  },
);

function randomReportBytes(h: Harness, r: RandomReport): Uint8Array {
  if (r.k === 'raw') return r.bytes;
  const out = new Uint8Array(REPORT_SIZE);
  new DataView(out.buffer).setUint32(0, h.resolve(r.cid));
  if (r.k === 'onCid') {
    out.set(r.rest, 4);
    return out;
  }
  out[4] = 0x80 | r.command;
  out[5] = r.length >> 8;
  out[6] = r.length & 0xff;
  out.set(r.data, 7);
  return out;
}

type FrameMutation =
  | { k: 'flip'; r: number; pos: number; bit: number }
  | { k: 'set'; r: number; pos: number; value: number }
  | { k: 'bcnt'; value: number }
  | { k: 'seq'; r: number; value: number }
  | { k: 'drop'; r: number }
  | { k: 'dup'; r: number }
  | { k: 'swap'; a: number; b: number }
  | { k: 'cid'; r: number; all: boolean; to: CidChoice }
  | { k: 'resize'; r: number; length: number }
  | { k: 'cut'; keep: number }
  | { k: 'insert'; r: number; what: 'cancel' | 'init' | 'ping' | 'other-vendor' | 'other-cancel' | 'stray' };

const frameMutation: fc.Arbitrary<FrameMutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ k: fc.constant('flip' as const), r: at, pos: fc.integer({ min: 0, max: 63 }), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('set' as const), r: at, pos: fc.integer({ min: 0, max: 63 }), value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('bcnt' as const), value: fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 400 }), fc.constantFrom(7609, 7610)) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('seq' as const), r: at, value: fc.integer({ min: 0, max: 0xff }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('drop' as const), r: at }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('dup' as const), r: at }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('swap' as const), a: at, b: at }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('cid' as const), r: at, all: fc.boolean(), to: cidChoice }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('resize' as const), r: at, length: fc.constantFrom(0, 1, 63, 65, 200) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('cut' as const), keep: at }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('insert' as const), r: at, what: fc.constantFrom('cancel' as const, 'init' as const, 'ping' as const, 'other-vendor' as const, 'other-cancel' as const, 'stray' as const) }) },
);

type PayloadMutation = { k: 'truncate'; length: number } | { k: 'extend'; bytes: Uint8Array } | { k: 'none' };
const payloadMutation: fc.Arbitrary<PayloadMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<PayloadMutation>({ k: 'none' }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('truncate' as const), length: at }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 120 }) }) },
);

function mutateFrames(h: Harness, s: Seed, payloadM: PayloadMutation, mutations: FrameMutation[]): Uint8Array[] {
  let payload = s.payload;
  if (payloadM.k === 'truncate') payload = payload.subarray(0, payloadM.length % (payload.length + 1));
  if (payloadM.k === 'extend') payload = concatBytes(payload, payloadM.bytes);
  let reports: Uint8Array[] = encodeMessage({ cid: h.cid, command: s.command, payload }).map((r) => Uint8Array.from(r));
  const idx = (r: number) => r % reports.length;
  const control = (cid: number, command: number, p: Uint8Array) => encodeMessage({ cid, command, payload: p })[0]!;
  for (const m of mutations) {
    if (reports.length === 0) break;
    switch (m.k) {
      case 'flip':
        reports[idx(m.r)]![m.pos % reports[idx(m.r)]!.length]! ^= 1 << m.bit;
        break;
      case 'set':
        reports[idx(m.r)]![m.pos % reports[idx(m.r)]!.length] = m.value;
        break;
      case 'bcnt':
        if (reports[0]!.length === REPORT_SIZE) {
          reports[0]![5] = m.value >> 8;
          reports[0]![6] = m.value & 0xff;
        }
        break;
      case 'seq':
        if (reports[idx(m.r)]!.length === REPORT_SIZE) reports[idx(m.r)]![4] = m.value;
        break;
      case 'drop':
        reports.splice(idx(m.r), 1);
        break;
      case 'dup':
        reports.splice(idx(m.r), 0, Uint8Array.from(reports[idx(m.r)]!));
        break;
      case 'swap': {
        const [a, b] = [idx(m.a), idx(m.b)];
        [reports[a], reports[b]] = [reports[b]!, reports[a]!];
        break;
      }
      case 'cid': {
        const cid = h.resolve(m.to);
        for (const [i, r] of reports.entries()) if ((m.all || i === idx(m.r)) && r.length >= 4) new DataView(r.buffer, r.byteOffset).setUint32(0, cid);
        break;
      }
      case 'resize': {
        const r = reports[idx(m.r)]!;
        const out = new Uint8Array(m.length);
        out.set(r.subarray(0, m.length));
        reports[idx(m.r)] = out;
        break;
      }
      case 'cut':
        reports = reports.slice(0, Math.max(1, m.keep % (reports.length + 1)));
        break;
      case 'insert': {
        const extra =
          m.what === 'cancel' ? control(h.cid, HidCommand.CANCEL, new Uint8Array(0))
          : m.what === 'init' ? control(h.cid, HidCommand.INIT, new Uint8Array(8).fill(7))
          : m.what === 'ping' ? control(h.cid, HidCommand.PING, Uint8Array.of(1, 2, 3))
          : m.what === 'other-vendor' ? control(h.otherCid, KeyCommand.GET_INFO, Uint8Array.of(0xa0))
          : m.what === 'other-cancel' ? control(h.otherCid, HidCommand.CANCEL, new Uint8Array(0))
          : (() => {
              const stray = new Uint8Array(REPORT_SIZE);
              new DataView(stray.buffer).setUint32(0, h.cid);
              stray[4] = 0x05; // a continuation nobody asked for
              return stray;
            })();
        reports.splice(m.r % (reports.length + 1), 0, extra);
        break;
      }
    }
  }
  return reports;
}

function mutateBody(s: Seed, tree: TreeMutation[], bytes: ByteMutation[]): Uint8Array {
  let payload = s.payload;
  if (tree.length > 0) {
    let root: { item: Item };
    try {
      root = { item: toItem(cborDecoder.decode(s.payload)) };
    } catch {
      root = { item: { t: 'raw', bytes: s.payload } };
    }
    for (const m of tree) applyTree(root, m);
    payload = encodeItem(root.item);
  }
  for (const m of bytes) payload = applyBytes(payload, m);
  return payload.subarray(0, 7609);
}

// ---------------------------------------------------------------------------------------------------

test('[C-4] [K-2] the key takes ≥ 10 000 random and mutated frames: nothing escapes, every answer is well formed, its state does not change', async (t) => {
  const started = performance.now();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const { key, confirm, seeds, onewayTerms, outside } = await prepare();
    const h = new Harness(key.core, key.storage, outside);
    h.cid = await h.allocate();
    h.otherCid = await h.allocate();
    // The design's premises: the tip is within the margin, and no seed may store state.
    const state = decodeKeyState(key.storage.bytes!);
    assert.ok(state.tipHeight + state.policy.expirySafetyBlocks >= EXPIRY, 'every new one-way payment is refused while fuzzing');
    for (const s of seeds) assert.equal(mayStoreState(s.command, s.payload, state, outside), false, `seed ${s.name} cannot store state`);
    const vendorSeeds = seeds;
    const allSeeds = [...seeds, ...LINK_SEEDS];

    // 1. Valid frames: every seed as is, on either channel, answered as expected and storing nothing.
    await fc.assert(
      fc.asyncProperty(fc.nat(vendorSeeds.length - 1), fc.constantFrom<CidChoice>('ours', 'other'), async (i, cid) => {
        const s = vendorSeeds[i]!;
        await h.run(encodeMessage({ cid: h.resolve(cid), command: s.command, payload: s.payload }));
        const answer = h.handled.find((x) => x.command === s.command);
        assert.ok(answer, `${s.name}: handled`);
        assert.equal(answer.response[0], s.expect!.status, `${s.name}: status`);
        if (s.expect!.reason) assert.equal(decodeBody(failureType, answer.response.subarray(1)).reason, s.expect!.reason, `${s.name}: reason`);
      }),
      { numRuns: 300 },
    );

    // 2. Random reports: any bytes, any size, on any channel.
    await fc.assert(
      fc.asyncProperty(fc.array(randomReport, { minLength: 1, maxLength: 6 }), async (list) => {
        await h.run(list.map((r) => randomReportBytes(h, r)));
      }),
      { numRuns: 2500 },
    );

    // 3. Framing mutations of every seed and of the link's own messages.
    await fc.assert(
      fc.asyncProperty(fc.nat(allSeeds.length - 1), payloadMutation, fc.array(frameMutation, { minLength: 1, maxLength: 4 }), async (i, p, ms) => {
        await h.run(mutateFrames(h, allSeeds[i]!, p, ms));
      }),
      { numRuns: 3000 },
    );

    // 4. CBOR mutations of every vendor seed, framed correctly so they reach the decoder.
    await fc.assert(
      fc.asyncProperty(
        fc.nat(vendorSeeds.length - 1),
        fc.array(treeMutation, { maxLength: 3 }),
        fc.array(byteMutation, { maxLength: 2 }),
        async (i, tree, bytes) => {
          const s = vendorSeeds[i]!;
          await h.run(encodeMessage({ cid: h.cid, command: s.command, payload: mutateBody(s, tree, bytes) }));
        },
      ),
      { numRuns: 5000 },
    );

    assert.ok(h.framesFed >= 10_000, `${h.framesFed} frames fed`);
    assert.deepEqual(unhandled, [], 'no unhandled rejection');

    // The key is not wedged: it answers GET_INFO and, policy restored, signs the next payment.
    const info = await h.exchange(KeyCommand.GET_INFO, encodeBody(COMMAND_TYPES[KeyCommand.GET_INFO].request, {}));
    assert.equal(info[0], KeyStatus.OK);
    assert.equal(decodeBody(COMMAND_TYPES[KeyCommand.GET_INFO].response, info.subarray(1)).channels, 2);
    confirm.approve = true;
    const policy = await h.exchange(KeyCommand.SET_POLICY, encodeBody(COMMAND_TYPES[KeyCommand.SET_POLICY].request, DEFAULT_KEY_POLICY));
    assert.equal(policy[0], KeyStatus.OK);
    const tx = Uint8Array.from(buildPaymentTransaction(onewayTerms, 30_000_000n).tx.toBuffer());
    const signed = await h.exchange(
      KeyCommand.SIGN_ONEWAY_PAYMENT,
      encodeBody(COMMAND_TYPES[KeyCommand.SIGN_ONEWAY_PAYMENT].request, { keyIndex: ONEWAY, stateNumber: 3n, amountMsat: 30_000_000n, tipHeight: 900, tx }),
    );
    assert.equal(signed[0], KeyStatus.OK, `the next payment is signed (${bytesToHex(signed)})`);
    const { signature } = decodeBody(COMMAND_TYPES[KeyCommand.SIGN_ONEWAY_PAYMENT].response, signed.subarray(1));
    const script = fundingScript(onewayTerms.payerFundingPubkey, onewayTerms.payeeFundingPubkey);
    assert.ok(verifyDigest(signature, segwitV0Sighash(tx, 0, script, CAPACITY_SAT, 1), onewayTerms.payerFundingPubkey));
    assert.equal(decodeKeyState(key.storage.bytes!).channels.find((c) => c.keyIndex === ONEWAY)!.onewayState!.stateNumber, 3n);
    assert.deepEqual(unhandled, [], 'no unhandled rejection');

    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    t.diagnostic(`${h.framesFed} frames fed in ${h.runs} runs (${seconds} s); ${h.messagesHandled} requests reached the key's handler`);
    t.diagnostic(`answers: ${[...h.statuses].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    t.diagnostic(`reasons: ${[...h.reasons].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    t.diagnostic(`link errors: ${[...h.errors].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    t.diagnostic(`runs with a request that may store state: ${h.mayStoreRuns}; runs that stored state: ${h.storedRuns}; channels re-allocated: ${h.reallocations}`);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

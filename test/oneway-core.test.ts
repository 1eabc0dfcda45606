/**
 * The one-way channel machines on their own (src/channel/oneway/payer.ts, payee.ts; docs/protocol.md
 * §3.2–§3.3): no broker, no chain, no store — a small driver feeds one machine's sends to the other,
 * answers 'sign' effects with a SoftwareSigner and plays the chain by hand. What it proves:
 *   - persist before you speak: every message carrying a signature, a payment, an ack or a resume, and
 *     every broadcast, goes out only when what it reveals is already in the last persisted record;
 *   - a refused input returns the very same record object and exactly [warning, rejected event];
 *   - (property) whatever sequence of payments, replays, lower amounts and bad signatures arrives, the
 *     payee's amount never decreases and equals the highest valid payment;
 *   - the record codec round-trips every state and turns any corrupt input into CORRUPT_RECORD;
 *   - §3.3 resume: a payee one behind gets the identical payment again; a peer claiming a payment the
 *     payer never signed makes the payer fail the channel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Transaction } from 'bitcoinjs-lib';
import { equalBytes } from '../src/bytes.js';
import type { Effect, Step } from '../src/channel/oneway/core.js';
import { CHANNEL_WIRE_CODES, ChannelError, type ChannelErrorCode } from '../src/channel/oneway/errors.js';
import { DEFAULT_PAYEE_POLICY, payeeOnPropose, payeeStep, type PayeeInput, type PayeeOffer } from '../src/channel/oneway/payee.js';
import { DEFAULT_PAYER_POLICY, payerPropose, payerStep, type PayerInput } from '../src/channel/oneway/payer.js';
import { decodeRecord, encodeRecord, type OnewayRecord, type PayeeRecord, type PayerRecord } from '../src/channel/oneway/state.js';
import {
  channelTerms,
  fundingOutputScriptOf,
  fundingScriptOf,
  paymentTransaction,
  refundTransaction,
  verifyFundingSpend,
} from '../src/channel/oneway/terms.js';
import { signFundingInputs, type FundingTransaction } from '../src/onchain/funding.js';
import { maxPaymentMsat } from '../src/onchain/oneway.js';
import { p2wpkhOutput } from '../src/onchain/script.js';
import { softwareIdentity } from '../src/session/identity.js';
import { SoftwareSigner } from '../src/signer/software.js';
import { encodeMessage, type OnewayPayMsg, type WireMessage } from '../src/wire/index.js';
import { OFFER } from './helpers/oneway-parties.js';

const PAYER_ID = softwareIdentity(new Uint8Array(32).fill(1)).nodeId;
const PAYEE_ID = softwareIdentity(new Uint8Array(32).fill(2)).nodeId;
const PAYER_SIGNER = SoftwareSigner.fromSeed(new Uint8Array(32).fill(0x11));
const PAYEE_SIGNER = SoftwareSigner.fromSeed(new Uint8Array(32).fill(0x22));
const STRANGER_SIGNER = SoftwareSigner.fromSeed(new Uint8Array(32).fill(0x33));
const OFFERS: PayeeOffer[] = [OFFER];
const CAPACITY_SAT = 200_000n;
const START_TIP = 100;
const EXPIRY = START_TIP + 144;
const PAYER_CTX = { policy: DEFAULT_PAYER_POLICY };
const PAYEE_CTX = { policy: DEFAULT_PAYEE_POLICY };

// ---- the rule: persist before you speak ----

/** Messages and broadcasts whose content must already be durable when they leave. */
type Revealing = Extract<Effect, { kind: 'send' | 'broadcast' }>;

function isRevealing(effect: Effect): effect is Revealing {
  if (effect.kind === 'broadcast') return true;
  if (effect.kind !== 'send') return false;
  return ['oneway_refund_signed', 'oneway_pay', 'oneway_pay_ack', 'oneway_resume', 'oneway_settled'].includes(effect.message.type);
}

/** What the durable record must hold for `effect` to be allowed out; a description of the mismatch, or undefined. */
function durableMismatch(effect: Revealing, durable: OnewayRecord): string | undefined {
  if (effect.kind === 'broadcast') {
    if (effect.purpose === 'funding') {
      const r = durable as PayerRecord;
      if (r.role !== 'payer' || r.phase !== 'refund_held' || !r.refundSignature) return 'funding broadcast without a stored refund signature';
      if (!verifyFundingSpend(r, refundTransaction(r), r.payeeFundingPubkey!, r.refundSignature)) return 'stored refund signature does not verify';
      if (!r.fundingTx || !equalBytes(r.fundingTx, effect.tx)) return 'broadcast funding differs from the stored one';
      return undefined;
    }
    if (!durable.closingTx || !equalBytes(durable.closingTx, effect.tx)) return `${effect.purpose} broadcast not the stored closing transaction`;
    return undefined;
  }
  const m = effect.message;
  const p = durable.payment;
  switch (m.type) {
    case 'oneway_refund_signed':
      return durable.refundSignature && equalBytes(durable.refundSignature, m.refundSignature) ? undefined : 'refund signature not stored';
    case 'oneway_pay':
      return p.number === m.paymentNumber && p.amountMsat === m.amountMsat && p.signature && equalBytes(p.signature, m.signature) ? undefined : 'payment not stored';
    case 'oneway_pay_ack':
      return p.number === m.paymentNumber && p.amountMsat === m.amountMsat ? undefined : 'acknowledged payment not stored';
    case 'oneway_resume':
      return p.number === m.latestPaymentNumber && p.amountMsat === m.latestAmountMsat ? undefined : 'resume reports an unstored payment';
    case 'oneway_settled':
      return durable.closingTx && equalBytes(Transaction.fromBuffer(Buffer.from(durable.closingTx)).getHash(), m.txid) ? undefined : 'settlement not stored';
    default:
      return undefined;
  }
}

/**
 * Check one step's effects: a revealing effect of a step that changed the record must follow a persist in
 * the same list, and in every case what it reveals must be in the record as persisted at that point.
 * Returns how many revealing effects were checked; throws on a violation.
 */
function checkPersistBeforeSpeak(before: OnewayRecord | undefined, step: Step<OnewayRecord>, durable: Uint8Array | undefined): number {
  let persisted = false;
  let durableNow = durable;
  let checked = 0;
  for (const [i, effect] of step.effects.entries()) {
    if (effect.kind === 'persist') {
      persisted = true;
      durableNow = encodeRecord(step.record);
      continue;
    }
    if (!isRevealing(effect)) continue;
    const what = effect.kind === 'send' ? effect.message.type : `broadcast ${effect.purpose}`;
    if (step.record !== before && !persisted) throw new assert.AssertionError({ message: `effect ${i} (${what}) of a state change precedes any persist` });
    if (!durableNow) throw new assert.AssertionError({ message: `effect ${i} (${what}) with nothing stored` });
    const mismatch = durableMismatch(effect, decodeRecord(durableNow));
    if (mismatch) throw new assert.AssertionError({ message: `effect ${i} (${what}): ${mismatch}` });
    checked++;
  }
  return checked;
}

// ---- a driver: two machines, a hand-played chain ----

interface Side<R extends OnewayRecord> {
  record: R;
  /** The last persisted bytes. */
  durable: Uint8Array | undefined;
  /** Every record after every step, oldest first. */
  history: R[];
  events: Array<Extract<Effect, { kind: 'event' }>['event']>;
  /** Messages this side sent, in order. */
  sent: WireMessage[];
  broadcasts: Array<{ purpose: string; tx: Uint8Array }>;
}

function newSide<R extends OnewayRecord>(record: R): Side<R> {
  return { record, durable: undefined, history: [], events: [], sent: [], broadcasts: [] };
}

class Duo {
  tip = START_TIP;
  /** Confirmations the hand-played chain reports for the funding output. */
  fundingConfs = 0;
  fundingTx: Transaction | undefined;
  payer!: Side<PayerRecord>;
  payee: Side<PayeeRecord> | undefined;
  toPayee: WireMessage[] = [];
  toPayer: WireMessage[] = [];
  /** Revealing effects checked against the rule, by message type / broadcast purpose. */
  readonly checked = new Map<string, number>();
  steps = 0;

  async propose(): Promise<void> {
    const step = payerPropose({
      peer: PAYEE_ID,
      tempChannelId: new Uint8Array(32).fill(0xc1),
      capacitySat: CAPACITY_SAT,
      expiryHeight: EXPIRY,
      feeratePerKw: 2500n,
      service: { serviceId: OFFER.serviceId, unit: OFFER.unit, tariffMsatPerUnit: OFFER.tariffMsatPerUnit, creditWindowUnits: OFFER.creditWindowUnits },
      fundingKeyIndex: 0,
      payerFundingPubkey: await PAYER_SIGNER.getPublicKey({ family: 'funding', index: 0 }),
      refundScript: p2wpkhOutput(await PAYER_SIGNER.getPublicKey({ family: 'wallet', index: 0 })),
    });
    this.payer = newSide(step.record);
    await this.#runPayer(undefined, step);
  }

  async payerInput(input: PayerInput): Promise<Step<PayerRecord>> {
    const before = this.payer.record;
    const step = payerStep(before, input, { tipHeight: this.tip, ...PAYER_CTX });
    await this.#runPayer(before, step);
    return step;
  }

  async payeeInput(input: PayeeInput): Promise<Step<PayeeRecord>> {
    const side = this.payee!;
    const before = side.record;
    const step = payeeStep(before, input, { tipHeight: this.tip, ...PAYEE_CTX });
    await this.#runPayee(before, step);
    return step;
  }

  /** Deliver queued messages both ways until nothing is left. */
  async pump(): Promise<void> {
    for (let rounds = 0; this.toPayee.length + this.toPayer.length > 0; rounds++) {
      assert.ok(rounds < 1000, 'messages ping-pong forever');
      const forPayee = this.toPayee.shift();
      if (forPayee) await this.deliverToPayee(forPayee);
      const forPayer = this.toPayer.shift();
      if (forPayer) await this.deliverToPayer(forPayer);
    }
  }

  async deliverToPayee(message: WireMessage): Promise<void> {
    if (message.type === 'oneway_propose') {
      const result = payeeOnPropose(message, {
        peer: PAYER_ID,
        tipHeight: this.tip,
        offers: OFFERS,
        ...PAYEE_CTX,
        fundingKeyIndex: 0,
        payeeFundingPubkey: await PAYEE_SIGNER.getPublicKey({ family: 'funding', index: 0 }),
        payoutScript: p2wpkhOutput(await PAYEE_SIGNER.getPublicKey({ family: 'wallet', index: 0 })),
      });
      assert.ok(result.ok, 'proposal accepted');
      this.payee = newSide(result.step.record);
      await this.#runPayee(undefined, result.step);
      return;
    }
    if (message.type === 'warning') return; // the payee runtime only logs warnings
    await this.payeeInput({ kind: 'message', message } as PayeeInput);
  }

  async deliverToPayer(message: WireMessage): Promise<void> {
    await this.payerInput({ kind: 'message', message } as PayerInput);
  }

  /** Mine: `confs` confirmations for the funding, a block for both machines. */
  async mine(blocks = 1): Promise<void> {
    for (let i = 0; i < blocks; i++) {
      this.tip++;
      if (this.fundingTx) this.fundingConfs++;
      await this.payerInput({ kind: 'block', height: this.tip });
      if (this.payee) await this.payeeInput({ kind: 'block', height: this.tip });
      await this.pump();
    }
  }

  async open(): Promise<void> {
    await this.propose();
    await this.pump();
    assert.equal(this.payer.record.phase, 'funded');
    assert.equal(this.payee!.record.phase, 'funded');
    await this.mine(1);
    assert.equal(this.payee!.record.phase, 'open');
    assert.equal(this.payer.record.phase, 'open');
  }

  async pay(incrementMsat: bigint): Promise<OnewayPayMsg> {
    await this.payerInput({ kind: 'pay', incrementMsat });
    const msg = this.toPayee.at(-1);
    assert.equal(msg?.type, 'oneway_pay');
    await this.pump();
    return msg as OnewayPayMsg;
  }

  /** The chain confirms `tx` spending the funding output: tell both machines. */
  async confirmSpend(tx: Uint8Array): Promise<void> {
    this.tip++;
    const spend = { txid: Transaction.fromBuffer(Buffer.from(tx)).getId(), inputIndex: 0, blockHeight: this.tip };
    await this.payerInput({ kind: 'funding-spent', spend, tx });
    await this.payeeInput({ kind: 'funding-spent', spend, tx });
    await this.pump();
  }

  #count(effects: Effect[]): void {
    for (const e of effects) {
      if (!isRevealing(e)) continue;
      const key = e.kind === 'send' ? e.message.type : `broadcast:${e.purpose}`;
      this.checked.set(key, (this.checked.get(key) ?? 0) + 1);
    }
  }

  async #runPayer(before: PayerRecord | undefined, step: Step<PayerRecord>): Promise<void> {
    const side = this.payer;
    checkPersistBeforeSpeak(before, step, side.durable);
    this.#count(step.effects);
    this.steps++;
    side.record = step.record;
    side.history.push(step.record);
    for (const effect of step.effects) {
      switch (effect.kind) {
        case 'persist':
          side.durable = persist(side.record);
          break;
        case 'send':
          side.sent.push(effect.message);
          this.toPayee.push(effect.message);
          break;
        case 'event':
          side.events.push(effect.event);
          break;
        case 'watch':
          break;
        case 'select-coins': {
          const pubkey = await PAYER_SIGNER.getPublicKey({ family: 'wallet', index: 0 });
          await this.payerInput({
            kind: 'coins',
            coins: [{ outpoint: { txid: 'ab'.repeat(32), vout: 1 }, valueSat: 1_000_000n, pubkey, key: { family: 'wallet', index: 0 } }],
            changeScript: p2wpkhOutput(pubkey),
          });
          break;
        }
        case 'sign-funding': {
          const r = side.record;
          const funding = {
            tx: Transaction.fromBuffer(Buffer.from(r.fundingTx!)),
            inputs: r.fundingInputs!.map((i) => ({ owner: 0, coin: { outpoint: i.outpoint, valueSat: i.valueSat, pubkey: i.pubkey, key: { family: i.keyFamily, index: i.keyIndex } } })),
          } as unknown as FundingTransaction;
          await signFundingInputs(funding, 0, PAYER_SIGNER);
          await this.payerInput({ kind: 'funding-signed', tx: Uint8Array.from(funding.tx.toBuffer()) });
          break;
        }
        case 'sign': {
          const signature = await signSpend(PAYER_SIGNER, side.record, effect.tx);
          await this.payerInput({ kind: 'signed', purpose: effect.purpose, signature, ...(effect.amountMsat !== undefined ? { amountMsat: effect.amountMsat } : {}) });
          break;
        }
        case 'broadcast':
          side.broadcasts.push({ purpose: effect.purpose, tx: effect.tx });
          if (effect.purpose === 'funding') this.fundingTx = Transaction.fromBuffer(Buffer.from(effect.tx));
          await this.payerInput({ kind: 'broadcast-result', purpose: effect.purpose, result: { accepted: true, txid: Transaction.fromBuffer(Buffer.from(effect.tx)).getId() } });
          break;
        case 'check-funding':
          await this.payerInput(this.#fundingStatus(side.record));
          break;
      }
    }
  }

  async #runPayee(before: PayeeRecord | undefined, step: Step<PayeeRecord>): Promise<void> {
    const side = this.payee!;
    checkPersistBeforeSpeak(before, step, side.durable);
    this.#count(step.effects);
    this.steps++;
    side.record = step.record;
    side.history.push(step.record);
    for (const effect of step.effects) {
      switch (effect.kind) {
        case 'persist':
          side.durable = persist(side.record);
          break;
        case 'send':
          side.sent.push(effect.message);
          this.toPayer.push(effect.message);
          break;
        case 'event':
          side.events.push(effect.event);
          break;
        case 'watch':
          break;
        case 'sign': {
          const signature = await signSpend(PAYEE_SIGNER, side.record, effect.tx);
          await this.payeeInput({ kind: 'signed', purpose: effect.purpose, signature });
          break;
        }
        case 'broadcast':
          side.broadcasts.push({ purpose: effect.purpose, tx: effect.tx });
          await this.payeeInput({ kind: 'broadcast-result', purpose: effect.purpose, result: { accepted: true, txid: Transaction.fromBuffer(Buffer.from(effect.tx)).getId() } });
          break;
        case 'check-funding':
          await this.payeeInput(this.#fundingStatus(side.record));
          break;
        default:
          assert.fail(`payee effect ${effect.kind} not expected`);
      }
    }
  }

  #fundingStatus(record: OnewayRecord): Extract<PayerInput, { kind: 'funding-status' }> {
    const out = this.fundingTx?.outs[record.fundingOutpoint!.vout];
    const utxo = out && {
      output: { valueSat: out.value, script: Uint8Array.from(out.script) },
      blockHeight: this.fundingConfs > 0 ? this.tip - this.fundingConfs + 1 : undefined,
      confirmations: this.fundingConfs,
    };
    return { kind: 'funding-status', utxo, tipHeight: this.tip };
  }
}

/** Commit a record the way the runtime does, and check it reads back identically. */
function persist(record: OnewayRecord): Uint8Array {
  const bytes = encodeRecord(record);
  assert.deepEqual(decodeRecord(bytes), record, `record (${record.role}, ${record.phase}) survives the codec`);
  return bytes;
}

function signSpend(signer: SoftwareSigner, record: OnewayRecord, tx: Uint8Array, index = record.fundingKeyIndex): Promise<Uint8Array> {
  return signer.signInput({ key: { family: 'funding', index }, tx, inputIndex: 0, scriptCode: fundingScriptOf(record), valueSat: record.capacitySat });
}

function paySig(record: OnewayRecord, amountMsat: bigint, signer = PAYER_SIGNER): Promise<Uint8Array> {
  return signSpend(signer, record, paymentTransaction(record, amountMsat).toBuffer(), 0);
}

async function openDuo(payments: bigint[] = []): Promise<{ duo: Duo; pays: OnewayPayMsg[] }> {
  const duo = new Duo();
  await duo.open();
  const pays: OnewayPayMsg[] = [];
  for (const increment of payments) pays.push(await duo.pay(increment));
  return { duo, pays };
}

function isCorrupt(error: unknown): boolean {
  return error instanceof ChannelError && error.code === 'CORRUPT_RECORD';
}

// ---- persist before you speak ----

test('[§3.2][§3.3] persist before you speak: every step of open, pay, duplicate, resync and settle', async () => {
  const { duo } = await openDuo();
  const payee = duo.payee!;
  // Open order: the funding went out only after the refund was stored (checked in the rule), and once.
  assert.equal(duo.payer.broadcasts.filter((b) => b.purpose === 'funding').length, 1);

  let paid = 0n;
  for (const increment of [1_000_000n, 250_001n, 7n, 3_000_000n, 999_999n]) {
    paid += increment;
    await duo.pay(increment);
    assert.equal(duo.payer.record.acked.amountMsat, paid);
    assert.equal(payee.record.payment.amountMsat, paid);
  }
  // A redelivered latest payment (re-ack without a new persist: nothing new to store).
  await duo.deliverToPayee(duo.payer.sent.filter((m) => m.type === 'oneway_pay').at(-1)!);
  // Both ends reconnect.
  await duo.payerInput({ kind: 'resync' });
  await duo.payeeInput({ kind: 'resync' });
  await duo.pump();
  // Close: the payee settles with the latest payment.
  await duo.payerInput({ kind: 'close' });
  await duo.pump();
  const settlement = payee.broadcasts.find((b) => b.purpose === 'settlement');
  assert.ok(settlement);
  await duo.confirmSpend(settlement.tx);
  assert.equal(duo.payer.record.phase, 'closed');
  assert.equal(payee.record.phase, 'closed');
  assert.equal(payee.record.outcome?.kind, 'settled');
  assert.equal(payee.record.outcome?.payeeValueSat, paid / 1000n);

  // Not vacuous: each kind of revealing effect occurred and was checked.
  const c = Object.fromEntries(duo.checked);
  assert.deepEqual(
    { refund: c['oneway_refund_signed'], funding: c['broadcast:funding'], pays: c['oneway_pay'], acks: c['oneway_pay_ack'], settled: c['oneway_settled'], settlement: c['broadcast:settlement'] },
    // acks: five payments, the redelivered one, and the re-ack a level resume earns (the ack may have been lost).
    { refund: 1, funding: 1, pays: 5, acks: 7, settled: 1, settlement: 1 },
  );
  assert.ok((c['oneway_resume'] ?? 0) >= 2, 'resumes from both ends checked');
});

test('[§3.2] persist before you speak on the refund path: the payer signs and broadcasts its refund at expiry', async () => {
  const { duo } = await openDuo([2_000_000n]);
  duo.toPayee.length = 0;
  duo.payee = undefined; // the payee is gone
  await duo.payerInput({ kind: 'close' });
  duo.toPayee.length = 0;
  for (duo.tip; duo.tip < EXPIRY - 1;) await duo.mine(1);
  assert.equal(duo.payer.broadcasts.filter((b) => b.purpose === 'refund').length, 0, 'no refund before the tip reaches expiry');
  await duo.mine(1);
  const refunds = duo.payer.broadcasts.filter((b) => b.purpose === 'refund');
  assert.equal(refunds.length, 1);
  assert.equal(Transaction.fromBuffer(Buffer.from(refunds[0]!.tx)).locktime, EXPIRY);
  assert.equal(duo.checked.get('broadcast:refund'), 1);
  await duo.mine(1); // not confirmed yet: the same bytes again
  const again = duo.payer.broadcasts.filter((b) => b.purpose === 'refund');
  assert.equal(again.length, 2);
  assert.deepEqual(again[1]!.tx, again[0]!.tx);
});

test('the persist-before-speak checker rejects a send ahead of its persist, and one revealing unstored state', async () => {
  const { duo } = await openDuo([1_000n]);
  const before = duo.payer.record;
  const step = payerStep(before, { kind: 'pay', incrementMsat: 5_000n }, { tipHeight: duo.tip, ...PAYER_CTX });
  const sign = step.effects[0] as Extract<Effect, { kind: 'sign' }>;
  const signed = payerStep(before, { kind: 'signed', purpose: 'payment', amountMsat: 6_000n, signature: await signSpend(PAYER_SIGNER, before, sign.tx) }, { tipHeight: duo.tip, ...PAYER_CTX });
  assert.equal(checkPersistBeforeSpeak(before, signed, duo.payer.durable), 1, 'the real step passes');
  const [persistEffect, sendEffect] = signed.effects as [Effect, Effect];
  assert.throws(() => checkPersistBeforeSpeak(before, { record: signed.record, effects: [sendEffect, persistEffect] }, duo.payer.durable), /precedes any persist/);
  // Same record object (no persist needed), but the message reveals a payment that is not stored.
  assert.throws(() => checkPersistBeforeSpeak(before, { record: before, effects: [sendEffect] }, duo.payer.durable), /payment not stored/);
});

// ---- rejections: same record object, exactly [warning, rejected] ----

function assertRejected<R extends OnewayRecord>(record: R, step: Step<R>, code: ChannelErrorCode, what: string): void {
  assert.equal(step.record, record, `${what}: the identical record object comes back`);
  assert.equal(step.effects.length, 2, `${what}: exactly two effects`);
  const event = step.effects[1]!;
  assert.ok(event.kind === 'event' && event.event.type === 'rejected', `${what}: second effect is the rejected event`);
  const text = event.event.message;
  assert.ok(typeof text === 'string' && text.length > 0);
  assert.deepEqual(step.effects, [
    { kind: 'send', message: { type: 'warning', channelId: record.channelId ?? record.tempChannelId, code: CHANNEL_WIRE_CODES[code], message: text } },
    { kind: 'event', event: { type: 'rejected', code, message: text } },
  ], `${what}: [warning ${code}, rejected ${code}]`);
}

test('[§3.3] every refused input returns the identical record and exactly [warning, rejected event]', async () => {
  const { duo, pays } = await openDuo([1_000_000n, 2_000_000n, 3_000_000n]);
  const payee = duo.payee!;
  const open = payee.record;
  const last = open.payment;
  const max = maxPaymentMsat(channelTerms(open));
  const next = last.amountMsat + 1_000_000n;
  const ctx = { tipHeight: duo.tip, ...PAYEE_CTX };
  const payMsg = (paymentNumber: bigint, amountMsat: bigint, signature: Uint8Array): PayeeInput =>
    ({ kind: 'message', message: { type: 'oneway_pay', channelId: open.channelId!, paymentNumber, amountMsat, signature } });
  const random64 = () => crypto.getRandomValues(new Uint8Array(64));
  const phaseOf = (phase: PayeeRecord['phase']) => payee.history.find((r) => r.phase === phase)!;
  const accepted = phaseOf('accepted');
  const refundSigned = phaseOf('refund_signed');
  const funded = phaseOf('funded');
  const refundRequest = duo.payer.sent.find((m) => m.type === 'oneway_refund_request')!;
  const fundedMsg = duo.payer.sent.find((m) => m.type === 'oneway_funded')!;
  assert.ok(refundRequest.type === 'oneway_refund_request' && fundedMsg.type === 'oneway_funded');

  const cases: Array<[string, PayeeRecord, PayeeInput, ChannelErrorCode, number?]> = [
    ['replay of payment 1', open, { kind: 'message', message: pays[0]! }, 'PAYMENT_REPLAYED'],
    ['replay of payment 2', open, { kind: 'message', message: pays[1]! }, 'PAYMENT_REPLAYED'],
    ['latest number, other amount', open, payMsg(last.number, next, await paySig(open, next)), 'PAYMENT_REPLAYED'],
    ['lower amount, higher number', open, payMsg(last.number + 1n, 2_500_000n, await paySig(open, 2_500_000n)), 'AMOUNT_NOT_INCREASING'],
    ['equal amount, higher number', open, payMsg(last.number + 1n, last.amountMsat, last.signature!), 'AMOUNT_NOT_INCREASING'],
    ['one msat over capacity', open, payMsg(last.number + 1n, max + 1n, random64()), 'CAPACITY_EXCEEDED'],
    ['random signature', open, payMsg(last.number + 1n, next, random64()), 'BAD_SIGNATURE'],
    ['signature by a stranger key', open, payMsg(last.number + 1n, next, await paySig(open, next, STRANGER_SIGNER)), 'BAD_SIGNATURE'],
    ['signature by the payee key', open, payMsg(last.number + 1n, next, await paySig(open, next, PAYEE_SIGNER)), 'BAD_SIGNATURE'],
    ['payer signature for another amount', open, payMsg(last.number + 1n, next + 1_000n, await paySig(open, next)), 'BAD_SIGNATURE'],
    ['valid payment within the settle margin', open, payMsg(last.number + 1n, next, await paySig(open, next)), 'CHANNEL_CLOSING', EXPIRY - DEFAULT_PAYEE_POLICY.settleMarginBlocks],
    ['valid payment to a failed channel', { ...open, failure: { code: 'PEER_ERROR', message: 'x' } }, payMsg(last.number + 1n, next, await paySig(open, next)), 'CHANNEL_CLOSING'],
    ['valid payment while closing', { ...open, phase: 'closing' }, payMsg(last.number + 1n, next, await paySig(open, next)), 'CHANNEL_CLOSING'],
    ['payment before the channel is open', funded, payMsg(1n, 1_000n, await paySig(open, 1_000n)), 'BAD_STATE'],
    ['refund request once open', open, { kind: 'message', message: { ...refundRequest, fundingVout: refundRequest.fundingVout + 1 } }, 'BAD_STATE'],
    ['refund request for another value', accepted, { kind: 'message', message: { ...refundRequest, fundingValueSat: CAPACITY_SAT + 1n } }, 'FUNDING_MISMATCH'],
    ['refund request with vout ≥ 65536', accepted, { kind: 'message', message: { ...refundRequest, fundingVout: 0x10000 } }, 'FUNDING_MISMATCH'],
    ['funded before the refund is signed', accepted, { kind: 'message', message: fundedMsg }, 'BAD_STATE'],
    ['funded naming another outpoint', refundSigned, { kind: 'message', message: { ...fundedMsg, fundingVout: fundedMsg.fundingVout + 1 } }, 'FUNDING_MISMATCH'],
    ['funded with a channel id not derived from the outpoint', refundSigned, { kind: 'message', message: { ...fundedMsg, channelId: new Uint8Array(32).fill(9) } }, 'FUNDING_MISMATCH'],
    ['funded again with another channel id', open, { kind: 'message', message: { ...fundedMsg, channelId: new Uint8Array(32).fill(9) } }, 'FUNDING_MISMATCH'],
  ];
  for (const [what, record, input, code, tip] of cases) {
    const bytes = encodeRecord(record);
    const step = payeeStep(record, input, { ...ctx, tipHeight: tip ?? ctx.tipHeight });
    assertRejected(record, step, code, what);
    assert.deepEqual(encodeRecord(record), bytes, `${what}: the record was not mutated`);
  }
  // The in-margin case is refused only because of the margin: one block earlier the same message is accepted.
  const inMargin = cases.find((c) => c[0] === 'valid payment within the settle margin')!;
  const earlier = payeeStep(open, inMargin[2], { ...ctx, tipHeight: inMargin[4]! - 1 });
  assert.equal(earlier.record.payment.amountMsat, next);

  // The payer refuses an accept it did not ask for.
  const payerOpen = duo.payer.record;
  const accept = payee.sent.find((m) => m.type === 'oneway_accept')!;
  assertRejected(payerOpen, payerStep(payerOpen, { kind: 'message', message: { ...accept, minimumDepth: 2 } as never }, { tipHeight: duo.tip, ...PAYER_CTX }), 'BAD_STATE', 'accept when open');
});

// ---- the payee's amount under any sequence of payments ----

type Op =
  | { t: 'fresh'; inc: bigint }
  | { t: 'replay'; i: number }
  | { t: 'lower'; dec: bigint; bump: bigint }
  | { t: 'randomSig'; inc: bigint; sig: Uint8Array }
  | { t: 'wrongKey'; inc: bigint }
  | { t: 'flipBit'; inc: bigint; bit: number }
  | { t: 'otherAmount'; inc: bigint; delta: bigint }
  | { t: 'overCapacity'; extra: bigint };

const incArb = fc.bigInt({ min: 1n, max: 30_000_000n });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('fresh' as const), inc: incArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('replay' as const), i: fc.nat() }) },
  fc.record({ t: fc.constant('lower' as const), dec: fc.bigInt({ min: 0n, max: 40_000_000n }), bump: fc.bigInt({ min: 1n, max: 5n }) }),
  fc.record({ t: fc.constant('randomSig' as const), inc: incArb, sig: fc.uint8Array({ minLength: 64, maxLength: 64 }) }),
  fc.record({ t: fc.constant('wrongKey' as const), inc: incArb }),
  fc.record({ t: fc.constant('flipBit' as const), inc: incArb, bit: fc.nat({ max: 511 }) }),
  fc.record({ t: fc.constant('otherAmount' as const), inc: incArb, delta: fc.bigInt({ min: 1_000n, max: 5_000_000n }) }),
  fc.record({ t: fc.constant('overCapacity' as const), extra: fc.bigInt({ min: 1n, max: 10n ** 12n }) }),
);

test('[§3.3] property: no sequence of pays, replays, lower amounts or bad signatures lowers the payee amount; it equals the highest valid payment', async () => {
  const { duo } = await openDuo();
  const base = duo.payee!.record;
  const max = maxPaymentMsat(channelTerms(base));
  const ctx = { tipHeight: duo.tip, ...PAYEE_CTX };
  const sigCache = new Map<string, Uint8Array>();
  const sig = async (amountMsat: bigint, signer = PAYER_SIGNER, name = 'payer'): Promise<Uint8Array> => {
    const key = `${name}:${amountMsat}`;
    let s = sigCache.get(key);
    if (!s) sigCache.set(key, (s = await paySig(base, amountMsat, signer)));
    return s;
  };
  const stats = { accepted: 0, duplicates: 0, rejected: 0 };

  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 20 }), async (ops) => {
      let record = base;
      let durable = encodeRecord(base);
      // The genuine payer: the payments it signed, all delivered (some more than once, later).
      const genuine: OnewayPayMsg[] = [];
      let highestValid = 0n;
      for (const op of ops) {
        const last = record.payment;
        const msg = (paymentNumber: bigint, amountMsat: bigint, signature: Uint8Array): OnewayPayMsg =>
          ({ type: 'oneway_pay', channelId: base.channelId!, paymentNumber, amountMsat, signature });
        let message: OnewayPayMsg;
        let expect: 'accept' | 'duplicate' | ChannelErrorCode;
        const overOr = (amount: bigint, code: ChannelErrorCode): ChannelErrorCode => (amount > max ? 'CAPACITY_EXCEEDED' : code);
        switch (op.t) {
          case 'fresh': {
            const amount = last.amountMsat + op.inc;
            if (amount > max) continue; // the genuine payer refuses to sign beyond capacity
            message = msg(last.number + 1n, amount, await sig(amount));
            genuine.push(message);
            expect = 'accept';
            break;
          }
          case 'replay': {
            if (genuine.length === 0) continue;
            message = genuine[op.i % genuine.length]!;
            expect = message.paymentNumber === last.number ? 'duplicate' : 'PAYMENT_REPLAYED';
            break;
          }
          case 'lower': {
            const amount = last.amountMsat > op.dec ? last.amountMsat - op.dec : 0n;
            message = msg(last.number + op.bump, amount, await sig(amount));
            expect = 'AMOUNT_NOT_INCREASING';
            break;
          }
          case 'randomSig': {
            const amount = last.amountMsat + op.inc;
            message = msg(last.number + 1n, amount, op.sig);
            expect = overOr(amount, 'BAD_SIGNATURE');
            break;
          }
          case 'wrongKey': {
            const amount = last.amountMsat + op.inc;
            message = msg(last.number + 1n, amount, amount > max ? new Uint8Array(64) : await sig(amount, PAYEE_SIGNER, 'payee'));
            expect = overOr(amount, 'BAD_SIGNATURE');
            break;
          }
          case 'flipBit': {
            const amount = last.amountMsat + op.inc;
            const s = amount > max ? new Uint8Array(64) : Uint8Array.from(await sig(amount));
            s[op.bit >> 3]! ^= 1 << (op.bit & 7);
            message = msg(last.number + 1n, amount, s);
            expect = overOr(amount, 'BAD_SIGNATURE');
            break;
          }
          case 'otherAmount': {
            const amount = last.amountMsat + op.inc;
            const claimed = amount + op.delta;
            message = msg(last.number + 1n, claimed, amount > max ? new Uint8Array(64) : await sig(amount));
            expect = overOr(claimed, 'BAD_SIGNATURE');
            break;
          }
          case 'overCapacity':
            message = msg(last.number + 1n, max + op.extra, new Uint8Array(64).fill(1));
            expect = 'CAPACITY_EXCEEDED';
            break;
        }
        const step = payeeStep(record, { kind: 'message', message }, ctx);
        assert.ok(step.record.payment.amountMsat >= record.payment.amountMsat, 'the stored amount never decreases');
        if (expect === 'accept') {
          assert.notEqual(step.record, record);
          assert.deepEqual(step.record.payment, { number: message.paymentNumber, amountMsat: message.amountMsat, signature: message.signature });
          assert.deepEqual(step.effects.map((e) => e.kind), ['persist', 'event', 'send']);
          highestValid = message.amountMsat;
          stats.accepted++;
        } else if (expect === 'duplicate') {
          assert.equal(step.record, record);
          assert.deepEqual(step.effects, [{ kind: 'send', message: { type: 'oneway_pay_ack', channelId: base.channelId!, paymentNumber: last.number, amountMsat: last.amountMsat } }]);
          stats.duplicates++;
        } else {
          assertRejected(record, step, expect, op.t);
          stats.rejected++;
        }
        assert.equal(checkPersistBeforeSpeak(record, step, durable) <= 1, true);
        if (step.effects.some((e) => e.kind === 'persist')) {
          durable = encodeRecord(step.record);
          record = decodeRecord(durable) as PayeeRecord; // as if reloaded from disk
        }
        assert.equal(record.payment.amountMsat, highestValid, 'amount = highest valid payment accepted');
      }
      // Whatever the payee holds it can settle: the stored signature is the payer's over that amount.
      if (record.payment.signature) {
        assert.ok(verifyFundingSpend(record, paymentTransaction(record, record.payment.amountMsat), record.payerFundingPubkey, record.payment.signature));
      }
    }),
    { numRuns: 60, seed: 20240601 },
  );
  assert.ok(stats.accepted > 50 && stats.duplicates > 5 && stats.rejected > 100, `each outcome exercised: ${JSON.stringify(stats)}`);
});

test('[§3.3] a valid payment that skips a number is accepted (numbers only have to increase)', async () => {
  // §3.3 says "greater than": after a pay() timeout the payer signs on top of an unacknowledged payment,
  // and after a payee restart it resends only its latest payment, which covers every earlier one.
  const { duo } = await openDuo([1_000n]);
  const open = duo.payee!.record;
  const amount = 5_000n;
  const step = payeeStep(open, { kind: 'message', message: { type: 'oneway_pay', channelId: open.channelId!, paymentNumber: 3n, amountMsat: amount, signature: await paySig(open, amount) } }, { tipHeight: duo.tip, ...PAYEE_CTX });
  assert.equal(step.record.payment.number, 3n);
  assert.equal(step.record.payment.amountMsat, amount);
  assert.deepEqual(step.effects.map((e) => e.kind), ['persist', 'event', 'send'], 'stored, reported, then acknowledged');
});

// ---- the record codec ----

test('record codec: every state of both machines round-trips', async () => {
  const { duo } = await openDuo([1_000_000n, 2_345n]);
  await duo.payerInput({ kind: 'close' });
  await duo.pump();
  const settlement = duo.payee!.broadcasts.find((b) => b.purpose === 'settlement')!;
  await duo.confirmSpend(settlement.tx);
  const records: OnewayRecord[] = [...duo.payer.history, ...duo.payee!.history];
  const phases = new Set(records.map((r) => `${r.role}:${r.phase}`));
  for (const p of ['payer:proposed', 'payer:accepted', 'payer:refund_held', 'payer:funded', 'payer:open', 'payer:closing', 'payer:closed',
    'payee:accepted', 'payee:refund_signed', 'payee:funded', 'payee:open', 'payee:closing', 'payee:closed']) {
    assert.ok(phases.has(p), `a record in ${p}`);
  }
  for (const record of records) {
    const bytes = encodeRecord(record);
    const decoded = decodeRecord(bytes);
    assert.deepEqual(decoded, record);
    assert.deepEqual(decodeRecord(encodeRecord(decoded)), record, 'and again (key order may differ, content may not)');
  }
});

test('record codec: truncated, mistyped, unknown-phase, huge and malformed records are CORRUPT_RECORD', async () => {
  const { duo } = await openDuo([1_000_000n]);
  const payer = duo.payer.record;
  const payee = duo.payee!.record;
  for (const record of [payer, payee]) {
    const bytes = encodeRecord(record);
    for (let cut = 0; cut < bytes.length; cut++) {
      assert.throws(() => decodeRecord(bytes.subarray(0, cut)), isCorrupt, `${record.role} truncated to ${cut} bytes`);
    }
  }

  const json = JSON.parse(new TextDecoder().decode(encodeRecord(payer))) as { v: number; r: Record<string, unknown> };
  const variant = (edit: (o: { v: unknown; r: Record<string, unknown> }) => void): Uint8Array => {
    const copy = structuredClone(json) as { v: unknown; r: Record<string, unknown> };
    edit(copy);
    return new TextEncoder().encode(JSON.stringify(copy));
  };
  const r = json.r;
  assert.equal(r['capacitySat'], `n:${CAPACITY_SAT}`, 'the codec tags bigints');
  const payment = r['payment'] as Record<string, unknown>;
  const corrupt: Array<[string, Uint8Array]> = [
    ['not JSON', new TextEncoder().encode('{"v":1,"r":')],
    ['not UTF-8', Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d)],
    ['a JSON array', new TextEncoder().encode('[1,2]')],
    ['JSON null', new TextEncoder().encode('null')],
    ['unknown version', variant((o) => { o.v = 2; })],
    ['record is an array', variant((o) => { o.r = [] as never; })],
    ['unknown role', variant((o) => { o.r['role'] = 's:observer'; })],
    ['unknown payer phase', variant((o) => { o.r['phase'] = 's:flying'; })],
    ['payee-only phase on a payer', variant((o) => { o.r['phase'] = 's:refund_signed'; })],
    ['payer-only phase on a payee', variant((o) => { o.r['role'] = 's:payee'; o.r['phase'] = 's:proposed'; })],
    ['capacity as a JSON number', variant((o) => { o.r['capacitySat'] = 200000; })],
    ['capacity as text', variant((o) => { o.r['capacitySat'] = 's:200000'; })],
    ['capacity negative', variant((o) => { o.r['capacitySat'] = 'n:-1'; })],
    ['capacity in exponent form', variant((o) => { o.r['capacitySat'] = 'n:2e5'; })],
    ['capacity of 41 digits', variant((o) => { o.r['capacitySat'] = `n:${'9'.repeat(41)}`; })],
    ['expiry as a bigint', variant((o) => { o.r['expiryHeight'] = `n:${EXPIRY}`; })],
    ['expiry fractional', variant((o) => { o.r['expiryHeight'] = 1.5; })],
    ['expiry negative', variant((o) => { o.r['expiryHeight'] = -1; })],
    ['unknown tag', variant((o) => { o.r['capacitySat'] = 'q:1'; })],
    ['odd-length hex', variant((o) => { o.r['tempChannelId'] = 'x:abc'; })],
    ['upper-case hex', variant((o) => { o.r['tempChannelId'] = `x:${'AB'.repeat(32)}`; })],
    ['temp id of 31 bytes', variant((o) => { o.r['tempChannelId'] = `x:${'ab'.repeat(31)}`; })],
    ['funding key of 32 bytes', variant((o) => { o.r['payerFundingPubkey'] = `x:${'02'.repeat(32)}`; })],
    ['peer not a node id', variant((o) => { o.r['peer'] = 's:somebody'; })],
    ['payment is null', variant((o) => { o.r['payment'] = null; })],
    ['payment signature of 63 bytes', variant((o) => { o.r['payment'] = { ...payment, signature: `x:${'11'.repeat(63)}` }; })],
    ['payment number missing', variant((o) => { o.r['payment'] = { ...payment, number: undefined }; })],
    ['outpoint txid not hex', variant((o) => { o.r['fundingOutpoint'] = { txid: 's:zz', vout: 0 }; })],
    ['unknown failure code', variant((o) => { o.r['failure'] = { code: 's:NOPE', message: 's:x' }; })],
    ['readyReceived as text', variant((o) => { o.r['readyReceived'] = 's:true'; })],
    ['acked missing', variant((o) => { delete o.r['acked']; })],
    ['funding inputs not an array', variant((o) => { o.r['fundingInputs'] = { length: 1 }; })],
    ['unknown key family', variant((o) => { (o.r['fundingInputs'] as Array<Record<string, unknown>>)[0]!['keyFamily'] = 's:root'; })],
    ['service id over 1024 characters', variant((o) => { o.r['service'] = { ...(o.r['service'] as object), serviceId: `s:${'a'.repeat(2000)}` }; })],
    ['huge: over 64 KiB', variant((o) => { o.r['padding'] = `s:${'a'.repeat(70 * 1024)}`; })],
  ];
  for (const [what, bytes] of corrupt) {
    assert.throws(() => decodeRecord(bytes), isCorrupt, what);
  }
  // Unknown extra fields within the size limit are ignored (the decoder picks the fields it knows).
  assert.deepEqual(decodeRecord(variant((o) => { o.r['note'] = 's:extra'; })), payer);
});

test('record codec: deeply nested JSON within the size limit is CORRUPT_RECORD, not a stack overflow', () => {
  // 4000 levels is 8 KB, well under the 64 KiB limit; untag() recurses once per level.
  for (const depth of [100, 4000, 20_000]) {
    const nested = new TextEncoder().encode(`{"v":1,"r":{"role":"s:payee","x":${'['.repeat(depth)}${']'.repeat(depth)}}}`);
    let thrown: unknown;
    try {
      decodeRecord(nested);
    } catch (error) {
      thrown = error;
    }
    assert.ok(isCorrupt(thrown), `${depth} levels (${nested.length} bytes): expected ChannelError CORRUPT_RECORD, got ${(thrown as Error)?.name}: ${(thrown as Error)?.message}`);
  }
});

test('record codec (property): any mutation of a stored record either decodes to a valid record or is CORRUPT_RECORD', async () => {
  const { duo } = await openDuo([1_000_000n]);
  const samples = [duo.payer.record, duo.payee!.record].map((r) => encodeRecord(r));
  fc.assert(
    fc.property(
      fc.constantFrom(...samples),
      fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
      (bytes, edits) => {
        const mutated = Uint8Array.from(bytes);
        for (const { at, byte } of edits) mutated[at % mutated.length] = byte;
        try {
          const record = decodeRecord(mutated);
          assert.ok(record.role === 'payer' || record.role === 'payee');
          assert.deepEqual(decodeRecord(encodeRecord(record)), record);
        } catch (error) {
          assert.ok(isCorrupt(error), `only CORRUPT_RECORD may be thrown, got ${(error as Error)?.name}: ${(error as Error)?.message}`);
        }
      },
    ),
    { numRuns: 2000, seed: 7 },
  );
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
      try {
        decodeRecord(new TextEncoder().encode(JSON.stringify({ v: 1, r: value })));
        assert.fail('arbitrary JSON is not a record');
      } catch (error) {
        assert.ok(isCorrupt(error), `only CORRUPT_RECORD may be thrown, got ${(error as Error)?.name}: ${(error as Error)?.message}`);
      }
    }),
    { numRuns: 500, seed: 8 },
  );
});

// ---- §3.3 resume ----

test('[§3.3] resume: a payee one payment behind gets the identical oneway_pay again, and stores it once', async () => {
  const { duo } = await openDuo([1_000_000n, 2_000_000n, 3_000_000n]);
  const payee = duo.payee!;
  // Payment 4 is signed, stored and sent, but lost on the way.
  await duo.payerInput({ kind: 'pay', incrementMsat: 500_000n });
  const lost = duo.toPayee.pop() as OnewayPayMsg;
  assert.equal(lost.paymentNumber, 4n);
  assert.equal(payee.record.payment.number, 3n);

  // The payee's resume reports 3: the payer answers with exactly the lost message, changing nothing.
  const payerBefore = duo.payer.record;
  const step = await duo.payerInput({ kind: 'message', message: { type: 'oneway_resume', channelId: lost.channelId, latestPaymentNumber: 3n, latestAmountMsat: 6_000_000n } });
  assert.equal(step.record, payerBefore);
  assert.equal(step.effects.length, 1);
  const resent = (step.effects[0] as Extract<Effect, { kind: 'send' }>).message;
  assert.deepEqual(encodeMessage(resent), encodeMessage(lost), 'byte-identical: same number, amount and signature');
  duo.toPayee.length = 0;

  // The same through a full reconnect: both resync, the exchange restores payment 4, stored exactly once.
  const paymentsBefore = payee.events.filter((e) => e.type === 'payment').length;
  await duo.payerInput({ kind: 'resync' });
  await duo.payeeInput({ kind: 'resync' });
  await duo.pump();
  const stored = payee.events.filter((e) => e.type === 'payment').slice(paymentsBefore);
  assert.deepEqual(stored, [{ type: 'payment', number: 4n, amountMsat: 6_500_000n, incrementMsat: 500_000n }]);
  assert.deepEqual(payee.record.payment.signature, lost.signature);
  assert.deepEqual(duo.payer.record.acked, { number: 4n, amountMsat: 6_500_000n });
  assert.equal(duo.payer.record.failure, undefined);

  // A payee level with the payer only confirms (restores a lost ack), it never triggers a resend.
  const level = await duo.payerInput({ kind: 'message', message: { type: 'oneway_resume', channelId: lost.channelId, latestPaymentNumber: 4n, latestAmountMsat: 6_500_000n } });
  assert.equal(level.record, duo.payer.history.at(-2));
  assert.deepEqual(level.effects, []);
});

test('[§3.3] resume: a peer reporting a payment the payer never signed makes the payer fail the channel', async () => {
  const { duo } = await openDuo([1_000_000n, 2_000_000n]);
  const payer = duo.payer.record; // payment 2, 3,000,000 msat
  const channelId = payer.channelId!;
  const resume = (latestPaymentNumber: bigint, latestAmountMsat: bigint): PayerInput =>
    ({ kind: 'message', message: { type: 'oneway_resume', channelId, latestPaymentNumber, latestAmountMsat } });
  const cases: Array<[string, PayerInput]> = [
    ['a higher number', resume(3n, 4_000_000n)],
    ['a higher number, same amount', resume(3n, 3_000_000n)],
    ['the latest number with another amount', resume(2n, 3_000_001n)],
    ['the latest number with a lower amount', resume(2n, 1_000_000n)],
    ['an older number with the latest amount', resume(1n, 3_000_000n)],
    ['an older number with a higher amount', resume(1n, 9_000_000n)],
    ['an ack for a payment never signed', { kind: 'message', message: { type: 'oneway_pay_ack', channelId, paymentNumber: 3n, amountMsat: 4_000_000n } }],
  ];
  for (const [what, input] of cases) {
    const step = payerStep(payer, input, { tipHeight: duo.tip, ...PAYER_CTX });
    assert.deepEqual(step.record.failure?.code, 'PEER_STATE_MISMATCH', what);
    assert.equal(step.record.phase, 'open', `${what}: money may be committed, so the channel waits for the chain`);
    assert.deepEqual(step.record.payment, payer.payment, `${what}: nothing new signed`);
    assert.deepEqual(step.effects.map((e) => e.kind), ['persist', 'send', 'event'], `${what}: failure stored before the error goes out`);
    const error = (step.effects[1] as Extract<Effect, { kind: 'send' }>).message;
    assert.ok(error.type === 'error' && error.code === CHANNEL_WIRE_CODES.PEER_STATE_MISMATCH && equalBytes(error.channelId!, channelId), what);
    assert.deepEqual((step.effects[2] as Extract<Effect, { kind: 'event' }>).event.type, 'failed');
    assert.equal(checkPersistBeforeSpeak(payer, step, encodeRecord(payer)), 0);
    // A failed channel signs nothing more.
    assert.throws(() => payerStep(step.record, { kind: 'pay', incrementMsat: 1_000n }, { tipHeight: duo.tip, ...PAYER_CTX }),
      (e: unknown) => e instanceof ChannelError && e.code === 'PEER_STATE_MISMATCH', what);
  }
});

test('[§3.3] resume at the payee: it reports what it stored, re-acks when level, and never changes state', async () => {
  const { duo } = await openDuo([1_000_000n, 2_000_000n]);
  const payee = duo.payee!.record;
  const channelId = payee.channelId!;
  const ctx = { tipHeight: duo.tip, ...PAYEE_CTX };
  const ours = { type: 'oneway_resume', channelId, latestPaymentNumber: 2n, latestAmountMsat: 3_000_000n } as const;
  const ack = { type: 'oneway_pay_ack', channelId, paymentNumber: 2n, amountMsat: 3_000_000n } as const;
  const at = (latestPaymentNumber: bigint, latestAmountMsat: bigint): PayeeInput =>
    ({ kind: 'message', message: { type: 'oneway_resume', channelId, latestPaymentNumber, latestAmountMsat } });
  const level = payeeStep(payee, at(2n, 3_000_000n), ctx);
  assert.equal(level.record, payee);
  assert.deepEqual(level.effects, [{ kind: 'send', message: ack }, { kind: 'send', message: ours }]);
  for (const [what, input] of [['payer ahead', at(3n, 4_000_000n)], ['payer behind', at(1n, 1_000_000n)], ['payer lying', at(2n, 9n)]] as const) {
    const step = payeeStep(payee, input, ctx);
    assert.equal(step.record, payee, what);
    assert.deepEqual(step.effects, [{ kind: 'send', message: ours }], what);
  }
});

test('[§3.2] the payer never signs the funding without a valid refund signature', async () => {
  const duo = new Duo();
  await duo.propose();
  // Deliver the propose and the accept; hold the refund signature.
  await duo.deliverToPayee(duo.toPayee.shift()!);
  await duo.deliverToPayer(duo.toPayer.shift()!);
  await duo.deliverToPayee(duo.toPayee.shift()!);
  const refundSigned = duo.toPayer.shift()!;
  assert.equal(refundSigned.type, 'oneway_refund_signed');
  const accepted = duo.payer.record;
  assert.equal(accepted.phase, 'accepted');
  for (const [what, signature] of [
    ['random bytes', crypto.getRandomValues(new Uint8Array(64))],
    ['the payer\'s own signature', await signSpend(PAYER_SIGNER, accepted, refundTransaction(accepted).toBuffer())],
    ['the payee\'s signature on a payment instead', await signSpend(PAYEE_SIGNER, accepted, paymentTransaction(accepted, 1_000_000n).toBuffer(), 0)],
  ] as const) {
    const step = payerStep(accepted, { kind: 'message', message: { ...refundSigned, refundSignature: signature } as never }, { tipHeight: duo.tip, ...PAYER_CTX });
    assert.equal(step.record.phase, 'aborted', what);
    assert.ok(!step.effects.some((e) => e.kind === 'sign-funding' || e.kind === 'broadcast'), `${what}: no funding signed or sent`);
    assert.equal(step.record.failure?.code, 'BAD_SIGNATURE');
  }
  // The genuine one: stored first, then (and only then) the funding is signed.
  const step = payerStep(accepted, { kind: 'message', message: refundSigned as never }, { tipHeight: duo.tip, ...PAYER_CTX });
  assert.deepEqual(step.effects.map((e) => e.kind), ['persist', 'event', 'sign-funding']);
  assert.equal(step.record.phase, 'refund_held');
  assert.ok(step.record.fundingOutpoint && fundingOutputScriptOf(step.record).length === 34);
});

test('[§3.3] a payer restarted after storing a payment the payee never got, closing at once, still settles for it', async () => {
  // Found by the crash harness: close_request went out before the resume exchange resent the payment, and
  // the payee settled one payment short.
  const { duo } = await openDuo([1_000_000n, 1_000_000n]);
  await duo.payerInput({ kind: 'pay', incrementMsat: 1_000_000n });
  duo.toPayee.length = 0; // the third payment is stored by the payer, then the process dies before it leaves
  duo.payer.record = decodeRecord(persist(duo.payer.record)) as PayerRecord; // the restart reads it back
  await duo.payerInput({ kind: 'resync' });
  await duo.payerInput({ kind: 'close' }); // nothing left to pay: close at once, before the payee's resume arrives
  await duo.payeeInput({ kind: 'resync' });
  await duo.pump();
  const settlement = duo.payee!.broadcasts.find((b) => b.purpose === 'settlement');
  assert.ok(settlement);
  await duo.confirmSpend(settlement.tx);
  assert.equal(duo.payee!.record.outcome?.payeeValueSat, 3_000n, 'the payee settled with every payment the payer signed');
});

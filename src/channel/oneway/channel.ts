/**
 * OnewayChannel: the application's handle on one channel, for either side. Payers call pay(), stream()
 * and close(); both sides read its state and listen to its events.
 */
import { bytesToHex } from '../../bytes.js';
import { maxPaymentMsat } from '../../onchain/oneway.js';
import { startStream, type StreamHandle, type StreamOptions } from '../../metering/stream.js';
import type { Meter } from '../../metering/meter.js';
import type { Tariff } from '../../metering/tariff.js';
import type { NodeId, Unsubscribe } from '../../transport/port.js';
import type { ChannelEvent } from './core.js';
import { ChannelError } from './errors.js';
import { ChannelEvents, type Until } from '../waiters.js';
import type { ChannelSlot, OnewayNode } from './node.js';
import type { ChannelOutcome, OnewayRecord, PayerRecord, ServiceTerms } from './state.js';
import { channelTerms } from './terms.js';

/** How many signed payments may wait for their acknowledgement at once (pay() calls beyond it wait). */
export const MAX_UNACKED_PAYMENTS = 64n;

export interface PaymentReceipt {
  paymentNumber: bigint;
  /** Cumulative, acknowledged by the payee. */
  amountMsat: bigint;
}


export class OnewayChannel {
  readonly #node: OnewayNode;
  readonly #slot: ChannelSlot;
  readonly #events: ChannelEvents<ChannelEvent, OnewayRecord>;
  #payChain: Promise<unknown> = Promise.resolve();

  constructor(node: OnewayNode, slot: ChannelSlot) {
    this.#node = node;
    this.#slot = slot;
    this.#events = new ChannelEvents(() => node.clock);
  }

  /** Channel id (hex) once funded, the temporary id before. */
  get id(): string {
    return bytesToHex(this.#slot.record.channelId ?? this.#slot.record.tempChannelId);
  }
  get role(): 'payer' | 'payee' {
    return this.#slot.record.role;
  }
  get peer(): NodeId {
    return this.#slot.record.peer;
  }
  get phase(): OnewayRecord['phase'] {
    return this.#slot.record.phase;
  }
  get capacitySat(): bigint {
    return this.#slot.record.capacitySat;
  }
  get expiryHeight(): number {
    return this.#slot.record.expiryHeight;
  }
  get service(): ServiceTerms {
    return this.#slot.record.service;
  }
  get fundingTxid(): string | undefined {
    return this.#slot.record.fundingOutpoint?.txid;
  }
  /** Payer: acknowledged by the payee. Payee: stored. Cumulative msat. */
  get paidMsat(): bigint {
    const r = this.#slot.record;
    return r.role === 'payer' ? r.acked.amountMsat : r.payment.amountMsat;
  }
  /** The latest payment number (payer: acknowledged; payee: stored). */
  get payments(): bigint {
    const r = this.#slot.record;
    return r.role === 'payer' ? r.acked.number : r.payment.number;
  }
  /** Payer: the latest amount it signed (≥ paidMsat). */
  get signedMsat(): bigint {
    return this.#slot.record.payment.amountMsat;
  }
  get outcome(): ChannelOutcome | undefined {
    return this.#slot.record.outcome;
  }
  get failure(): { code: string; message: string } | undefined {
    return this.#slot.record.failure;
  }
  /** A copy of the stored state, for status displays. */
  snapshot(): Readonly<OnewayRecord> {
    return { ...this.#slot.record };
  }

  /** How much more (msat) the channel can carry. */
  headroomMsat(): bigint {
    return maxPaymentMsat(channelTerms(this.#slot.record)) - this.#slot.record.payment.amountMsat;
  }

  onEvent(listener: (event: ChannelEvent) => void): Unsubscribe {
    return this.#events.onEvent(listener);
  }

  /**
   * Pay `incrementMsat` more (payer). The payment is signed, stored, sent, and the promise resolves once
   * the payee acknowledged it. Concurrent calls are pipelined: each is its own signed payment, taken in call
   * order, and up to MAX_UNACKED_PAYMENTS may wait for their acknowledgements at once.
   */
  pay(incrementMsat: bigint): Promise<PaymentReceipt> {
    const signed = this.#payChain.then(() => this.#signNext(incrementMsat));
    this.#payChain = signed.catch(() => undefined);
    return signed.then(({ receipt, acked }) => this.#acknowledged(receipt, acked));
  }

  async #signNext(incrementMsat: bigint): Promise<{ receipt: PaymentReceipt; acked: { promise: Promise<boolean>; cancel: () => void } }> {
    if (this.role !== 'payer') throw new ChannelError('BAD_STATE', 'only the payer pays');
    const record = () => this.#slot.record as PayerRecord;
    if (record().payment.number - record().acked.number >= MAX_UNACKED_PAYMENTS) {
      await this.#wait(
        (event, r) => {
          if (event.type === 'rejected') throw new ChannelError(event.code, `payee refused a payment: ${event.message}`);
          return r.role === 'payer' && r.payment.number - r.acked.number < MAX_UNACKED_PAYMENTS;
        },
        this.#node.payTimeoutMs,
      ).promise;
    }
    let target: bigint | undefined;
    const acked = this.#wait(
      (event, r) => {
        if (event.type === 'rejected') throw new ChannelError(event.code, `payee refused the payment: ${event.message}`);
        return target !== undefined && r.role === 'payer' && r.acked.number >= target;
      },
      this.#node.payTimeoutMs,
    );
    try {
      await this.#node.command(this.#slot, { kind: 'pay', incrementMsat });
    } catch (error) {
      acked.cancel();
      throw error;
    }
    target = record().payment.number;
    return { receipt: { paymentNumber: target, amountMsat: record().payment.amountMsat }, acked };
  }

  async #acknowledged(receipt: PaymentReceipt, acked: { promise: Promise<boolean>; cancel: () => void }): Promise<PaymentReceipt> {
    if ((this.#slot.record as PayerRecord).acked.number >= receipt.paymentNumber) acked.cancel();
    else await acked.promise;
    return receipt;
  }

  /**
   * Pay as a meter advances (payer): the first credit window up front, then whatever the window allows,
   * never more than the channel can carry. Priced with the channel's tariff unless `tariff` is given.
   */
  stream(meter: Meter, options: Omit<StreamOptions, 'meter' | 'tariff' | 'pay' | 'windowUnits'> & { tariff?: Tariff; windowUnits?: bigint } = {}): StreamHandle {
    const service = this.service;
    return startStream({
      clock: this.#node.clock,
      maxMsat: this.headroomMsat(),
      ...options,
      meter,
      tariff: options.tariff ?? { unit: service.unit, msatPerUnit: service.tariffMsatPerUnit },
      windowUnits: options.windowUnits ?? service.creditWindowUnits,
      pay: async (incrementMsat) => {
        await this.pay(incrementMsat);
      },
    });
  }

  /**
   * Close (payer): ask the payee to settle and resolve with what the chain says happened — the payee's
   * settlement, or our refund once the lock expires if the payee does not settle. Before funding, the
   * open is abandoned and the promise resolves with undefined.
   */
  async close(): Promise<ChannelOutcome | undefined> {
    await this.#node.command(this.#slot, this.role === 'payer' ? { kind: 'close' } : { kind: 'settle' });
    return this.waitForOutcome();
  }

  /** Resolves once the funding output's spend is confirmed (or undefined if the open was abandoned). */
  async waitForOutcome(): Promise<ChannelOutcome | undefined> {
    const r = this.#slot.record;
    if (r.phase === 'closed' || r.phase === 'aborted') return r.outcome;
    await this.#wait((_e, record) => record.phase === 'closed' || record.phase === 'aborted').promise;
    return this.#slot.record.outcome;
  }

  /** Resolves when the channel is open (payer: after the funding has the agreed depth). */
  async waitUntilOpen(): Promise<this> {
    const check = (record: OnewayRecord): boolean => {
      if (record.phase === 'aborted') throw new ChannelError(record.failure?.code as never ?? 'BAD_STATE', `open failed: ${record.failure?.message ?? 'aborted'}`);
      if (record.phase === 'closing' || record.phase === 'closed') throw new ChannelError('CHANNEL_CLOSING', 'channel closed before it opened');
      return record.phase === 'open';
    };
    if (check(this.#slot.record)) return this;
    await this.#wait((_e, record) => check(record)).promise;
    return this;
  }

  // ---- runtime side ----

  /** Called by the runtime for every event of this channel. */
  deliver(event: ChannelEvent): void {
    this.#events.deliver(event, this.#slot.record);
  }

  shutdown(error: Error): void {
    this.#events.shutdown(error);
  }

  #wait(until: Until<ChannelEvent, OnewayRecord, boolean>, timeoutMs?: number): { promise: Promise<boolean>; cancel: () => void } {
    return this.#events.wait(until, timeoutMs, () => new ChannelError('TIMEOUT', 'no acknowledgement from the payee in time'));
  }
}

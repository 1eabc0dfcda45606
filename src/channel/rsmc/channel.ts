/**
 * RsmcChannel: the application's handle on one revocable channel, for either side. Both sides pay(),
 * close() and read the channel's state; events arrive through onEvent().
 */
import { bytesToHex } from '../../bytes.js';
import type { NodeId, Unsubscribe } from '../../transport/port.js';
import { RsmcError } from './errors.js';
import { ChannelEvents, type Until } from '../waiters.js';
import type { RsmcChannelSlot, RsmcNode } from './node.js';
import type { RsmcEvent, RsmcOutcome, RsmcPhase, RsmcRecord, RsmcRole, Spec } from './types.js';

export interface RsmcPaymentReceipt {
  /** Our update id (BOLT 2 style, counted from 0 per side). */
  id: bigint;
  amountMsat: bigint;
}


export class RsmcChannel {
  readonly #node: RsmcNode;
  readonly #slot: RsmcChannelSlot;
  readonly #events: ChannelEvents<RsmcEvent, RsmcRecord>;

  constructor(node: RsmcNode, slot: RsmcChannelSlot) {
    this.#node = node;
    this.#slot = slot;
    this.#events = new ChannelEvents(() => node.clock);
  }

  /** Channel id (hex) once the funding transaction is known, the temporary id before. */
  get id(): string {
    return bytesToHex(this.#slot.record.channelId ?? this.#slot.record.tempChannelId);
  }
  get peer(): NodeId {
    return this.#slot.record.peer;
  }
  get role(): RsmcRole {
    return this.#slot.record.role;
  }
  get phase(): RsmcPhase {
    return this.#slot.record.phase;
  }
  /** Both sides' funding together. */
  get capacitySat(): bigint {
    return this.#slot.record.fundingSat;
  }
  get fundingTxid(): string | undefined {
    return this.#slot.record.fundingOutpoint?.txid;
  }
  /** Balances of our current commitment, ours first (undefined before the first commitment is signed). */
  get balances(): Spec | undefined {
    const spec = this.#slot.record.localCommit?.spec;
    return spec && { localMsat: spec.localMsat, remoteMsat: spec.remoteMsat };
  }
  /** Updates irrevocably committed on both sides, both directions (survives restarts). */
  get updates(): bigint {
    return this.#slot.record.sentCount + this.#slot.record.receivedCount;
  }
  get outcome(): RsmcOutcome | undefined {
    return this.#slot.record.outcome;
  }
  get failure(): { code: string; message: string } | undefined {
    return this.#slot.record.failure;
  }
  /** A copy of the current record, for status displays (it holds no secret of ours). */
  snapshot(): Readonly<RsmcRecord> {
    return { ...this.#slot.record };
  }

  onEvent(listener: (event: RsmcEvent) => void): Unsubscribe {
    return this.#events.onEvent(listener);
  }

  /**
   * Pay `amountMsat` to the peer. Resolves once the transfer is irrevocably in both sides' commitments;
   * rejects with the machine's RsmcError if it is refused (INSUFFICIENT_BALANCE, CHANNEL_CLOSING, …), if it
   * is dropped before being signed (a reconnect), if the channel fails or closes first, or with TIMEOUT
   * after payTimeoutMs. Calls may overlap: the channel batches them into one commitment_signed.
   */
  async pay(amountMsat: bigint): Promise<RsmcPaymentReceipt> {
    if (typeof amountMsat !== 'bigint' || amountMsat <= 0n) throw new RangeError('"amountMsat" expected a positive bigint');
    const ref = this.#node.nextRef();
    const done = this.#wait<RsmcPaymentReceipt>((event) => {
      switch (event.type) {
        case 'payment-sent':
          return event.ref === ref ? { id: event.id, amountMsat: event.amountMsat } : undefined;
        case 'payment-failed':
          if (event.ref === ref) throw new RsmcError(event.code, `payment failed: ${event.message}`);
          return undefined;
        case 'failed':
          throw new RsmcError(event.code, `channel failed: ${event.message}`);
        case 'closing':
        case 'closed':
          throw new RsmcError('CHANNEL_CLOSING', 'the channel closed before the payment was committed');
        default:
          return undefined;
      }
    }, this.#node.payTimeoutMs);
    try {
      await this.#node.command(this.#slot, { kind: 'pay', amountMsat, ref });
    } catch (error) {
      done.cancel();
      done.promise.catch(() => undefined); // settled already if an event of the refused command rejected it
      throw error;
    }
    return done.promise;
  }

  /**
   * Close: cooperatively (shutdown, then closing_signed) by default, else by broadcasting our latest
   * commitment (our share then waits out the peer's to_self_delay). Resolves with the outcome once the
   * channel is resolved on chain; rejects if the channel is abandoned before it was funded.
   */
  async close({ cooperative = true }: { cooperative?: boolean } = {}): Promise<RsmcOutcome> {
    const record = this.#slot.record;
    if (record.phase === 'closed' && record.outcome) return record.outcome;
    const outcome = this.waitForOutcome();
    try {
      await this.#node.command(this.#slot, { kind: 'close', cooperative });
    } catch (error) {
      outcome.catch(() => undefined);
      throw error;
    }
    return outcome;
  }

  /** Resolves with the outcome once the channel is closed; rejects if it is abandoned before funding. */
  async waitForOutcome(): Promise<RsmcOutcome> {
    const check = (record: RsmcRecord): RsmcOutcome | undefined => {
      if (record.phase === 'aborted') throw new RsmcError(record.failure?.code ?? 'BAD_STATE', `the channel was abandoned before it opened: ${record.failure?.message ?? 'aborted'}`);
      return record.phase === 'closed' ? record.outcome : undefined;
    };
    const now = check(this.#slot.record);
    if (now) return now;
    return this.#wait<RsmcOutcome>((_event, record) => check(record)).promise;
  }

  /** Resolves when the channel is open; rejects if the open fails or the channel closes first. */
  async waitUntilOpen(): Promise<this> {
    const check = (event: RsmcEvent | undefined, record: RsmcRecord): true | undefined => {
      if (record.phase === 'open') return true;
      if (event?.type === 'failed') throw new RsmcError(event.code, `open failed: ${event.message}`);
      if (record.phase === 'aborted') throw new RsmcError(record.failure?.code ?? 'BAD_STATE', `open failed: ${record.failure?.message ?? 'aborted'}`);
      if (record.phase === 'shutting_down' || record.phase === 'closing' || record.phase === 'closed') {
        throw new RsmcError('CHANNEL_CLOSING', 'the channel closed before it opened');
      }
      return undefined;
    };
    if (check(undefined, this.#slot.record)) return this;
    await this.#wait((event, record) => check(event, record)).promise;
    return this;
  }

  /**
   * Our current commitment transaction with both signatures, ready to broadcast — built in the channel's
   * queue, so it matches the record at that moment.
   *
   * DANGER: this exists for breach demonstrations and tests. Once the channel moves on (any later
   * payment in either direction) this commitment is REVOKED: broadcasting it lets the peer take the
   * whole channel with a penalty transaction. To close unilaterally use close({ cooperative: false }).
   */
  signedLocalCommitment(): Promise<Uint8Array> {
    return this.#node.signedLocalCommitment(this.#slot);
  }

  // ---- runtime side ----

  /** Called by the runtime for every event of this channel (after the record was updated). */
  deliver(event: RsmcEvent): void {
    this.#events.deliver(event, this.#slot.record);
  }

  /** The node stopped: every pending wait rejects with `error`. */
  shutdown(error: Error): void {
    this.#events.shutdown(error);
  }

  #wait<T>(until: Until<RsmcEvent, RsmcRecord, T>, timeoutMs?: number): { promise: Promise<T>; cancel: () => void } {
    return this.#events.wait(until, timeoutMs, () => new RsmcError('TIMEOUT', 'the payment was not committed in time'));
  }
}

/**
 * The credit window, as pure arithmetic (no I/O, no clock). The payer pays ahead for at most
 * `windowUnits` units beyond what it has consumed, so its exposure is at most one window; the payee serves
 * only what has been paid for, so its exposure is nil (up to what a polling gate lets through between
 * two polls). On the wire, `creditWindowUnits` of `oneway_propose` carries the window (docs/protocol.md
 * §3.2) and it counts from the last acknowledged payment (`oneway_pay_ack`, §3.3).
 *
 * @example
 *   unitsToPay({ consumedUnits: 0n, paidUnits: 0n, windowUnits: 10n, stepUnits: 5n });  // 10n: the first window
 *   unitsToPay({ consumedUnits: 4n, paidUnits: 10n, windowUnits: 10n, stepUnits: 5n }); // 0n: 4 < step
 *   unitsToPay({ consumedUnits: 7n, paidUnits: 10n, windowUnits: 10n, stepUnits: 5n }); // 5n
 *   gateDecision({ servedUnits: 10n, paidUnits: 10n });                                  // 'paused'
 */

export interface PayerCredit {
  /** Units consumed so far (in tariff units, rounded up). */
  consumedUnits: bigint;
  /** Units paid and acknowledged so far. */
  paidUnits: bigint;
  /** At most this many units are paid beyond consumption; ≥ 1. */
  windowUnits: bigint;
  /** Payments come in whole multiples of this; 1 ≤ stepUnits ≤ windowUnits. */
  stepUnits: bigint;
  /** What the channel (or the stream's limit) can still carry beyond `paidUnits`; unlimited if absent. */
  maxUnits?: bigint;
}

function nonNegative(value: bigint, field: string): void {
  if (typeof value !== 'bigint') throw new TypeError(`"${field}" expected bigint, got ${typeof value}`);
  if (value < 0n) throw new RangeError(`"${field}" must not be negative (${value})`);
}

/** Check a window and step (1 ≤ stepUnits ≤ windowUnits); throws RangeError/TypeError naming the field. */
export function checkWindow(windowUnits: bigint, stepUnits: bigint): void {
  nonNegative(windowUnits, 'windowUnits');
  nonNegative(stepUnits, 'stepUnits');
  if (windowUnits < 1n) throw new RangeError(`"windowUnits" must be at least 1 (${windowUnits})`);
  if (stepUnits < 1n || stepUnits > windowUnits) {
    throw new RangeError(`"stepUnits" must be between 1 and windowUnits (${windowUnits}), got ${stepUnits}`);
  }
}

/**
 * Payer side: how many more units to pay now; 0n when nothing is due.
 *
 * Pays the largest whole multiple of `stepUnits` that keeps paidUnits ≤ consumedUnits + windowUnits, so
 * something is due exactly when consumedUnits + windowUnits − paidUnits ≥ stepUnits. The result is capped
 * at `maxUnits`; the capped payment, which fills the channel, is the one payment that may be a partial
 * step (otherwise the last units of a channel could never be paid for).
 */
export function unitsToPay(credit: PayerCredit): bigint {
  const { consumedUnits, paidUnits, windowUnits, stepUnits, maxUnits } = credit;
  nonNegative(consumedUnits, 'consumedUnits');
  nonNegative(paidUnits, 'paidUnits');
  checkWindow(windowUnits, stepUnits);
  if (maxUnits !== undefined) nonNegative(maxUnits, 'maxUnits');

  const room = consumedUnits + windowUnits - paidUnits;
  if (room < stepUnits) return 0n;
  const due = (room / stepUnits) * stepUnits;
  return maxUnits !== undefined && maxUnits < due ? maxUnits : due;
}

/** Payee side: serve while something paid is left to serve; pause when consumption reaches the paid amount. */
export function gateDecision(state: { servedUnits: bigint; paidUnits: bigint }): 'open' | 'paused' {
  nonNegative(state.servedUnits, 'servedUnits');
  nonNegative(state.paidUnits, 'paidUnits');
  return state.servedUnits < state.paidUnits ? 'open' : 'paused';
}

/**
 * Who is exposed by how much: `payerUnits` paid but not yet consumed (at most one window when the payer
 * follows unitsToPay), `payeeUnits` consumed but not paid (zero when the payee's gate holds).
 */
export function exposure(state: { consumedUnits: bigint; paidUnits: bigint }): { payerUnits: bigint; payeeUnits: bigint } {
  nonNegative(state.consumedUnits, 'consumedUnits');
  nonNegative(state.paidUnits, 'paidUnits');
  const diff = state.paidUnits - state.consumedUnits;
  return diff >= 0n ? { payerUnits: diff, payeeUnits: 0n } : { payerUnits: 0n, payeeUnits: -diff };
}

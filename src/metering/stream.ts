/**
 * The two loops that run a metered service over a one-way channel, both driven by the Clock port:
 *
 * - startStream (payer): pays the first window up front so service can start, then polls the meter and
 *   pays whatever the credit window says is due (src/metering/credit.ts). This is the engine behind
 *   `channel.stream(meter, tariff)`; the channel layer supplies `pay`.
 * - startServiceGuard (payee): polls its own meter and opens the ServiceGate while served < paid,
 *   pausing it otherwise, so it never serves unpaid units (up to what the service lets through between
 *   two polls; a gate with a hard quota closes that gap).
 *
 * @example
 *   const stream = startStream({ meter, tariff: { unit: 'MB', msatPerUnit: 1000n }, windowUnits: 10n,
 *     stepUnits: 5n, maxMsat: 5_000_000n, pay: (incrementMsat) => channel.pay(incrementMsat) });
 *   stream.onProgress((p) => console.log(`${p.consumedUnits}/${p.paidUnits} ${p.unit}`));
 *   const final = await stream.done; // 'exhausted' once the channel is full
 */
import { systemClock, type Clock } from '../clock.js';
import { checkWindow, gateDecision, unitsToPay } from './credit.js';
import type { Meter, ServiceGate } from './meter.js';
import { costMsat, validateTariff, type Tariff } from './tariff.js';
import { convertUnits, MeteringError, unitDimension, unitsCompatible } from './units.js';

export const DEFAULT_POLL_INTERVAL_MS = 200;

export interface StreamOptions {
  meter: Meter;
  tariff: Tariff;
  /** Pays `incrementMsat` more; resolves once the payee acknowledged it. Called sequentially, never concurrently. */
  pay(incrementMsat: bigint): Promise<void>;
  /** Pay at most this many units beyond consumption (`creditWindowUnits`); ≥ 1. */
  windowUnits: bigint;
  /** Pay in multiples of this; 1 ≤ stepUnits ≤ windowUnits; default windowUnits. A smaller step keeps
   * the payee's gate from pausing at every window boundary while a payment is in flight. */
  stepUnits?: bigint;
  /** Channel headroom: the stream pays at most this much in total. Unlimited if absent. */
  maxMsat?: bigint;
  clock?: Clock;
  /** Default 200. */
  pollIntervalMs?: number;
  /** Stop once this many tariff units have been consumed and paid; never pays beyond it. ≥ 1. */
  untilUnits?: bigint;
}

/**
 * - running: polling and paying.
 * - stopped: stop() was called.
 * - completed: `untilUnits` consumed and paid.
 * - exhausted: `maxMsat` cannot pay for another unit. The stream ends right after its last payment, so
 *   `exposureUnits` may still be positive: the payee keeps serving what was paid while the caller opens
 *   the next channel.
 * - failed: a payment failed; `done` rejected.
 */
export type StreamStatus = 'running' | 'stopped' | 'completed' | 'exhausted' | 'failed';

export interface StreamProgress {
  /** Tariff units consumed since the stream's first successful meter reading, rounded up. */
  consumedUnits: bigint;
  /** Tariff units paid and acknowledged. */
  paidUnits: bigint;
  paidMsat: bigint;
  /** Number of acknowledged payments. */
  payments: number;
  /** paid − consumed, ≥ 0: what the payer has paid for and not yet received. */
  exposureUnits: bigint;
  /** The tariff's unit. */
  unit: string;
  /** Meter reads that failed (or went backwards) and were retried at the next poll. */
  meterFailures: number;
  lastMeterError: MeteringError | undefined;
  status: StreamStatus;
}

export interface StreamHandle {
  /** Resolves on stop(), untilUnits or exhaustion; rejects with MeteringError('PAYMENT_FAILED') (cause: the pay error). */
  readonly done: Promise<StreamProgress>;
  /** Stop polling; an in-flight payment is awaited (and counted). Returns `done`. */
  stop(): Promise<StreamProgress>;
  /** Called after every change; returns an unsubscribe function. A throwing listener is ignored. */
  onProgress(listener: (p: StreamProgress) => void): () => void;
  progress(): StreamProgress;
}

function checkPollInterval(pollIntervalMs: number): void {
  if (typeof pollIntervalMs !== 'number' || !Number.isFinite(pollIntervalMs) || pollIntervalMs <= 0) {
    throw new RangeError(`"pollIntervalMs" must be a positive number (${pollIntervalMs})`);
  }
}

function checkMeter(meter: Meter): void {
  if (typeof meter !== 'object' || meter === null || typeof meter.read !== 'function' || typeof meter.unit !== 'string') {
    throw new TypeError('"meter" expected a Meter ({ unit, read() })');
  }
}

function checkCompatible(from: string, to: string): void {
  if (!unitsCompatible(from, to)) {
    throw new MeteringError('UNIT_MISMATCH', `meter unit ${JSON.stringify(from)} (${unitDimension(from)}) cannot be priced in ${JSON.stringify(to)} (${unitDimension(to)})`);
  }
}

function asMeteringError(error: unknown): MeteringError {
  return error instanceof MeteringError ? error : new MeteringError('METER_FAILED', 'meter read failed', { cause: error });
}

/**
 * Reads a Meter as a count from its first successful reading, in `unit`, rounded up; rejects with a
 * MeteringError on a failed read, a non-counter or a reading below the previous one (then ignored).
 */
class MeterReader {
  #baseline: bigint | undefined;
  #last: bigint | undefined;
  constructor(
    private readonly meter: Meter,
    private readonly unit: string,
  ) {}

  async read(): Promise<bigint> {
    let reading: unknown;
    try {
      reading = await this.meter.read();
    } catch (error) {
      throw asMeteringError(error);
    }
    if (typeof reading !== 'bigint' || reading < 0n) {
      throw new MeteringError('METER_FAILED', `meter returned ${typeof reading === 'bigint' ? reading : typeof reading}, expected a non-negative bigint`);
    }
    if (this.#last !== undefined && reading < this.#last) {
      throw new MeteringError('METER_WENT_BACKWARDS', `meter went from ${this.#last} to ${reading}`);
    }
    this.#baseline ??= reading;
    this.#last = reading;
    return convertUnits(reading - this.#baseline, this.meter.unit, this.unit, 'ceil');
  }
}

/** Start paying for a metered service; see the module doc. Throws on bad options, before anything is paid. */
export function startStream(options: StreamOptions): StreamHandle {
  const { meter, tariff, pay, windowUnits, maxMsat, untilUnits } = options;
  checkMeter(meter);
  validateTariff(tariff);
  if (typeof pay !== 'function') throw new TypeError('"pay" expected a function');
  const stepUnits = options.stepUnits ?? windowUnits;
  checkWindow(windowUnits, stepUnits);
  if (maxMsat !== undefined && (typeof maxMsat !== 'bigint' || maxMsat < 0n)) {
    throw new RangeError(`"maxMsat" must be a non-negative bigint (${maxMsat})`);
  }
  if (untilUnits !== undefined && (typeof untilUnits !== 'bigint' || untilUnits < 1n)) {
    throw new RangeError(`"untilUnits" must be a bigint ≥ 1 (${untilUnits})`);
  }
  const clock = options.clock ?? systemClock;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  checkPollInterval(pollIntervalMs);
  checkCompatible(meter.unit, tariff.unit);

  const reader = new MeterReader(meter, tariff.unit);
  const listeners = new Set<(p: StreamProgress) => void>();
  let consumedUnits = 0n;
  let paidUnits = 0n;
  let paidMsat = 0n;
  let payments = 0;
  let meterFailures = 0;
  let lastMeterError: MeteringError | undefined;
  let status: StreamStatus = 'running';
  let busy = false;
  let stopRequested = false;
  let cancelTimer: (() => void) | undefined;

  let resolveDone!: (p: StreamProgress) => void;
  let rejectDone!: (e: MeteringError) => void;
  const done = new Promise<StreamProgress>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  // A caller that only listens to progress must not get an unhandled rejection; `done` still rejects.
  done.catch(() => {});

  function progress(): StreamProgress {
    const exposureUnits = paidUnits > consumedUnits ? paidUnits - consumedUnits : 0n;
    return { consumedUnits, paidUnits, paidMsat, payments, exposureUnits, unit: tariff.unit, meterFailures, lastMeterError, status };
  }

  function emit(): void {
    const snapshot = progress();
    for (const listener of listeners) {
      try {
        listener(snapshot);
      } catch {
        // A listener's bug must not stop the payments.
      }
    }
  }

  function end(final: Exclude<StreamStatus, 'running' | 'failed'>): void {
    status = final;
    cancelTimer?.();
    cancelTimer = undefined;
    emit();
    resolveDone(progress());
  }

  function fail(error: MeteringError): void {
    status = 'failed';
    cancelTimer?.();
    cancelTimer = undefined;
    emit();
    rejectDone(error);
  }

  /** Units the stream may still pay for: channel headroom and untilUnits, whichever is less. */
  function maxUnits(): bigint | undefined {
    let max: bigint | undefined;
    if (maxMsat !== undefined) max = (maxMsat > paidMsat ? maxMsat - paidMsat : 0n) / tariff.msatPerUnit;
    if (untilUnits !== undefined) {
      const left = untilUnits > paidUnits ? untilUnits - paidUnits : 0n;
      max = max === undefined || left < max ? left : max;
    }
    return max;
  }

  async function tick(): Promise<void> {
    cancelTimer = undefined;
    if (status !== 'running') return;
    busy = true;
    try {
      try {
        const consumed = await reader.read();
        if (consumed !== consumedUnits) {
          consumedUnits = consumed;
          emit();
        }
      } catch (error) {
        meterFailures++;
        lastMeterError = asMeteringError(error);
        emit();
      }
      if (stopRequested) return end('stopped');

      const due = unitsToPay({ consumedUnits, paidUnits, windowUnits, stepUnits, maxUnits: maxUnits() });
      if (due > 0n) {
        const incrementMsat = costMsat(tariff, due);
        try {
          await pay(incrementMsat);
        } catch (error) {
          return fail(new MeteringError('PAYMENT_FAILED', `payment of ${incrementMsat} msat failed`, { cause: error }));
        }
        paidUnits += due;
        paidMsat += incrementMsat;
        payments++;
        emit();
      }

      if (untilUnits !== undefined && paidUnits >= untilUnits && consumedUnits >= untilUnits) return end('completed');
      if (maxMsat !== undefined && maxMsat - paidMsat < tariff.msatPerUnit) return end('exhausted');
      if (stopRequested) return end('stopped');
      cancelTimer = clock.setTimer(pollIntervalMs, () => void tick());
    } finally {
      busy = false;
    }
  }

  // The first tick (meter read, first window) starts after startStream returns, never inside it.
  queueMicrotask(() => void tick());

  return {
    done,
    stop() {
      if (status === 'running') {
        stopRequested = true;
        if (!busy) end('stopped');
      }
      return done;
    },
    onProgress(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    progress,
  };
}

export interface ServiceGuardOptions {
  /** The payee's own meter of what it serves. */
  meter: Meter;
  gate: ServiceGate;
  /** Units paid for so far (in `unit`), e.g. from the latest stored `oneway_pay` via unitsPaidFor(). */
  paidUnits: () => bigint;
  /** Unit of `paidUnits`, normally the tariff's; default the meter's. */
  unit?: string;
  clock?: Clock;
  /** Default 200. */
  pollIntervalMs?: number;
}

export interface ServiceGuardSnapshot {
  /** Units served since the guard's first successful meter reading, rounded up. */
  servedUnits: bigint;
  /** paidUnits() at the last check. */
  paidUnits: bigint;
  state: 'open' | 'paused';
  meterFailures: number;
  gateFailures: number;
  lastError: unknown;
}

export interface ServiceGuard {
  /** Stop checking (an in-flight check is awaited). The gate is left as it is: pause it to end the service. */
  stop(): Promise<void>;
  /** The gate's state. */
  state(): 'open' | 'paused';
  /** A payment arrived: check now rather than at the next poll. */
  notifyPaid(): void;
  snapshot(): ServiceGuardSnapshot;
}

/**
 * Payee side: keeps `gate` open while served < paid and paused otherwise (credit.ts gateDecision),
 * checking at once, on every poll and on notifyPaid(). Fails closed: while the meter cannot be read (or
 * paidUnits() throws) the gate is paused, since the payee cannot tell what it has served. A gate that
 * fails to switch is retried at the next check.
 */
export function startServiceGuard(options: ServiceGuardOptions): ServiceGuard {
  const { meter, gate, paidUnits } = options;
  checkMeter(meter);
  if (typeof gate !== 'object' || gate === null || typeof gate.open !== 'function' || typeof gate.pause !== 'function') {
    throw new TypeError('"gate" expected a ServiceGate');
  }
  if (typeof paidUnits !== 'function') throw new TypeError('"paidUnits" expected a function');
  const unit = options.unit ?? meter.unit;
  checkCompatible(meter.unit, unit);
  const clock = options.clock ?? systemClock;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  checkPollInterval(pollIntervalMs);

  const reader = new MeterReader(meter, unit);
  let servedUnits = 0n;
  let lastPaidUnits = 0n;
  let meterFailures = 0;
  let gateFailures = 0;
  let lastError: unknown;
  let stopped = false;
  let busy = false;
  let recheck = false;
  let cancelTimer: (() => void) | undefined;
  let idle: Promise<void> = Promise.resolve();

  async function decide(): Promise<'open' | 'paused'> {
    try {
      servedUnits = await reader.read();
    } catch (error) {
      meterFailures++;
      lastError = error;
      return 'paused';
    }
    try {
      const paid = paidUnits();
      if (typeof paid !== 'bigint' || paid < 0n) throw new TypeError(`"paidUnits()" returned ${String(paid)}, expected a non-negative bigint`);
      lastPaidUnits = paid;
    } catch (error) {
      lastError = error;
      return 'paused';
    }
    return gateDecision({ servedUnits, paidUnits: lastPaidUnits });
  }

  async function check(): Promise<void> {
    cancelTimer = undefined;
    if (stopped) return;
    busy = true;
    try {
      const decision = await decide();
      if (gate.state !== decision) {
        try {
          await (decision === 'open' ? gate.open() : gate.pause());
        } catch (error) {
          gateFailures++;
          lastError = error;
        }
      }
    } finally {
      busy = false;
    }
    if (stopped) return;
    if (recheck) {
      recheck = false;
      idle = check();
    } else {
      cancelTimer = clock.setTimer(pollIntervalMs, () => {
        idle = check();
      });
    }
  }

  // As in startStream, the first check runs after startServiceGuard returns.
  idle = Promise.resolve().then(check);

  return {
    async stop() {
      stopped = true;
      cancelTimer?.();
      cancelTimer = undefined;
      await idle;
    },
    state: () => gate.state,
    notifyPaid() {
      if (stopped) return;
      if (busy) {
        recheck = true;
        return;
      }
      cancelTimer?.();
      idle = check();
    },
    snapshot: () => ({ servedUnits, paidUnits: lastPaidUnits, state: gate.state, meterFailures, gateFailures, lastError }),
  };
}

/**
 * Metering: unit conversion, tariffs, the credit window's invariants (property tests), and the payer's
 * stream and payee's guard driven by a ManualClock with fake meters, pay functions and gates. No timing
 * assertions: time moves only when a test advances the clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ManualClock } from '../src/clock.js';
import {
  convertUnits,
  costMsat,
  CounterAccumulator,
  exposure,
  gateDecision,
  KNOWN_UNITS,
  MeteringError,
  startServiceGuard,
  startStream,
  unitDimension,
  unitsPaidFor,
  unitsToPay,
  validateTariff,
  type Meter,
  type MeteringErrorCode,
  type ServiceGate,
  type StreamProgress,
  type Tariff,
} from '../src/metering/index.js';

function isMeteringError(code: MeteringErrorCode) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof MeteringError, `expected MeteringError, got ${String(e)}`);
    assert.equal(e.code, code);
    return true;
  };
}

/** Let pending promise callbacks run (fakes resolve at once; no wall-clock time is involved). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

class FakeMeter implements Meter {
  value = 0n;
  failWith: unknown;
  reads = 0;
  constructor(readonly unit: string) {}
  async read(): Promise<bigint> {
    this.reads++;
    if (this.failWith !== undefined) throw this.failWith;
    return this.value;
  }
}

/** Records payments; can hold them (to test sequencing) or fail them. */
class FakePayee {
  readonly paidMsat: bigint[] = [];
  inFlight = 0;
  maxInFlight = 0;
  hold = false;
  failWith: unknown;
  #release: (() => void)[] = [];

  readonly pay = async (incrementMsat: bigint): Promise<void> => {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.hold) await new Promise<void>((resolve) => this.#release.push(resolve));
      if (this.failWith !== undefined) throw this.failWith;
      this.paidMsat.push(incrementMsat);
    } finally {
      this.inFlight--;
    }
  };

  release(): void {
    this.hold = false;
    for (const resolve of this.#release.splice(0)) resolve();
  }
}

const MB_TARIFF: Tariff = { unit: 'MB', msatPerUnit: 1000n };
const MB = 1_000_000n;

// ---------------------------------------------------------------- units

test('convertUnits: decimal and binary bytes, energy, time, with the rounding asked for', () => {
  assert.equal(convertUnits(1_500_000n, 'B', 'MB', 'ceil'), 2n);
  assert.equal(convertUnits(1_500_000n, 'B', 'MB', 'floor'), 1n);
  assert.equal(convertUnits(2_000_000n, 'B', 'MB', 'ceil'), 2n);
  assert.equal(convertUnits(3n, 'GB', 'kB', 'floor'), 3_000_000n);
  assert.equal(convertUnits(1n, 'TB', 'GB', 'floor'), 1000n);
  assert.equal(convertUnits(1025n, 'B', 'KiB', 'floor'), 1n);
  assert.equal(convertUnits(1025n, 'B', 'KiB', 'ceil'), 2n);
  assert.equal(convertUnits(1n, 'GiB', 'MiB', 'floor'), 1024n);
  assert.equal(convertUnits(1n, 'MiB', 'MB', 'ceil'), 2n); // 1.048576 MB
  assert.equal(convertUnits(1n, 'MiB', 'kB', 'floor'), 1048n);
  assert.equal(convertUnits(3n, 'kWh', 'Wh', 'floor'), 3000n);
  assert.equal(convertUnits(1500n, 'Wh', 'kWh', 'ceil'), 2n);
  assert.equal(convertUnits(2n, 'h', 'min', 'floor'), 120n);
  assert.equal(convertUnits(61n, 's', 'min', 'ceil'), 2n);
  assert.equal(convertUnits(7n, 'reading', 'reading', 'ceil'), 7n);
  assert.equal(convertUnits(0n, 'B', 'TB', 'ceil'), 0n);
  assert.equal(unitDimension('KiB'), 'bytes');
  assert.equal(unitDimension('reading'), 'count');
  assert.equal(unitDimension('mb'), 'count', 'units are case sensitive');
  assert.equal(KNOWN_UNITS.length, 13);
});

test('convertUnits: other dimensions and count units are UNIT_MISMATCH; bad arguments are Type/RangeErrors', () => {
  assert.throws(() => convertUnits(1n, 'B', 'Wh', 'floor'), isMeteringError('UNIT_MISMATCH'));
  assert.throws(() => convertUnits(1n, 'kWh', 's', 'floor'), isMeteringError('UNIT_MISMATCH'));
  assert.throws(() => convertUnits(1n, 'reading', 'B', 'floor'), isMeteringError('UNIT_MISMATCH'));
  assert.throws(() => convertUnits(1n, 'reading', 'ride', 'floor'), isMeteringError('UNIT_MISMATCH'));
  assert.throws(() => convertUnits(-1n, 'B', 'kB', 'floor'), RangeError);
  assert.throws(() => convertUnits(1 as unknown as bigint, 'B', 'kB', 'floor'), TypeError);
  assert.throws(() => convertUnits(1n, 'B', 'kB', 'round' as 'floor'), TypeError);
});

test('convertUnits properties: floor ≤ exact ≤ ceil, ceil − floor ≤ 1, a round trip up then down loses nothing', () => {
  const bytes = fc.constantFrom('B', 'kB', 'MB', 'GB', 'TB', 'KiB', 'MiB', 'GiB');
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 70n }), bytes, bytes, (q, from, to) => {
      const lo = convertUnits(q, from, to, 'floor');
      const hi = convertUnits(q, from, to, 'ceil');
      assert.ok(hi - lo === 0n || hi - lo === 1n);
      assert.ok(convertUnits(lo, to, from, 'floor') <= q);
      assert.ok(convertUnits(hi, to, from, 'ceil') >= q);
    }),
    { numRuns: 500 },
  );
});

// ---------------------------------------------------------------- tariff

test('tariff: cost and units paid for; unit 1..16 UTF-8 bytes and a positive price, else BAD_TARIFF', () => {
  assert.equal(costMsat(MB_TARIFF, 10n), 10_000n);
  assert.equal(costMsat(MB_TARIFF, 0n), 0n);
  assert.equal(unitsPaidFor(MB_TARIFF, 10_999n), 10n);
  assert.deepEqual(validateTariff({ unit: 'x'.repeat(16), msatPerUnit: 1n }), { unit: 'x'.repeat(16), msatPerUnit: 1n });
  assert.throws(() => validateTariff({ unit: '', msatPerUnit: 1n }), isMeteringError('BAD_TARIFF'));
  assert.throws(() => validateTariff({ unit: 'x'.repeat(17), msatPerUnit: 1n }), isMeteringError('BAD_TARIFF'));
  assert.throws(() => validateTariff({ unit: 'é'.repeat(9), msatPerUnit: 1n }), isMeteringError('BAD_TARIFF')); // 18 bytes
  assert.throws(() => validateTariff({ unit: 'MB', msatPerUnit: 0n }), isMeteringError('BAD_TARIFF'));
  assert.throws(() => validateTariff({ unit: 'MB', msatPerUnit: -5n }), isMeteringError('BAD_TARIFF'));
  assert.throws(() => validateTariff({ unit: 'MB', msatPerUnit: 1000 as unknown as bigint }), TypeError);
  assert.throws(() => costMsat(MB_TARIFF, -1n), RangeError);
});

// ---------------------------------------------------------------- meter

test('CounterAccumulator: baseline first, increments added, a lower reading is a restart from zero', () => {
  const acc = new CounterAccumulator();
  assert.equal(acc.update(5000n), 0n);
  assert.equal(acc.update(5600n), 600n);
  assert.equal(acc.update(5600n), 600n);
  assert.equal(acc.update(100n), 700n);
  assert.equal(acc.update(150n), 750n);
  assert.equal(acc.resets, 1);
  assert.equal(acc.total, 750n);
  assert.throws(() => acc.update(-1n), RangeError);
});

test('CounterAccumulator property: the total never decreases and counts every increase', () => {
  fc.assert(
    fc.property(fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { minLength: 1, maxLength: 50 }), (raws) => {
      const acc = new CounterAccumulator();
      let previousTotal = 0n;
      let increases = 0n;
      raws.forEach((raw, i) => {
        const total = acc.update(raw);
        assert.ok(total >= previousTotal);
        if (i > 0) increases += raw >= raws[i - 1]! ? raw - raws[i - 1]! : raw;
        previousTotal = total;
      });
      assert.equal(acc.total, increases);
    }),
    { numRuns: 500 },
  );
});

// ---------------------------------------------------------------- credit

test('unitsToPay: the first window, then whole steps, capped by maxUnits', () => {
  const base = { windowUnits: 10n, stepUnits: 5n };
  assert.equal(unitsToPay({ ...base, consumedUnits: 0n, paidUnits: 0n }), 10n);
  assert.equal(unitsToPay({ ...base, consumedUnits: 4n, paidUnits: 10n }), 0n);
  assert.equal(unitsToPay({ ...base, consumedUnits: 5n, paidUnits: 10n }), 5n);
  assert.equal(unitsToPay({ ...base, consumedUnits: 12n, paidUnits: 10n }), 10n);
  assert.equal(unitsToPay({ ...base, consumedUnits: 12n, paidUnits: 10n, maxUnits: 3n }), 3n);
  assert.equal(unitsToPay({ ...base, consumedUnits: 12n, paidUnits: 10n, maxUnits: 0n }), 0n);
  assert.equal(unitsToPay({ windowUnits: 10n, stepUnits: 3n, consumedUnits: 0n, paidUnits: 0n }), 9n);
  assert.equal(unitsToPay({ windowUnits: 10n, stepUnits: 10n, consumedUnits: 9n, paidUnits: 10n }), 0n);
  assert.equal(unitsToPay({ ...base, consumedUnits: 0n, paidUnits: 50n }), 0n, 'overpaid: nothing due');
  assert.throws(() => unitsToPay({ windowUnits: 10n, stepUnits: 11n, consumedUnits: 0n, paidUnits: 0n }), RangeError);
  assert.throws(() => unitsToPay({ windowUnits: 0n, stepUnits: 0n, consumedUnits: 0n, paidUnits: 0n }), RangeError);
  assert.throws(() => unitsToPay({ ...base, consumedUnits: -1n, paidUnits: 0n }), RangeError);
});

const creditArb = fc
  .record({
    windowUnits: fc.bigInt({ min: 1n, max: 1000n }),
    consumedUnits: fc.bigInt({ min: 0n, max: 10_000n }),
    stepFraction: fc.bigInt({ min: 1n, max: 1000n }),
    paidFraction: fc.bigInt({ min: 0n, max: 1000n }),
    maxUnits: fc.option(fc.bigInt({ min: 0n, max: 2000n }), { nil: undefined }),
  })
  .map(({ windowUnits, consumedUnits, stepFraction, paidFraction, maxUnits }) => ({
    windowUnits,
    consumedUnits,
    stepUnits: 1n + ((windowUnits - 1n) * stepFraction) / 1000n,
    // Any state the payer can be in: paid ≤ consumed + window.
    paidUnits: ((consumedUnits + windowUnits) * paidFraction) / 1000n,
    maxUnits,
  }));

test('credit property: never paid > consumed + window, never beyond maxUnits, whole steps unless filling maxUnits', () => {
  fc.assert(
    fc.property(creditArb, (c) => {
      const due = unitsToPay(c);
      assert.ok(due >= 0n);
      assert.ok(c.paidUnits + due <= c.consumedUnits + c.windowUnits, 'paid ≤ consumed + window');
      if (c.maxUnits !== undefined) assert.ok(due <= c.maxUnits, 'never beyond maxUnits');
      assert.ok(due % c.stepUnits === 0n || due === c.maxUnits, 'whole steps, or the capped last payment');
    }),
    { numRuns: 2000 },
  );
});

test('credit property: something is due exactly when consumed + window − paid ≥ step (and the channel has room)', () => {
  fc.assert(
    fc.property(creditArb, (c) => {
      const due = unitsToPay(c);
      const room = c.consumedUnits + c.windowUnits - c.paidUnits;
      const capped = c.maxUnits === 0n;
      assert.equal(due > 0n, room >= c.stepUnits && !capped);
      // After paying, nothing more is due unless the cap held it back.
      if (c.maxUnits === undefined || due < c.maxUnits) {
        assert.equal(unitsToPay({ ...c, paidUnits: c.paidUnits + due, maxUnits: undefined }), 0n);
      }
    }),
    { numRuns: 2000 },
  );
});

test('credit property: monotonic in consumption; a simulated payer keeps exposure within one window', () => {
  fc.assert(
    fc.property(creditArb, fc.bigInt({ min: 0n, max: 5000n }), (c, more) => {
      const before = unitsToPay(c);
      const after = unitsToPay({ ...c, consumedUnits: c.consumedUnits + more });
      assert.ok(after >= before, 'more consumption never means less due');
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(
      fc.bigInt({ min: 1n, max: 100n }),
      fc.bigInt({ min: 1n, max: 100n }),
      fc.option(fc.bigInt({ min: 0n, max: 3000n }), { nil: undefined }),
      fc.array(fc.bigInt({ min: 0n, max: 150n }), { maxLength: 60 }),
      (windowUnits, stepSeed, capUnits, increments) => {
        const stepUnits = 1n + (stepSeed % windowUnits);
        let consumedUnits = 0n;
        let paidUnits = 0n;
        for (const increment of [0n, ...increments]) {
          // The payee serves only what is paid: consumption stops at paidUnits.
          consumedUnits = consumedUnits + increment > paidUnits ? paidUnits : consumedUnits + increment;
          const maxUnits = capUnits === undefined ? undefined : capUnits - paidUnits;
          const due = unitsToPay({ consumedUnits, paidUnits, windowUnits, stepUnits, maxUnits });
          paidUnits += due;
          const { payerUnits, payeeUnits } = exposure({ consumedUnits, paidUnits });
          assert.ok(payerUnits <= windowUnits, 'payer exposure ≤ one window');
          assert.equal(payeeUnits, 0n, 'payee never serves unpaid units');
          if (capUnits !== undefined) assert.ok(paidUnits <= capUnits);
          assert.equal(gateDecision({ servedUnits: consumedUnits, paidUnits }), consumedUnits < paidUnits ? 'open' : 'paused');
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('gateDecision and exposure', () => {
  assert.equal(gateDecision({ servedUnits: 9n, paidUnits: 10n }), 'open');
  assert.equal(gateDecision({ servedUnits: 10n, paidUnits: 10n }), 'paused');
  assert.equal(gateDecision({ servedUnits: 0n, paidUnits: 0n }), 'paused');
  assert.deepEqual(exposure({ consumedUnits: 3n, paidUnits: 10n }), { payerUnits: 7n, payeeUnits: 0n });
  assert.deepEqual(exposure({ consumedUnits: 12n, paidUnits: 10n }), { payerUnits: 0n, payeeUnits: 2n });
});

// ---------------------------------------------------------------- stream

function newStream(overrides: Partial<Parameters<typeof startStream>[0]> = {}) {
  const clock = new ManualClock();
  const meter = new FakeMeter('B');
  const payee = new FakePayee();
  const events: StreamProgress[] = [];
  const handle = startStream({ meter, tariff: MB_TARIFF, pay: payee.pay, windowUnits: 10n, stepUnits: 5n, clock, ...overrides });
  handle.onProgress((p) => {
    events.push(p);
    assert.ok(p.paidUnits <= p.consumedUnits + 10n, 'never more than a window ahead');
  });
  return { clock, meter, payee, handle, events };
}

test('stream: the first window is paid up front, then steps as the meter advances (bytes priced per MB, rounded up)', async () => {
  const { clock, meter, payee, handle, events } = newStream();
  await settle();
  assert.deepEqual(payee.paidMsat, [10_000n]);
  assert.equal(handle.progress().paidUnits, 10n);
  assert.equal(handle.progress().exposureUnits, 10n);

  meter.value = 4n * MB; // room 4 < step 5
  clock.advance(200);
  await settle();
  assert.deepEqual(payee.paidMsat, [10_000n]);
  assert.equal(handle.progress().consumedUnits, 4n);

  meter.value = 4n * MB + 1n; // a started MB counts: 5 MB consumed
  clock.advance(200);
  await settle();
  assert.deepEqual(payee.paidMsat, [10_000n, 5000n]);

  meter.value = 17n * MB; // room 17 + 10 − 15 = 12 → two steps
  clock.advance(200);
  await settle();
  assert.deepEqual(payee.paidMsat, [10_000n, 5000n, 10_000n]);
  const p = handle.progress();
  assert.deepEqual(
    { consumed: p.consumedUnits, paid: p.paidUnits, msat: p.paidMsat, payments: p.payments, exposure: p.exposureUnits, unit: p.unit },
    { consumed: 17n, paid: 25n, msat: 25_000n, payments: 3, exposure: 8n, unit: 'MB' },
  );
  assert.ok(events.length >= 4);
  assert.equal((await handle.stop()).status, 'stopped');
  assert.equal(clock.pendingTimers, 0);
});

test('stream: consumption counts from the first meter reading', async () => {
  const clock = new ManualClock();
  const meter = new FakeMeter('MB');
  meter.value = 7000n;
  const payee = new FakePayee();
  const handle = startStream({ meter, tariff: MB_TARIFF, pay: payee.pay, windowUnits: 10n, clock });
  await settle();
  assert.equal(handle.progress().consumedUnits, 0n);
  meter.value = 7003n;
  clock.advance(200);
  await settle();
  assert.equal(handle.progress().consumedUnits, 3n);
  await handle.stop();
});

test('stream: pays are sequential; polls wait while a payment is in flight', async () => {
  const { clock, meter, payee, handle } = newStream();
  payee.hold = true;
  await settle();
  assert.equal(payee.inFlight, 1);
  meter.value = 50n * MB;
  for (let i = 0; i < 5; i++) {
    clock.advance(200);
    await settle();
  }
  assert.equal(payee.maxInFlight, 1);
  assert.equal(handle.progress().paidUnits, 0n, 'counted only once acknowledged');
  payee.release();
  await settle();
  assert.equal(handle.progress().paidUnits, 10n);
  clock.advance(200);
  await settle();
  assert.equal(payee.maxInFlight, 1);
  assert.equal(handle.progress().paidUnits, 60n);
  await handle.stop();
});

test('stream: finishes as exhausted when the headroom cannot pay another unit; the last payment fills it', async () => {
  const { clock, meter, payee, handle } = newStream({ maxMsat: 23_500n });
  await settle();
  for (const mb of [5n, 10n, 15n]) {
    meter.value = mb * MB;
    clock.advance(200);
    await settle();
  }
  assert.deepEqual(payee.paidMsat, [10_000n, 5000n, 5000n, 3000n]);
  const final = await handle.done;
  assert.equal(final.status, 'exhausted');
  assert.equal(final.paidUnits, 23n);
  assert.equal(final.paidMsat, 23_000n);
  assert.equal(final.consumedUnits, 15n);
  assert.equal(final.exposureUnits, 8n, 'paid units the payee still serves');
  assert.equal(clock.pendingTimers, 0);
});

test('stream: headroom below one unit ends at once without paying', async () => {
  const { payee, handle } = newStream({ maxMsat: 999n });
  const final = await handle.done;
  assert.equal(final.status, 'exhausted');
  assert.deepEqual(payee.paidMsat, []);
});

test('stream: untilUnits caps the payments and completes once consumed and paid', async () => {
  const { clock, meter, payee, handle } = newStream({ untilUnits: 12n });
  await settle();
  meter.value = 8n * MB;
  clock.advance(200);
  await settle();
  assert.deepEqual(payee.paidMsat, [10_000n, 2000n]);
  meter.value = 12n * MB;
  clock.advance(200);
  await settle();
  const final = await handle.done;
  assert.equal(final.status, 'completed');
  assert.equal(final.paidUnits, 12n);
  assert.equal(clock.pendingTimers, 0);
});

test('stream: meter failures are counted and retried at the next poll; a meter going backwards is ignored', async () => {
  const { clock, meter, payee, handle } = newStream();
  meter.failWith = new Error('i2c timeout');
  await settle();
  assert.deepEqual(payee.paidMsat, [10_000n], 'the first window is paid even before a reading');
  assert.equal(handle.progress().meterFailures, 1);
  assert.equal(handle.progress().lastMeterError?.code, 'METER_FAILED');
  clock.advance(200);
  await settle();
  assert.equal(handle.progress().meterFailures, 2);

  meter.failWith = undefined;
  meter.value = 1000n; // baseline
  clock.advance(200);
  await settle();
  meter.value = 1000n + 6n * MB;
  clock.advance(200);
  await settle();
  assert.equal(handle.progress().consumedUnits, 6n);
  assert.deepEqual(payee.paidMsat, [10_000n, 5000n]);

  meter.value = 10n;
  clock.advance(200);
  await settle();
  assert.equal(handle.progress().meterFailures, 3);
  assert.equal(handle.progress().lastMeterError?.code, 'METER_WENT_BACKWARDS');
  assert.equal(handle.progress().consumedUnits, 6n);

  meter.value = 'garbage' as unknown as bigint;
  clock.advance(200);
  await settle();
  assert.equal(handle.progress().meterFailures, 4);
  assert.equal(handle.progress().status, 'running');
  await handle.stop();
});

test('stream: a pay failure ends the stream with PAYMENT_FAILED carrying the cause', async () => {
  const { clock, meter, payee, handle } = newStream();
  await settle();
  const cause = new Error('peer unreachable');
  payee.failWith = cause;
  meter.value = 5n * MB;
  clock.advance(200);
  await settle();
  await assert.rejects(handle.done, (e: unknown) => {
    assert.ok(e instanceof MeteringError);
    assert.equal(e.code, 'PAYMENT_FAILED');
    assert.equal(e.cause, cause);
    return true;
  });
  assert.equal(handle.progress().status, 'failed');
  assert.equal(handle.progress().paidUnits, 10n);
  assert.equal(clock.pendingTimers, 0);
  await assert.rejects(handle.stop(), isMeteringError('PAYMENT_FAILED'));
});

test('stream: stop() ends polling; a payment in flight is awaited and counted', async () => {
  const { clock, meter, payee, handle } = newStream();
  payee.hold = true;
  await settle();
  const stopped = handle.stop();
  payee.release();
  const final = await stopped;
  assert.equal(final.status, 'stopped');
  assert.equal(final.paidUnits, 10n);
  meter.value = 50n * MB;
  clock.advance(1000);
  await settle();
  assert.deepEqual(payee.paidMsat, [10_000n]);
  assert.equal(clock.pendingTimers, 0);
  assert.equal((await handle.stop()).status, 'stopped', 'stop() is idempotent');

  const early = newStream();
  const final2 = await early.handle.stop(); // before the first tick ran
  await settle();
  assert.equal(final2.status, 'stopped');
  assert.deepEqual(early.payee.paidMsat, []);
  assert.equal(early.meter.reads, 0);
});

test('stream: bad options throw before anything is paid', () => {
  const meter = new FakeMeter('B');
  const pay = async () => {};
  const clock = new ManualClock();
  assert.throws(() => startStream({ meter: new FakeMeter('Wh'), tariff: MB_TARIFF, pay, windowUnits: 10n, clock }), isMeteringError('UNIT_MISMATCH'));
  assert.throws(() => startStream({ meter, tariff: { unit: '', msatPerUnit: 1n }, pay, windowUnits: 10n, clock }), isMeteringError('BAD_TARIFF'));
  assert.throws(() => startStream({ meter, tariff: MB_TARIFF, pay, windowUnits: 10n, stepUnits: 11n, clock }), RangeError);
  assert.throws(() => startStream({ meter, tariff: MB_TARIFF, pay, windowUnits: 10n, maxMsat: -1n, clock }), RangeError);
  assert.throws(() => startStream({ meter, tariff: MB_TARIFF, pay, windowUnits: 10n, untilUnits: 0n, clock }), RangeError);
  assert.throws(() => startStream({ meter, tariff: MB_TARIFF, pay, windowUnits: 10n, pollIntervalMs: 0, clock }), RangeError);
  assert.equal(meter.reads, 0);
  assert.equal(clock.pendingTimers, 0);
});

// ---------------------------------------------------------------- service guard

class FakeGate implements ServiceGate {
  state: 'open' | 'paused' = 'paused';
  readonly calls: string[] = [];
  failNext = false;
  async open(): Promise<void> {
    this.calls.push('open');
    if (this.failNext) {
      this.failNext = false;
      throw new MeteringError('GATE_FAILED', 'firewall busy');
    }
    this.state = 'open';
  }
  async pause(): Promise<void> {
    this.calls.push('pause');
    this.state = 'paused';
  }
}

test('service guard: opens while served < paid, pauses at the paid amount, reopens on notifyPaid()', async () => {
  const clock = new ManualClock();
  const meter = new FakeMeter('B');
  const gate = new FakeGate();
  let paid = 0n;
  const guard = startServiceGuard({ meter, gate, paidUnits: () => paid, unit: 'MB', clock });
  await settle();
  assert.equal(guard.state(), 'paused');
  assert.deepEqual(gate.calls, [], 'already paused: nothing to do');

  paid = 10n;
  guard.notifyPaid();
  await settle();
  assert.equal(guard.state(), 'open');

  meter.value = 9n * MB + 1n; // 10 MB started: all paid units served
  clock.advance(200);
  await settle();
  assert.equal(guard.state(), 'paused');
  assert.deepEqual(guard.snapshot().servedUnits, 10n);

  paid = 15n;
  guard.notifyPaid();
  guard.notifyPaid(); // while the first check runs: one more check, not two at once
  await settle();
  assert.equal(guard.state(), 'open');
  assert.deepEqual(gate.calls, ['open', 'pause', 'open']);
  await guard.stop();
  assert.equal(clock.pendingTimers, 0);
});

test('service guard: fails closed on a meter failure; a failed gate switch is retried at the next poll', async () => {
  const clock = new ManualClock();
  const meter = new FakeMeter('MB');
  const gate = new FakeGate();
  const guard = startServiceGuard({ meter, gate, paidUnits: () => 5n, clock });
  await settle();
  assert.equal(guard.state(), 'open');

  meter.failWith = new Error('counter unreadable');
  clock.advance(200);
  await settle();
  assert.equal(guard.state(), 'paused');
  assert.equal(guard.snapshot().meterFailures, 1);

  meter.failWith = undefined;
  gate.failNext = true;
  clock.advance(200);
  await settle();
  assert.equal(guard.state(), 'paused');
  assert.equal(guard.snapshot().gateFailures, 1);
  clock.advance(200);
  await settle();
  assert.equal(guard.state(), 'open');

  await guard.stop();
  meter.value = 100n;
  clock.advance(1000);
  await settle();
  assert.equal(guard.state(), 'open', 'a stopped guard leaves the gate alone');
  assert.throws(() => startServiceGuard({ meter, gate, paidUnits: () => 0n, unit: 'Wh', clock }), isMeteringError('UNIT_MISMATCH'));
});

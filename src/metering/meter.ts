/**
 * The metering ports: a Meter says how much has been consumed, a ServiceGate lets the payee switch the
 * service on and off. Adapters live in devices/ (network interface counters, a simulated meter, gates
 * that call back or run a command). Plus CounterAccumulator, which turns a raw device counter that may
 * reset into the monotonic total the Meter contract asks for.
 */

/** Something that measures consumption. */
export interface Meter {
  /** Unit of `read()`, e.g. 'B' or 'Wh' (src/metering/units.ts). */
  readonly unit: string;
  /**
   * Cumulative quantity consumed, never decreasing. Only differences between readings matter, so a
   * meter may start at any value. Rejects (preferably with MeteringError('METER_FAILED')) when the
   * device cannot be read; callers retry later.
   */
  read(): Promise<bigint>;
}

/** The payee's switch for a service (e.g. a firewall rule for one client). */
export interface ServiceGate {
  readonly state: 'open' | 'paused';
  /** Let the service through. Idempotent; rejects with MeteringError('GATE_FAILED') and keeps the state. */
  open(): Promise<void>;
  /** Stop the service. Idempotent; rejects with MeteringError('GATE_FAILED') and keeps the state. */
  pause(): Promise<void>;
}

/**
 * Accumulates readings of a raw counter (a kernel byte counter, a meter register) into a monotonic total.
 *
 * - The first reading is the baseline: the total counts from it, so starting to meter an interface that
 *   has already moved gigabytes does not bill them.
 * - A reading below the previous one is taken as a restart from zero (interface down/up, driver reload,
 *   device reboot): the new reading is added in full. We do not guess a counter width to undo a wrap:
 *   a 32-bit counter that wraps therefore loses what it counted between the last reading and the wrap,
 *   i.e. the total errs low (in the payer's favour) and never jumps by a bogus 2^32 or 2^64.
 *
 * @example
 *   const acc = new CounterAccumulator();
 *   acc.update(5000n); // 0n (baseline)
 *   acc.update(5600n); // 600n
 *   acc.update(100n);  // 700n (counter restarted: 100 new)
 */
export class CounterAccumulator {
  #previous: bigint | undefined;
  #total = 0n;
  #resets = 0;

  /** Feed one raw reading (a non-negative bigint); returns the new total. */
  update(raw: bigint): bigint {
    if (typeof raw !== 'bigint') throw new TypeError(`"raw" expected bigint, got ${typeof raw}`);
    if (raw < 0n) throw new RangeError(`"raw" must not be negative (${raw})`);
    if (this.#previous !== undefined) {
      if (raw >= this.#previous) {
        this.#total += raw - this.#previous;
      } else {
        this.#total += raw;
        this.#resets++;
      }
    }
    this.#previous = raw;
    return this.#total;
  }

  /** Everything counted since the baseline. */
  get total(): bigint {
    return this.#total;
  }

  /** How many times the counter went backwards and was taken as a restart. */
  get resets(): number {
    return this.#resets;
  }
}

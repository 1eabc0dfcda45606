/**
 * A Meter that counts at a fixed rate while running, on the injected Clock: for demos, examples and
 * tests that need a service without hardware.
 *
 * @example
 *   const clock = new ManualClock();
 *   const meter = new SimulatedMeter({ unit: 'kB', unitsPerSecond: 100n, clock });
 *   clock.advance(2500);
 *   await meter.read(); // 250n
 */
import { systemClock, type Clock } from '../src/clock.js';
import type { Meter } from '../src/metering/index.js';

export interface SimulatedMeterOptions {
  unit: string;
  /** Growth rate while running; ≥ 0. */
  unitsPerSecond: bigint;
  clock?: Clock;
  /** Start paused; default false (running). */
  paused?: boolean;
}

export class SimulatedMeter implements Meter {
  readonly unit: string;
  readonly unitsPerSecond: bigint;
  readonly #clock: Clock;
  /** Running time of earlier runs, in ms; kept unrounded so pausing loses nothing. */
  #runMs = 0;
  /** When the current run started, or undefined while paused. */
  #since: number | undefined;

  constructor(options: SimulatedMeterOptions) {
    if (typeof options.unit !== 'string' || options.unit.length === 0) throw new TypeError('"unit" expected a non-empty string');
    if (typeof options.unitsPerSecond !== 'bigint') throw new TypeError('"unitsPerSecond" expected bigint');
    if (options.unitsPerSecond < 0n) throw new RangeError(`"unitsPerSecond" must not be negative (${options.unitsPerSecond})`);
    this.unit = options.unit;
    this.unitsPerSecond = options.unitsPerSecond;
    this.#clock = options.clock ?? systemClock;
    this.#since = options.paused === true ? undefined : this.#clock.now();
  }

  get running(): boolean {
    return this.#since !== undefined;
  }

  pause(): void {
    if (this.#since === undefined) return;
    this.#runMs += Math.max(0, this.#clock.now() - this.#since);
    this.#since = undefined;
  }

  resume(): void {
    this.#since ??= this.#clock.now();
  }

  /** floor(running ms × unitsPerSecond / 1000): integer, and never decreasing. */
  quantity(): bigint {
    const current = this.#since === undefined ? 0 : Math.max(0, this.#clock.now() - this.#since);
    return (BigInt(Math.floor(this.#runMs + current)) * this.unitsPerSecond) / 1000n;
  }

  async read(): Promise<bigint> {
    return this.quantity();
  }
}

/**
 * A one-line progress display for streaming sessions: units served, sats paid, payments per second and
 * the payer's exposure (paid but not yet served). Redraws in place on a TTY; elsewhere prints a line at
 * every tenth of the way so logs stay short.
 */
import type { StreamProgress } from '../metering/stream.js';

export class ProgressBar {
  readonly #out: NodeJS.WriteStream;
  readonly #totalUnits: bigint;
  readonly #startedMs: number;
  #lastDecile = -1;
  #drawn = false;

  constructor(out: NodeJS.WriteStream, totalUnits: bigint, startedMs = performance.now()) {
    this.#out = out;
    this.#totalUnits = totalUnits > 0n ? totalUnits : 1n;
    this.#startedMs = startedMs;
  }

  update(p: StreamProgress): void {
    const fraction = Number((p.consumedUnits * 1000n) / this.#totalUnits) / 1000;
    const line = this.render(p, Math.min(1, fraction));
    if (this.#out.isTTY) {
      this.#out.write(`\r${line}\x1b[K`);
      this.#drawn = true;
      return;
    }
    const decile = Math.floor(Math.min(1, fraction) * 10);
    if (decile !== this.#lastDecile) {
      this.#lastDecile = decile;
      this.#out.write(`${line}\n`);
    }
  }

  render(p: StreamProgress, fraction: number): string {
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
    const seconds = Math.max(0.001, (performance.now() - this.#startedMs) / 1000);
    const rate = (p.payments / seconds).toFixed(1);
    const sats = (Number(p.paidMsat) / 1000).toLocaleString('en-US', { maximumFractionDigits: 3 });
    return `[${bar}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${p.consumedUnits}/${this.#totalUnits} ${p.unit} served  ` +
      `${sats} sat paid  ${p.payments} payments (${rate}/s)  exposure ${p.exposureUnits} ${p.unit}`;
  }

  finish(): void {
    if (this.#drawn) this.#out.write('\n');
  }
}

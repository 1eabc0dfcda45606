/**
 * What a channel handle (one-way or revocable) does with the events its runtime delivers: wake the
 * calls waiting on a condition (pay, close, open) and tell the application's listeners. Shared by
 * src/channel/oneway/channel.ts and src/channel/rsmc/channel.ts.
 */
import type { Clock } from '../clock.js';
import type { Unsubscribe } from '../transport/port.js';

/**
 * A condition on (event, record): a result to resolve with (any value but undefined and false), undefined
 * or false to keep waiting, or a throw to reject.
 */
export type Until<E, R, T> = (event: E, record: R) => T | undefined | false;

interface Waiter<E, R> {
  until: Until<E, R, unknown>;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class ChannelEvents<E, R> {
  readonly #listeners = new Set<(event: E) => void>();
  readonly #waiters = new Set<Waiter<E, R>>();
  readonly #clock: () => Clock;

  /** `clock` is read when a timed wait starts (the runtime owns it). */
  constructor(clock: () => Clock) {
    this.#clock = clock;
  }

  onEvent(listener: (event: E) => void): Unsubscribe {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Called by the runtime for every event, after the channel's record was updated. */
  deliver(event: E, record: R): void {
    for (const waiter of [...this.#waiters]) {
      try {
        const result = waiter.until(event, record);
        if (result !== undefined && result !== false) {
          this.#waiters.delete(waiter);
          waiter.resolve(result);
        }
      } catch (error) {
        this.#waiters.delete(waiter);
        waiter.reject(error as Error);
      }
    }
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not stop the channel.
      }
    }
  }

  /** The node stopped: every pending wait rejects with `error`. */
  shutdown(error: Error): void {
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters.clear();
  }

  /** Wait until `until` yields a result; after `timeoutMs` reject with `timeoutError()`. */
  wait<T>(until: Until<E, R, T>, timeoutMs?: number, timeoutError?: () => Error): { promise: Promise<T>; cancel: () => void } {
    let cancelTimer = (): void => undefined;
    let waiter!: Waiter<E, R>;
    const promise = new Promise<T>((resolve, reject) => {
      waiter = {
        until,
        resolve: (value) => {
          cancelTimer();
          resolve(value as T);
        },
        reject: (e) => {
          cancelTimer();
          reject(e);
        },
      };
      this.#waiters.add(waiter);
      if (timeoutMs !== undefined) {
        cancelTimer = this.#clock().setTimer(timeoutMs, () => {
          this.#waiters.delete(waiter);
          reject(timeoutError ? timeoutError() : new Error('timed out'));
        });
      }
    });
    return {
      promise,
      cancel: () => {
        this.#waiters.delete(waiter);
        cancelTimer();
      },
    };
  }
}

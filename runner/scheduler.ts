/**
 * Workers' `scheduler.wait(delay, { signal })`: an awaitable setTimeout, which
 * Workers apps use to pause (`await scheduler.wait(1000)`). It runs on the
 * tenant's timers, so a request waiting on it has work pending (it is never
 * judged stalled), and its resumption is a turn of the request that waited.
 */
import type { TenantTimers } from './timers.js';

export class Scheduler {
  readonly #timers: TenantTimers;

  constructor(timers: TenantTimers) {
    this.#timers = timers;
  }

  /** Resolves after `delay` ms; rejects with the signal's reason if it aborts first. */
  wait(delay?: number, options?: { signal?: AbortSignal }): Promise<void> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#timers.clearTimeout(id);
        reject(signal!.reason);
      };
      const id = this.#timers.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, delay);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/**
 * Fires each served project worker's `triggers.crons` on schedule, in UTC as
 * Workers does. One timer chain per (worker, cron): arm for the next due time,
 * run the scheduled handler when it comes, arm for the one after. The clock is
 * injectable so the next-fire arithmetic and a real firing can be tested without
 * waiting for a wall-clock minute.
 */
import { lazyPackage } from '../lazy-package.js';

const cronParser = lazyPackage<typeof import('cron-parser')>('cron-parser');

export interface SchedulerClock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimer(callback: () => void, delayMs: number): { clear(): void };
}

export const systemClock: SchedulerClock = {
  now: () => Date.now(),
  setTimer(callback, delayMs) {
    const timer = setTimeout(callback, delayMs);
    timer.unref();
    return { clear: () => clearTimeout(timer) };
  },
};

/** The longest single wait: setTimeout takes at most 2^31-1 ms, and a yearly cron is further off. */
const MAX_TIMER_MS = 60 * 60 * 1000;

/** The first time strictly after `afterMs` at which `cron` is due, in ms since the epoch (UTC). */
export function nextFireTime(cron: string, afterMs: number): number {
  return cronParser().CronExpressionParser.parse(cron, { currentDate: new Date(afterMs), tz: 'UTC' }).next().getTime();
}

export interface CronEntry {
  worker: string;
  cron: string;
}

export type RunScheduled = (worker: string, cron: string, scheduledTime: number) => Promise<unknown>;

export class CronScheduler {
  readonly #entries: readonly CronEntry[];
  readonly #run: RunScheduled;
  readonly #clock: SchedulerClock;
  readonly #timers = new Map<CronEntry, { clear(): void }>();
  #stopped = false;

  constructor(entries: readonly CronEntry[], run: RunScheduled, clock: SchedulerClock = systemClock) {
    this.#entries = entries;
    this.#run = run;
    this.#clock = clock;
  }

  start(): void {
    for (const entry of this.#entries) this.#arm(entry, nextFireTime(entry.cron, this.#clock.now()));
  }

  /** No further firings; a run already under way finishes (the broker drains it). */
  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers.values()) timer.clear();
    this.#timers.clear();
  }

  #arm(entry: CronEntry, dueMs: number): void {
    if (this.#stopped) return;
    const delayMs = Math.max(0, dueMs - this.#clock.now());
    const timer = this.#clock.setTimer(() => {
      this.#timers.delete(entry);
      // 1. Woken before the due time (a capped wait, or a timer a little early): wait again.
      if (this.#clock.now() < dueMs) {
        this.#arm(entry, dueMs);
        return;
      }
      // 2. Arm the next one after now: a wake long overdue (a suspended machine) runs the event
      //    once, as Workers would, rather than once per missed time.
      this.#arm(entry, nextFireTime(entry.cron, Math.max(dueMs, this.#clock.now())));
      // 3. Fire. The broker resolves every run with an outcome and logs it; it never rejects.
      void this.#run(entry.worker, entry.cron, dueMs);
    }, Math.min(delayMs, MAX_TIMER_MS));
    this.#timers.set(entry, timer);
  }
}

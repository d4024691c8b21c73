/**
 * How much an instance may log. Every tenant log line (console.*, uncaught
 * errors, unhandled rejections, waitUntil failures) becomes a frame the daemon
 * decodes and a line in its log: without a bound, `for (;;) console.log(x)`
 * within the CPU limit turns 50 ms of the tenant's CPU into tens of thousands
 * of frames for the daemon and megabytes for its log sink
 * (test/hostile/console-flood.test.ts).
 *
 * A token bucket per instance: a line costs one token per started KiB, the
 * bucket holds LOG_BURST_TOKENS and refills LOG_TOKENS_PER_SECOND. A line
 * longer than MAX_LOG_LINE_CHARS is cut. Lines over the budget are dropped and
 * counted; LOG_NOTICE_DELAY_MS after the first drop one notice says how many
 * ("console output dropped: N lines over the limit"), so a flood costs one
 * line, not one per line dropped.
 */
import { LOG_BURST_TOKENS, LOG_TOKENS_PER_SECOND, MAX_LOG_LINE_CHARS } from '../protocol/messages.js';
import { monotonicMs } from './clock.js';

export const LOG_NOTICE_DELAY_MS = 250;

/** Tokens a line of `chars` characters costs: one per started KiB, the whole of a cut line. */
export function lineCost(chars: number): number {
  return 1 + Math.floor(Math.min(chars, MAX_LOG_LINE_CHARS) / 1024);
}

export type DroppedNotice = (text: string, stream: number) => void;

export class LogBudget {
  #tokens = LOG_BURST_TOKENS;
  #refilledAt = monotonicMs();
  #dropped = 0;
  /** Stream of the request whose line was dropped first in this period; the notice is tagged with it. */
  #droppedStream = 0;
  readonly #notice: DroppedNotice;

  constructor(notice: DroppedNotice) {
    this.#notice = notice;
  }

  /** Whether a line could be logged now; checked before formatting one, so a dropped line costs nothing. */
  get available(): boolean {
    this.#refill();
    return this.#tokens >= 1;
  }

  /** Takes the tokens a line of `chars` characters costs; false (and counted) when the budget is spent. */
  take(chars: number, stream: number): boolean {
    this.#refill();
    const cost = lineCost(chars);
    if (this.#tokens >= cost) {
      this.#tokens -= cost;
      return true;
    }
    this.drop(stream);
    return false;
  }

  /** Counts a line dropped; the first of a period schedules the notice. */
  drop(stream: number): void {
    if (this.#dropped++ > 0) return;
    this.#droppedStream = stream;
    // Node's timer (runner/inject.ts), not the tenant's counted ones.
    setTimeout(() => this.#report(), LOG_NOTICE_DELAY_MS).unref();
  }

  #report(): void {
    const dropped = this.#dropped;
    this.#dropped = 0;
    this.#notice(
      `console output dropped: ${dropped} lines over the limit (a burst of ${LOG_BURST_TOKENS} lines, then ${LOG_TOKENS_PER_SECOND} per second; a line costs one per started KiB)`,
      this.#droppedStream,
    );
  }

  #refill(): void {
    const now = monotonicMs();
    this.#tokens = Math.min(LOG_BURST_TOKENS, this.#tokens + ((now - this.#refilledAt) * LOG_TOKENS_PER_SECOND) / 1000);
    this.#refilledAt = now;
  }
}

/** Cuts a line to MAX_LOG_LINE_CHARS, saying how much was cut. */
export function clipLine(text: string): string {
  if (text.length <= MAX_LOG_LINE_CHARS) return text;
  return `${text.slice(0, MAX_LOG_LINE_CHARS)}… (line cut: ${text.length - MAX_LOG_LINE_CHARS} more characters)`;
}

/**
 * The runner's own clock, from process.hrtime: reading `performance` would load
 * Node's perf_hooks into every child (~0.3 MiB) for a number.
 */
import process from 'node:process';

/** Milliseconds since the process started, with sub-millisecond resolution. */
export function nowMs(): number {
  return process.uptime() * 1000;
}

/** Milliseconds from a monotonic clock, for measuring intervals. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * A thread's CPU time read exactly, through a perf task-clock counter (native/task_clock.c, built
 * by `npm run build` into dist/). /proc/PID/schedstat moves only at the scheduler's ticks (every
 * 4 ms here): a runaway read through it had burnt up to a tick past its limit before the watchdog
 * saw it. Reading the counter brings the count up to date at once, even while the thread runs on
 * another CPU. Where the addon could not be built, or the kernel refuses the counter (not allowed
 * to watch the child: perf_event_paranoid 3, or another user's child without CAP_PERFMON),
 * ProcFiles reads schedstat instead.
 */
import { readSync } from 'node:fs';
import { loadAddon } from './native-addon.js';

interface Addon {
  /** A descriptor of a task-clock counter on thread `tid`, or -errno. */
  open(tid: number): number;
}

const addon = loadAddon<Addon>('task_clock');
const count = Buffer.alloc(8);

/** A task-clock counter on thread `tid` (a process's main thread has its pid), or -1 where there can be none. */
export function openTaskClock(tid: number): number {
  if (!addon) return -1;
  const fd = addon.open(tid);
  return fd >= 0 ? fd : -1;
}

/** Nanoseconds the thread has run since its counter was opened; null once it cannot be read. */
export function readTaskClock(fd: number): number | null {
  try {
    return readSync(fd, count, 0, 8, null) === 8 ? Number(count.readBigUInt64LE(0)) : null;
  } catch {
    return null;
  }
}

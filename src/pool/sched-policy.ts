/**
 * SCHED_IDLE for work nobody is waiting for (priority.ts), through a small addon
 * (native/sched_policy.c, built by `npm run build` into dist/): Node has no call
 * for sched_setscheduler, and `chrt`, a process per change, tripled the fork
 * server's CPU under runaways. Where the addon could not be built (no compiler),
 * background work runs at nice 19 only.
 */
import { loadAddon } from './native-addon.js';

interface Addon {
  /** 0, or the errno of sched_setscheduler (ESRCH: the thread is gone). */
  setPolicy(tid: number, idle: boolean): number;
}

const addon = loadAddon<Addon>('sched_policy');

/** Whether threads can be moved between SCHED_IDLE and SCHED_OTHER here. */
export const schedIdleSupported = addon !== null;

/** One thread into SCHED_IDLE or back to SCHED_OTHER; false if it failed (gone, not allowed, no addon). */
export function setThreadIdle(tid: number, idle: boolean): boolean {
  return addon !== null && addon.setPolicy(tid, idle) === 0;
}

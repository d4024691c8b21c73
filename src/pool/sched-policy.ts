/**
 * SCHED_IDLE for work nobody is waiting for (priority.ts), through a small addon
 * (native/sched_policy.c, built by `npm run build` into dist/): Node has no call
 * for sched_setscheduler, and `chrt`, a process per change, tripled the fork
 * server's CPU under runaways. Where the addon could not be built (no compiler),
 * background work runs at nice 19 only.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

interface Addon {
  /** 0, or the errno of sched_setscheduler (ESRCH: the thread is gone). */
  setPolicy(tid: number, idle: boolean): number;
}

// This file runs compiled (dist/src/pool/) or, under the tests, from source (src/pool/).
const PACKAGE_ROOT = new URL(import.meta.url.includes('/dist/src/') ? '../../../' : '../../', import.meta.url);
export const ADDON_PATH = fileURLToPath(new URL('dist/sched_policy.node', PACKAGE_ROOT));

function load(): Addon | null {
  try {
    return createRequire(import.meta.url)(ADDON_PATH) as Addon;
  } catch {
    return null;
  }
}

const addon = load();

/** Whether threads can be moved between SCHED_IDLE and SCHED_OTHER here. */
export const schedIdleSupported = addon !== null;

/** One thread into SCHED_IDLE or back to SCHED_OTHER; false if it failed (gone, not allowed, no addon). */
export function setThreadIdle(tid: number, idle: boolean): boolean {
  return addon !== null && addon.setPolicy(tid, idle) === 0;
}

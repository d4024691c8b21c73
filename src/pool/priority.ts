/**
 * Scheduling priority of children. The daemon is the one front every tenant's
 * requests pass through, so tenant code runs below it (nice CHILD_NICE): on a
 * busy machine the daemon is never queued behind a tenant. Below that, work
 * nobody is waiting for yields to work somebody is: a child booting into the
 * warm pool, and a child running flat out for a request past DEMOTE_AFTER_MS of
 * CPU (a runaway, most likely) run at nice 19, so a neighbour's short request
 * preempts them at once instead of waiting out a scheduler slice. Alone on a
 * core, a child at nice 19 runs as fast as at 0.
 *
 * Lowering a priority is always allowed; raising it back needs CAP_SYS_NICE
 * (root). Without it, children boot at CHILD_NICE and a demoted child stays at
 * nice 19 for the rest of its life.
 *
 * Background priority is also SCHED_IDLE where it can be undone (root, and the
 * addon of sched-policy.ts built). Nice 19 alone did not keep background work off
 * a neighbour's path: traced with `perf sched`, a waking daemon at nice 0 waited
 * out a whole ~3 ms slice of a nice-19 runaway, then another of a nice-19 boot
 * (the kernel protects a task's slice once picked, whatever its nice). The kernel
 * preempts a SCHED_IDLE task for any other at once, and counts a core running
 * only those as idle when it places a waking task. With runaways sent back to back
 * (as in bench/limits part b), a prototype of this read the neighbour's p99 ratio
 * 1.51–1.84 (median 1.61, 4 runs) against 1.88–1.97 at nice 19 alone, interleaved;
 * the bench itself read 1.37–1.92 over six runs afterwards, inside its noise.
 *
 * Nice values and policies are per thread on Linux, and a thread starts with its
 * creator's: these set every thread of the child. Setting only the main thread
 * left a pool child's GC and platform threads at nice 19 for life, and a main
 * thread that waits for them at a GC step stalled for as long as they were starved.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { schedIdleSupported, setThreadIdle } from './sched-policy.js';

export const CHILD_NICE = 5;
export const BACKGROUND_NICE = 19;
/**
 * CPU a request must have used before its child is demoted (at the watchdog's next sample,
 * every watchdogIntervalMs). At 10 ms, runaways sent back to back spent a fifth of their
 * time at the tenants' priority, and a neighbour's p99 doubled; a bare burner that does the
 * same does it too. At 3 ms, few real requests are ever demoted (Workers' are mostly under 1 ms).
 */
export const DEMOTE_AFTER_MS = 3;
/**
 * For this long after one of a worker's instances was stopped for a limit, the instances
 * started for its requests boot at background priority (bootNice): a runaway sent back to
 * back costs a boot per request, 60-100 ms of CPU here, and those are for it to wait out.
 */
export const BREACH_PENALTY_MS = 10_000;
/**
 * A child booting at background priority for longer than this is raised to the tenants'
 * (WarmPool): a boot takes ~100 ms of CPU, and one still booting after a second is being
 * starved by other work on the machine, not yielding to a neighbour's burst.
 */
export const BACKGROUND_BOOT_MAX_MS = 1_000;
export const CAN_RAISE = process.getuid?.() === 0;
/** Background priority includes SCHED_IDLE (see above). */
export const BACKGROUND_IDLE = CAN_RAISE && schedIdleSupported;

/**
 * The fork server runs at the tenants' priority: a request may be waiting for the child it
 * starts (a pool miss). At nice 19 it starved on a saturated machine, and so did every child
 * it started until the daemon heard of it and raised it: pool misses hit the 10 s boot timeout.
 */
export function forkServer(pid: number | undefined): void {
  renice(pid, CHILD_NICE, false);
}

/**
 * The priority a child starts at, set by the fork server right after the spawn, while the
 * child has one thread (the ones it starts later inherit it): a child for the warm pool
 * boots in the background if its priority can be raised later; one a request is waiting
 * for (a pool miss) does not, unless that request is a worker's that keeps breaching
 * its limits (Broker: a runaway's every request costs a boot).
 */
export function bootNice(background: boolean): number {
  return background && CAN_RAISE ? BACKGROUND_NICE : CHILD_NICE;
}

/**
 * The fork server's half of bootNice, for a child it has just spawned (one thread still):
 * background boots under SCHED_IDLE too, where that can be undone.
 */
export function startAt(pid: number, nice: number): void {
  setPriority(pid, nice);
  if (nice === BACKGROUND_NICE && BACKGROUND_IDLE) setThreadIdle(pid, true);
}

/** A child finished booting: it runs at the tenants' priority from now on. */
export function ready(pid: number | undefined): void {
  if (CAN_RAISE) renice(pid, CHILD_NICE, false);
}

/** A child running flat out: background priority. True if it was set. */
export function demote(pid: number | undefined): boolean {
  return renice(pid, BACKGROUND_NICE, BACKGROUND_IDLE);
}

/** Halfway back from demote() where allowed: out of SCHED_IDLE, still at nice 19. True if set. */
export function ease(pid: number | undefined): boolean {
  return CAN_RAISE && renice(pid, BACKGROUND_NICE, false);
}

/** Undoes demote() where allowed. True if the child is back at the tenants' priority. */
export function restore(pid: number | undefined): boolean {
  return CAN_RAISE && renice(pid, CHILD_NICE, false);
}

/**
 * Sets every thread's nice, and its policy where SCHED_IDLE is in use (`idle`: into it; else out
 * of it), listing the threads again until no new one shows: a thread takes its creator's priority
 * when it is created, and the kernel shows it in /proc a little later, so a thread a booting child
 * created while its main thread was being raised could keep the old priority for life. Node's
 * main thread waits for its platform threads at start-up: one left under SCHED_IDLE behind busy
 * processes would hold the whole boot (a suspect for a CI run's pool child that missed the boot
 * timeout though raised; not reproduced).
 */
function renice(pid: number | undefined, nice: number, idle: boolean): boolean {
  if (!pid) return false;
  // The child gone, a thread ended meanwhile, or the system refusing: priority is a
  // refinement, never a reason to fail. Success means its main thread took it.
  const done = new Set<string>();
  let main = false;
  for (let pass = 0; pass < RENICE_PASSES; pass++) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`).filter((tid) => !done.has(tid));
    } catch {
      return main;
    }
    if (tids.length === 0) break;
    for (const tid of tids) {
      done.add(tid);
      try {
        if (BACKGROUND_IDLE) setThreadIdle(Number(tid), idle);
        setPriority(Number(tid), nice);
        if (Number(tid) === pid) main = true;
      } catch {
        // next thread
      }
    }
  }
  return main;
}

/** Enough for a child starting all its threads at once (Node starts ~7); more is a fork bomb's. */
const RENICE_PASSES = 4;

/**
 * How many threads of `pid` are in each scheduler state and priority, e.g.
 * `{ "S nice 5": 6, "R idle, nice 19": 1 }` (R runnable, S sleeping, D in the kernel), and the
 * CPU the child has used: the log line of a child that did not boot in time says whether it was
 * starved of a CPU or waiting for something. Empty if the child is gone.
 */
export function threadPriorities(pid: number | undefined): { threads: Record<string, number>; cpuMs?: number } {
  const threads: Record<string, number> = {};
  if (!pid) return { threads };
  let tids: string[];
  let cpuMs: number | undefined;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
    // Fields after the command: 11 utime, 12 stime, in USER_HZ (100 on Linux).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    cpuMs = (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return { threads };
  }
  for (const tid of tids) {
    try {
      // Fields after the command: 0 state, 16 nice, 38 policy (5: SCHED_IDLE).
      const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      const key = `${fields[0]} ${fields[38] === '5' ? 'idle, ' : ''}nice ${fields[16]}`;
      threads[key] = (threads[key] ?? 0) + 1;
    } catch {
      // Ended meanwhile.
    }
  }
  return { threads, cpuMs };
}

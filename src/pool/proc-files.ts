/**
 * A child's counters in /proc, read through descriptors opened once per child.
 *
 * The watchdog reads them on every request and every few milliseconds while a
 * child is busy. Opening a /proc file by path costs ~10 µs here, hot (path
 * walk, permission check, allocation), and several times that after a few idle
 * milliseconds; a pread on a descriptor already open costs under 1 µs. At 200
 * requests a second the path reads were a quarter of the daemon's CPU.
 *
 * A descriptor also stays bound to the process it was opened for: once that
 * process is gone, reads fail (ESRCH) instead of reading whichever process
 * reuses its pid.
 */
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { openTaskClock, readTaskClock } from './task-clock.js';

/** #taskClock once the counter could not be opened. */
const NO_COUNTER = -2;
/** Linux reports utime and stime in USER_HZ, 100 per second on every architecture node runs on. */
const TICK_MS = 10;
const PAGE_BYTES = 4096;
/** Longer than any line these files hold (/proc/PID/stat is ~300 bytes; the command name is at most 64). */
const scratch = Buffer.alloc(1024);

export class ProcFiles {
  readonly pid: number;
  #schedstat = -1;
  #stat = -1;
  #statm = -1;
  /** schedstat of every thread but the main one and the runtime's, by thread id. */
  readonly #threads = new Map<number, number>();
  /** The threads the child had when it booted (see markRuntimeThreads), null until marked. */
  #runtimeThreads: Set<number> | null = null;
  /** A task-clock counter on the main thread (see exactMainCpuNs), and what to add to its count for schedstat's figure. */
  #taskClock = -1;
  #taskClockOffsetNs: number | null = null;
  #closed = false;

  constructor(pid: number) {
    this.pid = pid;
  }

  /** Nanoseconds the main thread (where all JavaScript runs) has spent on a CPU; null once the process is gone. */
  mainCpuNs(): number | null {
    if (this.#schedstat < 0) this.#schedstat = this.#open(`/proc/${this.pid}/schedstat`);
    const text = read(this.#schedstat);
    return text === null ? null : Number(text.slice(0, text.indexOf(' ')));
  }

  /**
   * The main thread's CPU time as mainCpuNs counts it, but up to date now (see task-clock.ts);
   * null where there is no counter, or it is not anchored yet (see anchorTaskClock). Each read
   * costs ~25 µs on these VMs (the kernel interrupts the CPU the thread runs on): for a request
   * near its limit, not for every sample.
   */
  exactMainCpuNs(): number | null {
    if (this.#taskClockOffsetNs === null) return null;
    const count = readTaskClock(this.#taskClock);
    return count === null ? null : this.#taskClockOffsetNs + count;
  }

  /**
   * Opens the main thread's task-clock counter, and ties its count to schedstat's figure, which is
   * exact while the thread sleeps (it is brought up to date when the thread leaves its CPU). Call
   * it when the child is likely idle. False if it should be tried again, the thread having run
   * meanwhile; true once done, or where there is no counter (or no process).
   */
  anchorTaskClock(): boolean {
    if (this.#taskClockOffsetNs !== null || this.#closed || this.#taskClock === NO_COUNTER) return true;
    if (this.#taskClock < 0) this.#taskClock = openTaskClock(this.pid);
    if (this.#taskClock < 0) {
      // No counter for this child (no addon, or not allowed): not asked for again.
      this.#taskClock = NO_COUNTER;
      return true;
    }
    const before = this.mainCpuNs();
    const count = readTaskClock(this.#taskClock);
    const after = this.mainCpuNs();
    if (before === null || count === null) return true;
    if (after !== before || this.running()) return false;
    this.#taskClockOffsetNs = before - count;
    return true;
  }

  /**
   * Records the threads the child has now, booted and before any tenant code ran: node's
   * platform workers, where V8 compiles optimised code and helps its collector, and the
   * platform's timer thread. threadsCpuNs leaves them out from then on. Under 400 req/s over
   * 20 hello-world workers (2026-12-07), those workers used 21% of the children's CPU, 84% of
   * it TurboFan compiling (perf), in bursts of 2-5 ms per 20 ms, still after a minute of the
   * same traffic; charged to whichever request was in flight, they stopped hello-world requests
   * at 11 ms under --cpu-ms 10. It is the runtime's work, not the request's. A tenant drives it
   * only through its main thread, which is counted, and it runs at the
   * child's priority, so a demoted child's helpers are demoted too. libuv's thread pool, where
   * a request's PBKDF2 or compression runs, starts on first use, after this: still counted.
   * Idempotent; false once the process is gone.
   */
  markRuntimeThreads(): boolean {
    if (this.#runtimeThreads) return true;
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${this.pid}/task`);
    } catch {
      return false;
    }
    this.#runtimeThreads = new Set(tids.map(Number).filter((tid) => tid !== this.pid));
    return true;
  }

  /**
   * Nanoseconds every other thread but the runtime's (markRuntimeThreads) has spent on a CPU:
   * libuv's pool; null once the process is gone. With `relist` false, the threads found by the last listing are read
   * and the directory is not listed again (unless there was none): a listing is five system
   * calls, on these machines more than all the reads of a request's start together. A thread
   * started since the last listing is missed until the next one, which then counts all its
   * CPU, since it was started: to the request being watched, which most likely started it.
   */
  threadsCpuNs(relist = true): number | null {
    if (this.#closed) return null;
    if (!relist && this.#threads.size > 0) return this.#readThreads();
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${this.pid}/task`);
    } catch {
      return null;
    }
    const live = new Set<number>();
    let total = 0;
    for (const name of tids) {
      const tid = Number(name);
      if (tid === this.pid || this.#runtimeThreads?.has(tid)) continue;
      live.add(tid);
      let fd = this.#threads.get(tid);
      if (fd === undefined) {
        fd = this.#open(`/proc/${this.pid}/task/${tid}/schedstat`);
        this.#threads.set(tid, fd);
      }
      // A thread that ended since the listing: its time is lost to the count, a few ms at most.
      const text = read(fd);
      if (text !== null) total += Number(text.slice(0, text.indexOf(' ')));
    }
    for (const [tid, fd] of this.#threads) {
      if (live.has(tid)) continue;
      closeQuietly(fd);
      this.#threads.delete(tid);
    }
    return total;
  }

  #readThreads(): number {
    let total = 0;
    for (const fd of this.#threads.values()) {
      // A thread that has ended reads as nothing: its time is lost to the count, as above.
      const text = read(fd);
      if (text !== null) total += Number(text.slice(0, text.indexOf(' ')));
    }
    return total;
  }

  /**
   * CPU of the whole process, every thread, in 10 ms ticks (utime + stime); null once it is gone.
   * Read twice a second for every idle instance, so parsed from the bytes where they lie: split
   * into strings, the line made ~50 of them per read, and with 50 idle instances the daemon
   * spent a fifth of its idle CPU here and more in the collections that garbage brought on.
   */
  processCpuMs(): number | null {
    const length = this.#readStat();
    if (length <= 0) return null;
    // utime and stime are fields 11 and 12 after the state (proc(5) numbers them 14 and 15).
    let at = stateAt(length);
    let field = 0;
    let utime = 0;
    let stime = 0;
    for (; at < length && field <= 12; at++) {
      const byte = scratch[at]!;
      if (byte === 0x20) field++;
      else if (field === 11) utime = utime * 10 + (byte - 0x30);
      else if (field === 12) stime = stime * 10 + (byte - 0x30);
    }
    return field > 12 ? (utime + stime) * TICK_MS : null;
  }

  /**
   * Whether the main thread is running or runnable (state R). Read at every sample of a busy
   * child, so read from the bytes where they lie, as processCpuMs does.
   */
  running(): boolean {
    const length = this.#readStat();
    return length > 0 && scratch[stateAt(length)] === 0x52; // 'R'
  }

  /** Reads /proc/PID/stat into `scratch`; its length, or ≤ 0 once the process is gone. */
  #readStat(): number {
    if (this.#stat < 0) this.#stat = this.#open(`/proc/${this.pid}/stat`);
    return readBytes(this.#stat);
  }

  /** Resident anonymous memory in MiB (statm: resident − shared); null once the process is gone. */
  memoryMb(): number | null {
    if (this.#statm < 0) this.#statm = this.#open(`/proc/${this.pid}/statm`);
    const text = read(this.#statm);
    if (text === null) return null;
    const fields = text.split(' ');
    return ((Number(fields[1]) - Number(fields[2])) * PAGE_BYTES) / (1024 * 1024);
  }

  /**
   * Closes what only a busy child is read through (its threads, schedstat, statm), keeping
   * /proc/PID/stat, which idle sampling reads: an idle child holds one descriptor, not one
   * per thread. They are opened again on the next read.
   */
  closeBusy(): void {
    if (this.#schedstat < 0 && this.#statm < 0 && this.#threads.size === 0) return;
    for (const fd of [this.#schedstat, this.#statm, ...this.#threads.values()]) closeQuietly(fd);
    this.#schedstat = -1;
    this.#statm = -1;
    this.#threads.clear();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of [this.#schedstat, this.#stat, this.#statm, this.#taskClock, ...this.#threads.values()]) closeQuietly(fd);
    this.#threads.clear();
  }

  /** A descriptor, or -1 when the file cannot be opened (the process is gone, or this ProcFiles is closed). */
  #open(path: string): number {
    if (this.#closed) return -1;
    try {
      return openSync(path, 'r');
    } catch {
      return -1;
    }
  }
}

function read(fd: number): string | null {
  const bytes = readBytes(fd);
  return bytes > 0 ? scratch.toString('latin1', 0, bytes) : null;
}

/** Reads the file into `scratch` from its start: the byte count, or -1 once the process is gone. */
function readBytes(fd: number): number {
  if (fd < 0) return -1;
  try {
    return readSync(fd, scratch, 0, scratch.byteLength, 0);
  } catch {
    return -1;
  }
}

function closeQuietly(fd: number): void {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

/**
 * Where the state lies in the /proc/PID/stat line read into `scratch`: the first field after
 * the command name, which is in parentheses and may hold spaces.
 */
function stateAt(length: number): number {
  let at = length - 1;
  while (at > 0 && scratch[at] !== 0x29) at--;
  return at + 2;
}

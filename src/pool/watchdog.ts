/**
 * The limits watchdog: while a child has work in flight (a request, or its
 * script loading), samples its CPU time and memory from outside and charges
 * the CPU to what it was doing. A child stuck in `for (;;) {}` cannot police
 * itself; the daemon can.
 *
 * CPU comes from /proc/PID/schedstat (nanoseconds on the CPU for the main
 * thread, where all JavaScript runs; MEASURED.md: /proc/PID/stat and pidusage
 * count 10 ms ticks, too coarse for a 50 ms limit), sampled every interval, and
 * from the schedstat of every thread started after boot less often: work a
 * request hands to libuv's pool (PBKDF2, compression) runs there, and four such
 * jobs once ran 2 s of CPU under --cpu-ms 200 unseen. The threads a child boots
 * with (V8's compiler and collector helpers) are the runtime's, not counted
 * (ProcFiles.markRuntimeThreads). Memory is the resident
 * anonymous memory from /proc/PID/statm (resident minus file-backed pages),
 * sampled less often: what the tenant can grow (V8 heap, buffers), without the
 * ~34 MiB of node's code and libraries that every child maps and shares.
 *
 * An instance with nothing in flight is still sampled, every IDLE_SAMPLE_MS:
 * CPU it burns then (an interval a response left running) belongs to no
 * request, and past the CPU limit the instance is stopped, as Workers ends a
 * finished request's timers.
 */
import { IdTable } from '../../protocol/id-table.js';
import { IDLE_HOUSEKEEPING_MS, type Limits } from '../limits.js';
import { CpuEvent, SAMPLE_LATE, SAMPLE_RUNNING, SAMPLE_STALL, SAMPLE_UNCHARGED } from './cpu-trace.js';
import type { Exchange, Instance } from './instance.js';
import * as priority from './priority.js';
import { ProcFiles } from './proc-files.js';

/** What a breach was about, for the error response and the log line. */
export type Breach =
  | { limit: 'cpuMs'; exchange: Exchange; valueMs: number }
  | { limit: 'startupCpuMs'; valueMs: number }
  | { limit: 'memoryMb'; valueMb: number }
  /** CPU used with no request in flight (a timer or interval left running). */
  | { limit: 'idleCpuMs'; valueMs: number }
  /** Not a breach: memory passed recycleRssMb, so the instance should be replaced gracefully. */
  | { limit: 'recycleRssMb'; valueMb: number }
  /**
   * Not a breach: a late sample (or a booked stall) charged the requests in flight, the most
   * charged of them this one (valueMs, with the held charge), but the child stopped running
   * before it used more; the held charge (waivedMs, over all of them) was taken back.
   */
  | { limit: 'lateCpuMs'; exchange: Exchange; valueMs: number; waivedMs: number; cause: HeldCause };

/** Why a sample's charge was held: the sample came late, or it found a stall booked at once (see BOOKED_STALL_OVER_MS). */
export type HeldCause = 'late' | 'stall';

/** Memory, and the CPU of threads other than the main one, every this many samples. */
const RSS_EVERY_SAMPLES = 4;
/**
 * How often an instance with nothing in flight is sampled. Every live instance of every
 * worker is, so this is one read of /proc/PID/stat each (all threads, in 10 ms ticks:
 * coarse, but the question is only whether an idle child used tens of ms), not the
 * per-thread reads of a busy child: a thousand idle tenants cost ~2000 reads a second.
 */
const IDLE_SAMPLE_MS = 500;
/**
 * An instance idle for BUSY_FILES_IDLE_MS whose last sample found it using no CPU is sampled
 * only every this many idle ticks (2 s), the instances staggered so that the reads spread over
 * the ticks. Each sample costs an idle daemon ~0.1-0.15 ms of CPU on these VMs (the read, and
 * the wake-up it shares with the others): with 50 idle instances the daemon spent 6-9 ms of CPU
 * a second on it. A timer left running by the last request is caught at the full rate (it
 * starts while the instance is newly idle); one that starts burning later is first seen up to
 * 2 s late, and sampled at the full rate from then on.
 */
const LONG_IDLE_EVERY = 4;
/**
 * How long an instance idles before the descriptors only a busy child is read through (its
 * schedstat, statm, every thread's schedstat) are closed, leaving the one idle sampling reads.
 * Opening them again by path is five system calls and a directory listing, ~0.1-0.3 ms on these
 * VMs after idle, before the request that reopens them reaches its child. Closed after one idle
 * sample, they were reopened by every request that came half a second or more after the last.
 */
const BUSY_FILES_IDLE_MS = 10_000;

/**
 * The kernel adds a running thread's CPU time to schedstat at each scheduler tick
 * (every 4 ms at HZ=250, as here), so a reading lags a thread that is on the CPU
 * right now by up to a tick. Near a limit, the watchdog reads what is not booked yet
 * from the child's task clock (ProcFiles.exactMainCpuNs); where there is none, it adds
 * the time since the figure last moved, at most this much, for a child running flat out.
 */
const TICK_LAG_CAP_MS = 4;
/**
 * A busy instance whose CPU has not moved for this many samples in a row (100 ms at the default
 * interval) and that has been sent nothing meanwhile is quiet: a request waiting on a slow
 * origin, or, above all, an open WebSocket between messages, which may last hours. It is then
 * sampled every QUIET_SAMPLE_MS, and when every busy instance is quiet the watchdog wakes only
 * that often: sampled every 5 ms, one instance holding an idle WebSocket cost the daemon ~15 ms
 * of CPU a second. Anything sent to the child (a request, a message, a subresponse, credit) or a
 * turn the child announces wakes it at once (Instance.onWake), so a runaway is still caught
 * within an interval of its start; CPU used with no such sign is seen up to QUIET_SAMPLE_MS late,
 * and charged in full.
 */
const QUIET_AFTER_SAMPLES = 20;
const QUIET_SAMPLE_MS = 100;
/** Near a limit (within one interval), sample every this many ms. */
const NEAR_LIMIT_SAMPLE_MS = 1;
/**
 * A sample this much later than its instance was due is late: what it finds was not seen as it
 * happened, and its charge is held (Instance.chargeCpu) until the child shows whether it is still
 * burning. In CI a hello-world request (0.4 ms of the child's own CPU) was stopped by the CPU
 * limit when one sample, ~100 ms late, found 101 ms on the child's main thread at once
 * (test/faults/kills-under-load.test.ts): the daemon had not run for those 100 ms while the
 * child's count grew, either because the daemon was starved or because the host stopped the
 * whole VM and the guest booked the pause to the thread on the CPU (these VMs report no steal).
 */
const LATE_SAMPLE_MS = 25;
/**
 * One thread cannot run longer than the wall time between two readings, plus the tick its figure
 * lagged at the first (TICK_LAG_CAP_MS) and a millisecond for the timers. A sample that finds more
 * on the main thread found a stall booked at once, and its charge is held like a late sample's:
 * the host stopped the CPU the child was on while the daemon ran on time on the other (these VMs
 * report no steal, so the guest books the pause to the thread on that CPU, and the figure, moved
 * at its ticks, jumps by the pause when the CPU resumes). In CI a hello-world request was stopped
 * at 50.57 ms of CPU in 52.6 ms of wall with every sample on time
 * (test/faults/kills-under-load.test.ts): such a pause fits it, as do V8's helper threads (no
 * longer charged, see ProcFiles.markRuntimeThreads) and the memory reducer (see spawn.ts). A runaway
 * stopped by the host is still stopped, HELD_CONFIRM_MS later; a request that answers first is not.
 */
const BOOKED_STALL_OVER_MS = TICK_LAG_CAP_MS + 1;
/**
 * A held charge is kept once the child has used this much more CPU since the late sample without
 * a pause: a runaway's count moves a scheduler tick (4 ms) at a time. A child that stops running
 * first was not running for a request, or is no longer: the held charge is taken back (see
 * #judgeHeld). Until one or the other, it stops no request. Only what samples on time find
 * without a booked stall counts toward this: a hello-world request under the load of
 * test/faults/kills-under-load.test.ts (2026-12-07) was charged 3.5, 5.7 and 7.1 ms, then its
 * child stayed runnable 25 ms with its count still, then +32.0 ms in 7.1 ms (held), runnable 20
 * ms more, then +24.8 ms in 0.2 ms: the second stall counted as burning more kept the first, and
 * the request was stopped at 73 ms.
 */
const HELD_CONFIRM_MS = 3;
/** How often, and how far apart, tying a new pool child's task clock is tried (see #anchorSoon). */
const ANCHOR_TRIES = 5;
const ANCHOR_RETRY_MS = 10;
/** Burn rate over a window at least this long tells a child running flat out. */
const BURN_WINDOW_MS = 20;
/**
 * A child under SCHED_IDLE that got less than this share of a CPU over a window is starved by
 * work above it and eased to nice 19. Not the 75% that tells a child flat out: SCHED_IDLE
 * runaways and boots share what no one else wants, ~50% each on one core, and runaways eased
 * for that held whole slices at nice 19 against the neighbour's daemon again (perf sched).
 */
const IDLE_STARVED_SHARE = 0.25;

interface Tracked {
  readonly instance: Instance;
  /** Running at background priority now (see priority.ts). */
  demoted: boolean;
  /** Demoted under SCHED_IDLE, not yet eased to nice 19 alone (see #sampleCpu). */
  idle: boolean;
  /** Its worker is in its penalty after a breach (see watch): eased, never restored. */
  penalised: boolean;
  /** Demoted and restored since its last request began, for not running flat out (see #sampleCpu). */
  restored: boolean;
  lastCpuNs: number | null;
  samples: number;
  /** When its CPU was last sampled (performance.now()), and how long after that the next sample is due. */
  sampledAt: number;
  dueInMs: number;
  /**
   * While a charge is held (see LATE_SAMPLE_MS), the main-thread CPU found since by samples on
   * time that found no booked stall, toward HELD_CONFIRM_MS; null when nothing is held.
   */
  heldCleanNs: number | null;
  heldCause: HeldCause;
  /** When the schedstat figure last moved (performance.now()). */
  changedAt: number;
  /** Whether the child used ≥ 75% of a CPU over the last window (the kernel books it in ticks, so not 100%). */
  burning: boolean;
  windowAt: number;
  windowCpuNs: number | null;
  /** The next near-limit re-sample, if one is due. */
  nearLimit: NodeJS.Timeout | null;
  /** The re-sample that confirms a breach once the child's waiting frames are read (see #check). */
  confirming: NodeJS.Immediate | null;
  /** CPU of every thread but the main one at the last reading. */
  threadsCpuNs: number | null;
  /** Samples in a row that found its CPU unmoved (see QUIET_AFTER_SAMPLES). */
  stillSamples: number;
  quiet: boolean;
}

interface Idle {
  readonly instance: Instance;
  /** All threads' CPU when last read. */
  cpuMs: number;
  /** CPU used since the instance last had work. */
  usedMs: number;
  /** When it last had work (performance.now()). */
  readonly since: number;
  /** Its last sample found no CPU used since the one before (see LONG_IDLE_EVERY). */
  quiet: boolean;
}

export class Watchdog {
  readonly #limits: Limits;
  readonly #onBreach: (instance: Instance, breach: Breach) => void;
  // By Instance.serial: entries come and go with every request at low load (see IdTable).
  readonly #tracked = new IdTable<Tracked>();
  readonly #idle = new IdTable<Idle>();
  #idleTicks = 0;
  /** Open /proc descriptors of every instance watched, busy or idle, until it is gone. */
  readonly #files = new Map<Instance, ProcFiles>();
  #timer: NodeJS.Timeout | null = null;
  /** The busy timer runs at QUIET_SAMPLE_MS: every busy instance is quiet. */
  #slow = false;
  #ticks = 0;
  #idleTimer: NodeJS.Timeout | null = null;

  constructor(limits: Limits, onBreach: (instance: Instance, breach: Breach) => void) {
    this.#limits = limits;
    this.#onBreach = onBreach;
  }

  /**
   * Opens the descriptors of a child that will be busy soon (a warm child joining the pool),
   * so that its first request does not wait for them: a cold start's Load frame waited
   * ~0.2-0.3 ms behind the opens here. They are closed when the child exits.
   */
  prepare(instance: Instance): void {
    const files = this.#filesOf(instance);
    if (!files) return;
    files.markRuntimeThreads();
    files.mainCpuNs();
    files.threadsCpuNs();
    files.memoryMb();
    files.processCpuMs();
    this.#anchorSoon(files, ANCHOR_TRIES);
    void instance.exited.then(() => this.#forget(instance));
  }

  /**
   * Ties a child's task clock (ProcFiles.anchorTaskClock), trying again a little later while the
   * child is still finishing its boot: in bench/limits half the pool children were found on a CPU
   * the moment they joined the pool, and their runaways were judged without the counter.
   */
  #anchorSoon(files: ProcFiles, tries: number): void {
    if (files.anchorTaskClock() || tries <= 1) return;
    setTimeout(() => this.#anchorSoon(files, tries - 1), ANCHOR_RETRY_MS).unref();
  }

  /**
   * Starts watching an instance that is about to be given work (call it before the request is
   * sent, see below); cheap to call per request.
   * With `background` (its worker breached a limit moments ago, see Broker), the child runs
   * at background priority from the request's first instruction instead of its first sample
   * past DEMOTE_AFTER_MS: runaways sent back to back each ran 3-8 ms at the tenants' priority
   * before that sample, and perf sched showed the neighbour's daemon waiting out those slices.
   */
  watch(instance: Instance, background = false): void {
    this.#idle.delete(instance.serial);
    let tracked = this.#tracked.get(instance.serial);
    // Each request may be demoted early once (see #sampleCpu).
    if (tracked) {
      tracked.restored = false;
      if (tracked.quiet) this.#wake(tracked);
    } else {
      const now = performance.now();
      const files = this.#filesOf(instance);
      // A child spawned for a waiting request is first watched as its script loads: its own code
      // has not run yet (see markRuntimeThreads). A no-op for one prepared as a pool child.
      files?.markRuntimeThreads();
      const cpuNs = files?.mainCpuNs() ?? null;
      instance.openCpuWindow();
      // Called before the request is sent: a child on a CPU now is busy with something else (a
      // garbage collection, most often), and what it burns until it next speaks is not this
      // request's (Instance.noteBurn).
      if (files?.running()) instance.noteBurn(true);
      this.#tracked.set(instance.serial, (tracked = {
        instance,
        demoted: false,
        idle: false,
        penalised: false,
        restored: false,
        lastCpuNs: cpuNs,
        samples: 0,
        sampledAt: now,
        dueInMs: this.#limits.watchdogIntervalMs,
        heldCleanNs: null,
        heldCause: 'late',
        changedAt: now,
        burning: false,
        windowAt: now,
        windowCpuNs: cpuNs,
        nearLimit: null,
        confirming: null,
        // The threads the last listing found (see threadsCpuNs): per request, no listing.
        threadsCpuNs: files?.threadsCpuNs(false) ?? null,
        stillSamples: 0,
        quiet: false,
      }));
    }
    if (background) {
      tracked.penalised = true;
      if (!tracked.demoted) this.#demote(instance, tracked, performance.now(), tracked.lastCpuNs);
    }
    // A new busy instance, or one woken: sampled at the full rate from now, whatever the others do.
    if (!this.#timer || this.#slow) this.#startTimer(false);
  }

  #startTimer(slow: boolean): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#slow = slow;
    this.#timer = setInterval(() => this.#tick(), slow ? QUIET_SAMPLE_MS : this.#limits.watchdogIntervalMs);
    this.#timer.unref();
  }

  /** A quiet instance was sent something, or announced a turn of its own: sampled at the full rate again. */
  #wake(tracked: Tracked): void {
    tracked.quiet = false;
    tracked.stillSamples = 0;
    tracked.instance.onWake = null;
    if (this.#slow) this.#startTimer(false);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    for (const tracked of this.#tracked.values()) this.#untrack(tracked.instance, tracked);
    if (this.#idleTimer) clearInterval(this.#idleTimer);
    this.#idleTimer = null;
    this.#idle.clear();
    for (const files of this.#files.values()) files.close();
    this.#files.clear();
  }

  #tick(): void {
    // A quiet instance is sampled every QUIET_SAMPLE_MS: at every tick of the slow timer, and at
    // every so many of the fast one.
    const quietTick = this.#slow || ++this.#ticks % Math.max(1, Math.round(QUIET_SAMPLE_MS / this.#limits.watchdogIntervalMs)) === 0;
    let allQuiet = true;
    for (const tracked of this.#tracked.values()) {
      const { instance } = tracked;
      // Untracked since the copy was made (a breach's consequences, say).
      if (this.#tracked.get(instance.serial) !== tracked) continue;
      if (tracked.quiet && !quietTick) continue;
      if (instance.state === 'dead' || instance.disposed) {
        this.#untrack(instance, tracked);
        this.#forget(instance);
        continue;
      }
      this.#sampleCpu(instance, tracked);
      // A breach just now terminated it.
      if (instance.disposed) continue;
      if (++tracked.samples % RSS_EVERY_SAMPLES === 0) {
        this.#sampleThreads(instance, tracked);
        if (instance.disposed) continue;
        this.#sampleMemory(instance);
        if (instance.disposed) continue;
      }
      // Nothing in flight any more: sampled slowly until the next request.
      if (!instance.loading && instance.inflight === 0) {
        this.#untrack(instance, tracked);
        this.#watchIdle(instance);
        continue;
      }
      if (!tracked.quiet && tracked.stillSamples >= QUIET_AFTER_SAMPLES && !instance.loading) {
        tracked.quiet = true;
        tracked.dueInMs = QUIET_SAMPLE_MS;
        instance.onWake = () => this.#wake(tracked);
      }
      if (!tracked.quiet) allQuiet = false;
    }
    if (this.#tracked.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = null;
    } else if (allQuiet && !this.#slow && this.#timer) {
      this.#startTimer(true);
    }
  }

  #filesOf(instance: Instance): ProcFiles | null {
    let files = this.#files.get(instance);
    if (!files) {
      if (!instance.pid) return null;
      files = new ProcFiles(instance.pid);
      this.#files.set(instance, files);
    }
    return files;
  }

  /** The instance is gone: its descriptors are closed (see #filesOf). */
  #forget(instance: Instance): void {
    this.#files.get(instance)?.close();
    this.#files.delete(instance);
  }

  /**
   * The instance's last request has settled: its memory is checked now and it is watched as
   * idle, rather than at the next tick. At a few requests a second that tick was one more
   * wake-up of the daemon per request, on these machines ~100 µs of CPU each.
   */
  release(instance: Instance): void {
    const tracked = this.#tracked.get(instance.serial);
    if (!tracked || instance.loading || instance.inflight > 0 || instance.disposed || instance.state === 'dead') return;
    this.#sampleMemory(instance);
    if (instance.disposed) return;
    this.#untrack(instance, tracked);
    this.#watchIdle(instance);
    if (this.#tracked.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  #sampleMemory(instance: Instance): void {
    const usedMb = this.#filesOf(instance)?.memoryMb() ?? null;
    if (usedMb === null) return;
    const limits = instance.limits ?? this.#limits;
    if (usedMb > limits.memoryMb) {
      this.#onBreach(instance, { limit: 'memoryMb', valueMb: usedMb });
    } else if (limits.recycleRssMb > 0 && usedMb > limits.recycleRssMb) {
      this.#onBreach(instance, { limit: 'recycleRssMb', valueMb: usedMb });
    }
  }

  /** Stops watching an instance: no pending re-sample, and its priority back where allowed. */
  #untrack(instance: Instance, tracked: Tracked): void {
    if (tracked.nearLimit) clearTimeout(tracked.nearLimit);
    if (tracked.confirming) clearImmediate(tracked.confirming);
    instance.onWake = null;
    instance.settleHeldCpu(true);
    if (tracked.demoted && !instance.disposed && instance.state !== 'dead') priority.restore(instance.pid);
    this.#tracked.delete(instance.serial);
  }

  /** CPU of the threads other than the main one since the last reading, charged like the main thread's. */
  #sampleThreads(instance: Instance, tracked: Tracked): void {
    const cpuNs = this.#filesOf(instance)?.threadsCpuNs() ?? null;
    if (cpuNs === null) return;
    if (tracked.threadsCpuNs !== null && cpuNs > tracked.threadsCpuNs) {
      instance.chargeCpu((cpuNs - tracked.threadsCpuNs) / 1e6);
      this.#check(instance, tracked, performance.now());
    }
    tracked.threadsCpuNs = cpuNs;
  }

  #watchIdle(instance: Instance): void {
    const cpuMs = this.#filesOf(instance)?.processCpuMs() ?? null;
    if (cpuMs === null) {
      this.#forget(instance);
      return;
    }
    this.#idle.set(instance.serial, { instance, cpuMs, usedMs: 0, since: performance.now(), quiet: false });
    if (!this.#idleTimer) {
      this.#idleTimer = setInterval(() => this.#idleTick(), IDLE_SAMPLE_MS);
      this.#idleTimer.unref();
    }
  }

  #idleTick(): void {
    const now = performance.now();
    const tick = ++this.#idleTicks;
    for (const idle of this.#idle.values()) {
      const { instance } = idle;
      if (this.#idle.get(instance.serial) !== idle) continue;
      const gone = instance.state === 'dead' || instance.disposed;
      const longIdle = now - idle.since >= BUSY_FILES_IDLE_MS;
      if (!gone && idle.quiet && longIdle && (tick + instance.serial) % LONG_IDLE_EVERY !== 0) continue;
      const cpuMs = gone ? null : (this.#filesOf(instance)?.processCpuMs() ?? null);
      if (cpuMs === null) {
        this.#idle.delete(instance.serial);
        this.#forget(instance);
        continue;
      }
      // A child spawned for a waiting request was never prepared: its counter is tied in idle,
      // before the busy descriptors close (tying it reads schedstat).
      this.#files.get(instance)?.anchorTaskClock();
      // Idle for a while now: down to one descriptor until its next request (and the task clock).
      if (longIdle) this.#files.get(instance)?.closeBusy();
      idle.quiet = cpuMs === idle.cpuMs;
      idle.usedMs += cpuMs - idle.cpuMs;
      idle.cpuMs = cpuMs;
      if (idle.usedMs > (instance.limits ?? this.#limits).cpuMs + IDLE_HOUSEKEEPING_MS) {
        this.#idle.delete(instance.serial);
        this.#forget(instance);
        this.#onBreach(instance, { limit: 'idleCpuMs', valueMs: idle.usedMs });
      }
    }
    if (this.#idle.size === 0 && this.#idleTimer) {
      clearInterval(this.#idleTimer);
      this.#idleTimer = null;
    }
  }

  /** `confirmed`: a breach it finds stands (see #check). */
  #sampleCpu(instance: Instance, tracked: Tracked, confirmed = false): void {
    const now = performance.now();
    const files = this.#filesOf(instance);
    const cpuNs = files?.mainCpuNs() ?? null;
    if (cpuNs === null) return;
    // Not only when the CPU moved: a child starved of a CPU on a loaded machine is still busy.
    const running = files?.running() ?? false;
    instance.noteBurn(running);
    const sinceMs = now - tracked.sampledAt;
    const late = sinceMs > tracked.dueInMs + LATE_SAMPLE_MS;
    tracked.sampledAt = now;
    // A quiet instance woken since its last sample is sampled sooner than due: not late.
    tracked.dueInMs = tracked.quiet ? QUIET_SAMPLE_MS : this.#limits.watchdogIntervalMs;
    if (tracked.lastCpuNs !== null && cpuNs > tracked.lastCpuNs) {
      const usedMs = (cpuNs - tracked.lastCpuNs) / 1e6;
      const stall = !late && usedMs > sinceMs + BOOKED_STALL_OVER_MS;
      const charged = instance.chargeCpu(usedMs, late || stall);
      const flags = (running ? SAMPLE_RUNNING : 0) | (late ? SAMPLE_LATE : 0) | (stall ? SAMPLE_STALL : 0) | (charged ? 0 : SAMPLE_UNCHARGED);
      instance.cpuTrace.record(CpuEvent.Sample, now, usedMs, sinceMs, flags, instance.topCpu()?.cpuMs ?? 0);
      if (late || stall) {
        if (tracked.heldCleanNs === null) {
          tracked.heldCleanNs = 0;
          tracked.heldCause = late ? 'late' : 'stall';
        }
      } else if (tracked.heldCleanNs !== null) {
        tracked.heldCleanNs += cpuNs - tracked.lastCpuNs;
      }
      tracked.changedAt = now;
      tracked.stillSamples = 0;
      if (tracked.quiet) this.#wake(tracked);
    } else {
      tracked.stillSamples++;
      if (running) instance.cpuTrace.record(CpuEvent.Sample, now, 0, sinceMs, SAMPLE_RUNNING | (late ? SAMPLE_LATE : 0), instance.topCpu()?.cpuMs ?? 0);
    }
    tracked.lastCpuNs = cpuNs;
    if (tracked.heldCleanNs !== null) this.#judgeHeld(instance, tracked, running);
    // First demoted at the first sample past DEMOTE_AFTER_MS, not at the end of a burn window: a
    // runaway's first tens of ms at the tenants' priority were what its neighbours felt most.
    // A demoted child that then does not get most of a CPU is raised a step at the window's end
    // (SCHED_IDLE to nice 19, then nice 19 to the tenants' priority), and demoted again only once
    // a whole window shows it flat out: on a saturated machine, background priority would
    // otherwise starve it into a 504 before its CPU limit. The first step stays below the
    // tenants: SCHED_IDLE runaways and boots share the CPU that no one else wants, and a runaway
    // starved by them alone went straight back to the tenants' priority for the rest of its 50 ms.
    // A penalised worker's child stops at nice 19: it cannot starve there (nice 19 against nice
    // 0 still gets ~1.5% of a CPU, 50 ms of CPU in under 4 s), and the schedstat figure, a tick
    // behind, judged runaways starved that were not.
    if (!tracked.demoted && !instance.loading && (tracked.burning || !tracked.restored) && limitedCpuMs(instance.topCpu()) >= priority.DEMOTE_AFTER_MS) {
      this.#demote(instance, tracked, now, cpuNs);
    } else if (now - tracked.windowAt >= BURN_WINDOW_MS) {
      const share = tracked.windowCpuNs === null ? 0 : (cpuNs - tracked.windowCpuNs) / 1e6 / (now - tracked.windowAt);
      tracked.burning = share >= 0.75;
      tracked.windowAt = now;
      tracked.windowCpuNs = cpuNs;
      if (!tracked.burning && tracked.demoted && priority.CAN_RAISE) {
        if (tracked.idle) {
          if (share < IDLE_STARVED_SHARE) tracked.idle = !priority.ease(instance.pid);
        } else if (!tracked.penalised) {
          tracked.demoted = !priority.restore(instance.pid);
          tracked.restored = true;
        }
      }
    }
    this.#check(instance, tracked, now, running, confirmed);
  }

  /**
   * Background priority for a busy child. Its window starts now: whether it is starved is judged
   * on a whole window at background priority. A demotion in the sample that closed a window was
   * undone at once on a busy machine, where the child had not had most of a CPU before it, at
   * the tenants' priority.
   */
  #demote(instance: Instance, tracked: Tracked, now: number, cpuNs: number | null): void {
    tracked.demoted = priority.demote(instance.pid);
    tracked.idle = tracked.demoted && priority.BACKGROUND_IDLE;
    if (tracked.demoted) {
      tracked.windowAt = now;
      tracked.windowCpuNs = cpuNs;
    }
  }

  /**
   * `running`: the child's state as the sample that calls this read it (read here if not given).
   * A breach is found by a sample taken in the timers phase of the daemon's loop, before the poll
   * phase reads what the child wrote meanwhile: a Turn frame whose counts would show the CPU
   * was another request's may be waiting. So it stands only when a re-sample in the check phase
   * (`confirmed`), after those frames were read, still finds it.
   */
  #check(instance: Instance, tracked: Tracked, now: number, running?: boolean, confirmed = false): void {
    const limits = instance.limits ?? this.#limits;
    const startup = instance.chargesStartup;
    const [used, max] = startup ? [instance.startupCpuMs, limits.startupCpuMs] : [limitedCpuMs(instance.topCpu()), limits.cpuMs];
    const remainingMs = max - used;
    if (remainingMs > this.#limits.watchdogIntervalMs + TICK_LAG_CAP_MS) return;
    // Near the limit: count the CPU the kernel has not booked yet, so a runaway is stopped at its
    // limit rather than up to a tick later: read from the task clock where there is one, else
    // guessed for a child on a CPU flat out now.
    const files = this.#filesOf(instance);
    running ??= files?.running() ?? false;
    const exactNs = files?.exactMainCpuNs() ?? null;
    const unbooked =
      exactNs !== null && tracked.lastCpuNs !== null
        ? Math.max(0, exactNs - tracked.lastCpuNs) / 1e6
        : tracked.burning && running
          ? Math.min(TICK_LAG_CAP_MS, now - tracked.changedAt)
          : 0;
    // A held charge not judged yet (see #judgeHeld) stops nothing: judged at the next sample.
    if (used + unbooked > max && !startup && tracked.heldCleanNs !== null) return this.#resampleSoon(instance, tracked);
    if (used + unbooked > max && !confirmed) return this.#confirmSoon(instance, tracked);
    if (used + unbooked > max) {
      // Booked now, so that the accounting line and the totals say what the 503 says.
      if (startup) {
        instance.startupCpuMs += unbooked;
        this.#onBreach(instance, { limit: 'startupCpuMs', valueMs: instance.startupCpuMs });
      } else {
        const top = instance.topCpu();
        if (!top) return;
        top.cpuMs += unbooked;
        this.#onBreach(instance, { limit: 'cpuMs', exchange: top, valueMs: limitedCpuMs(top) });
      }
      return;
    }
    this.#resampleSoon(instance, tracked);
  }

  #confirmSoon(instance: Instance, tracked: Tracked): void {
    if (tracked.confirming) return;
    tracked.confirming = setImmediate(() => {
      tracked.confirming = null;
      if (this.#tracked.get(instance.serial) === tracked && !instance.disposed) this.#sampleCpu(instance, tracked, true);
    });
  }

  #resampleSoon(instance: Instance, tracked: Tracked): void {
    if (tracked.nearLimit) return;
    tracked.nearLimit = setTimeout(() => {
      tracked.nearLimit = null;
      if (this.#tracked.get(instance.serial) === tracked && !instance.disposed) this.#sampleCpu(instance, tracked);
    }, NEAR_LIMIT_SAMPLE_MS);
    tracked.nearLimit.unref();
  }

  /**
   * Judges a held charge (a late sample's, or a booked stall's) at each sample after it: kept once
   * the child has burnt HELD_CONFIRM_MS more since, as a runaway does; left held while it is on a
   * CPU or waiting for one (starved on a loaded machine, a runaway has not moved yet: its CPU is
   * never dropped); taken back once it stopped running short of that, the request's turn over or
   * never its own. Kept at once when it stopped no request, a held charge's shares over three
   * hello-world requests were later gathered on one by a Turn frame (Instance.#takeCounts) and
   * stopped it in a local full run. What is taken back is logged (Breach lateCpuMs).
   */
  #judgeHeld(instance: Instance, tracked: Tracked, running: boolean): void {
    if (!instance.holdsCpu || tracked.heldCleanNs! >= HELD_CONFIRM_MS * 1e6) {
      this.#settleHeld(instance, tracked, true);
      return;
    }
    if (running) return;
    const top = instance.topCpu();
    const valueMs = limitedCpuMs(top);
    const waivedMs = this.#settleHeld(instance, tracked, false);
    if (top && waivedMs > 0) this.#onBreach(instance, { limit: 'lateCpuMs', exchange: top, valueMs, waivedMs, cause: tracked.heldCause });
  }

  /** Returns what was taken back. */
  #settleHeld(instance: Instance, tracked: Tracked, keep: boolean): number {
    tracked.heldCleanNs = null;
    const backMs = instance.settleHeldCpu(keep);
    instance.cpuTrace.record(CpuEvent.Judged, performance.now(), keep ? 1 : 0, backMs);
    return backMs;
  }
}

/** Resident anonymous memory in MiB of `pid`, read once (metrics); null once the process is gone. */
export function readMemoryMb(pid: number | undefined): number | null {
  if (!pid) return null;
  const files = new ProcFiles(pid);
  try {
    return files.memoryMb();
  } finally {
    files.close();
  }
}

/** The CPU `exchange` has used against the limit: all of a request's, or a WebSocket's since its client's last message. */
function limitedCpuMs(exchange: Exchange | null): number {
  return exchange ? exchange.cpuMs - exchange.cpuBaseMs : 0;
}

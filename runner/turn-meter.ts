/**
 * The child's own account of CPU per request (issue 3: "measured in the child
 * around the handler's turns"). Every turn the runner starts for a request (a
 * frame arriving for it, one of its timers firing) reads the process's CPU
 * clock; what was used since the previous reading belongs to the requests
 * that previous turn ran for. An idle child uses no CPU between turns, so the
 * difference between two readings is the earlier turn's cost, microtasks
 * included. Turns the runner does not start (a crypto.subtle result arriving
 * from the thread pool) are charged to whoever ran last, usually the same
 * request. The daemon's watchdog measures the same thing from outside and
 * enforces the limit; this figure rides on Settled into the accounting line.
 *
 * Reading that clock is a getrusage(2) over every thread of the process, ~7% of a
 * child's CPU per hello-world request under wrk when each settle read it too (perf).
 * A settle that comes less than SETTLE_ESTIMATE_UNDER_US of wall time after the last
 * reading charges that wall time instead (the turn is synchronous, so its CPU is at
 * most that), and the turn's next reading charges what the estimates left out.
 */
import process from 'node:process';
import { IdSet, IdTable } from '../protocol/id-table.js';
import { monotonicMs } from './clock.js';

/** CPU time of the whole process (every thread, as the watchdog counts it), in microseconds. */
function cpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

// Not `performance.now`: reading `performance` loads Node's perf_hooks (11 modules) into every child.
const wallMs = monotonicMs;

/**
 * Below this much wall time since the last reading, a settle estimates instead of reading
 * (see above): an estimate overstates a request's CPU by less than this, and only when the
 * child was preempted meanwhile; a longer gap is read exactly.
 */
export const SETTLE_ESTIMATE_UNDER_US = 100;

/**
 * A request's work that starts after at least this much of other requests' work, with no
 * word to the daemon between, is announced with the counts so far (see enter): the daemon's
 * watchdog, which cannot tell from outside which handler it samples, has charged that work to
 * whoever it last took for busy. Heads read together run their handlers back to back in one
 * turn, and the responses leave only when the batch is over: CI saw a 30 ms handler in such a
 * backlog stopped at 51 ms for its neighbours' turns (test/limits/cpu-attribution.test.ts).
 */
export const HAND_OVER_AFTER_US = 1000;

export class TurnMeter {
  /** Request streams the current turn runs for. */
  readonly #owners = new IdSet();
  /** Stream → CPU microseconds charged so far. */
  readonly #charged = new IdTable<number>();
  #lastUs = cpuUs();
  /** Wall time of the last reading or estimate, in microseconds. */
  #lastWallUs = wallMs() * 1000;
  /** Charged by estimates since the last reading: the next reading charges only the rest. */
  #estimatedUs = 0;
  #inTurn = false;
  /** Wall time, in microseconds, at which the current owners' work began (see enter). */
  #ownersSinceUs = 0;

  /** The process's CPU clock when last read: at the start of the current turn, or a settle in it. */
  get lastReadingUs(): number {
    return this.#lastUs;
  }

  /** Every request's count so far (stream → microseconds), as a Turn frame carries them. */
  get counts(): IdTable<number> {
    return this.#charged;
  }

  /**
   * Called first thing in a turn the runner starts, then `owner` is one the turn runs for (0:
   * none, e.g. the script loading). Several frames that arrive in one read are one turn, until
   * the work of those before has taken HAND_OVER_AFTER_US: then what they used is charged to
   * them, and the answer is true: the caller tells the daemon, with the counts, before `owner`'s
   * work runs. So too when a turn for `owner` follows one that used that much for other requests.
   */
  enter(owner: number): boolean {
    if (!this.#inTurn) {
      // The last turn ran for this request alone: what it used is this one's either way, and is
      // read when a turn for another request starts (or at a settle). A burst of its own turns
      // (timer firings, port messages) costs no system call and no microtask each.
      if (owner !== 0 && this.#owners.size === 1 && this.#owners.has(owner)) return false;
      this.#inTurn = true;
      // Requests' work, not a collection or other idle work between turns (no owners then).
      const others = this.#owners.size > 0;
      const usedUs = this.#close();
      // Runs once this turn's synchronous part is over: the next enter() starts a new turn.
      queueMicrotask(() => (this.#inTurn = false));
      if (owner === 0) return false;
      this.#owners.add(owner);
      return others && usedUs >= HAND_OVER_AFTER_US;
    }
    if (owner === 0 || this.#owners.has(owner)) return false;
    // Hot path: every head of a batch. The wall clock only; the CPU clock is read at a hand-over.
    if (this.#owners.size > 0 && wallMs() * 1000 - this.#ownersSinceUs >= HAND_OVER_AFTER_US) {
      this.#close();
      this.#owners.add(owner);
      return true;
    }
    this.#owners.add(owner);
    return false;
  }

  /** The CPU charged to `owner` up to now, in milliseconds, and forgets it (its request settled). */
  settle(owner: number): number {
    // The turn that settles it goes on, for the others it runs for.
    const nowWallUs = wallMs() * 1000;
    if (nowWallUs - this.#lastWallUs < SETTLE_ESTIMATE_UNDER_US) this.#estimate(nowWallUs);
    else this.#charge();
    this.#owners.delete(owner);
    const us = this.#charged.get(owner) ?? 0;
    this.#charged.delete(owner);
    return us / 1000;
  }

  /**
   * Work that is no request's starts (the runtime's own set-up, runtime-work.ts; the script's
   * load): what the turn used up to now is charged now.
   */
  pause(): void {
    this.#charge();
  }

  /** That work ended: the CPU used since pause() is no request's. Returns it, in microseconds. */
  resume(): number {
    const now = cpuUs();
    const used = now - this.#lastUs;
    this.#lastUs = now;
    this.#lastWallUs = wallMs() * 1000;
    return used;
  }

  /** Ends the turn: what it used goes to the requests it ran for. Returns it (µs), with what estimates charged of it. */
  #close(): number {
    const estimatedUs = this.#estimatedUs;
    const usedUs = this.#charge() + estimatedUs;
    this.#owners.clear();
    this.#ownersSinceUs = this.#lastWallUs;
    return usedUs;
  }

  /** Charges what was used since the last reading, less what estimates charged, to the current turn's owners, evenly; returns it (µs). */
  #charge(): number {
    const now = cpuUs();
    const used = now - this.#lastUs - this.#estimatedUs;
    this.#lastUs = now;
    this.#lastWallUs = wallMs() * 1000;
    this.#estimatedUs = 0;
    this.#share(used);
    return used;
  }

  /** Charges the wall time since the last reading or estimate, an upper bound of the CPU a synchronous turn used in it. */
  #estimate(nowWallUs: number): void {
    const used = Math.max(0, nowWallUs - this.#lastWallUs);
    this.#lastWallUs = nowWallUs;
    this.#estimatedUs += used;
    this.#share(used);
  }

  #share(used: number): void {
    const count = this.#owners.size;
    if (count === 0 || used <= 0) return;
    const share = used / count;
    for (const owner of this.#owners.liveIds()) this.#charged.set(owner, (this.#charged.get(owner) ?? 0) + share);
  }
}

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
 */
import process from 'node:process';
import { IdSet, IdTable } from '../protocol/id-table.js';

/** CPU time of the whole process (every thread, as the watchdog counts it), in microseconds. */
function cpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

export class TurnMeter {
  /** Request streams the current turn runs for. */
  readonly #owners = new IdSet();
  /** Stream → CPU microseconds charged so far. */
  readonly #charged = new IdTable<number>();
  #lastUs = cpuUs();
  #inTurn = false;

  /** The process's CPU clock when last read: at the start of the current turn, or a settle in it. */
  get lastReadingUs(): number {
    return this.#lastUs;
  }

  /**
   * Called first thing in a turn the runner starts, then `owner` is one the turn runs for (0:
   * none, e.g. the script loading). Several frames that arrive in one read are one turn.
   */
  enter(owner: number): void {
    if (!this.#inTurn) {
      this.#inTurn = true;
      this.#close();
      // Runs once this turn's synchronous part is over: the next enter() starts a new turn.
      queueMicrotask(() => (this.#inTurn = false));
    }
    if (owner !== 0) this.#owners.add(owner);
  }

  /** The CPU charged to `owner` up to now, in milliseconds, and forgets it (its request settled). */
  settle(owner: number): number {
    // The turn that settles it goes on, for the others it runs for.
    this.#charge();
    this.#owners.delete(owner);
    const us = this.#charged.get(owner) ?? 0;
    this.#charged.delete(owner);
    return us / 1000;
  }

  /** Ends the turn: what it used goes to the requests it ran for. */
  #close(): void {
    this.#charge();
    this.#owners.clear();
  }

  /** Charges what was used since the last reading to the current turn's owners, evenly. */
  #charge(): void {
    const now = cpuUs();
    const used = now - this.#lastUs;
    this.#lastUs = now;
    const count = this.#owners.size;
    if (count === 0 || used <= 0) return;
    const share = used / count;
    for (const owner of this.#owners.liveIds()) this.#charged.set(owner, (this.#charged.get(owner) ?? 0) + share);
  }
}

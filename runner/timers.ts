/**
 * The tenant's timers: numbers for ids (as on Workers; Node returns objects
 * with ref()/unref()), no code strings, and a count of the timers still
 * pending, which tells the stall detector whether a timer could still settle
 * a waiting handler.
 */
import { clearInterval as nodeClearInterval, clearTimeout as nodeClearTimeout, setInterval as nodeSetInterval, setTimeout as nodeSetTimeout } from 'node:timers';
import { IdSet } from '../protocol/id-table.js';

export class TenantTimers {
  // Not a Set: see IdSet.
  readonly #active = new IdSet();
  /** Told when a timer is about to run: a turn starts (runner/turn-meter.ts). */
  readonly #onTurn: () => void;

  constructor(onTurn: () => void = () => {}) {
    this.#onTurn = onTurn;
  }

  /** Timers that may still fire. */
  get pending(): number {
    return this.#active.size;
  }

  readonly setTimeout = (callback: unknown, delay?: number, ...args: unknown[]): number => {
    const run = checkCallback(callback, 'setTimeout');
    const id: number = +nodeSetTimeout(() => {
      this.#active.delete(id);
      this.#onTurn();
      run(...args);
    }, delay);
    this.#active.add(id);
    return id;
  };

  readonly setInterval = (callback: unknown, delay?: number, ...args: unknown[]): number => {
    const run = checkCallback(callback, 'setInterval');
    // Unary + registers the timer by id, so clearInterval(number) finds it.
    const id: number = +nodeSetInterval(() => {
      this.#onTurn();
      run(...args);
    }, delay);
    this.#active.add(id);
    return id;
  };

  readonly clearTimeout = (id?: unknown): void => {
    nodeClearTimeout(id as number);
    this.#active.delete(Number(id));
  };

  readonly clearInterval = (id?: unknown): void => {
    nodeClearInterval(id as number);
    this.#active.delete(Number(id));
  };
}

function checkCallback(callback: unknown, name: string): (...args: unknown[]) => void {
  if (typeof callback !== 'function') {
    throw new TypeError(`${name}: the callback must be a function (code strings are not evaluated)`);
  }
  return callback as (...args: unknown[]) => void;
}

/**
 * What the runner's turn announcers (subtle-turns.ts, port-turns.ts,
 * compression-turns.ts) and the lazy globals need from the runtime, and the one way the last two
 * hook Node's own code: a method that names the request first, then does what
 * Node's did.
 */

export interface TurnHooks {
  /** The request the running code belongs to (0: none). */
  current(): number;
  /** Work of `owner` resumes now, in a turn the runner did not start. */
  resume(owner: number): void;
  /** Runs the runtime's own one-time set-up for an API's first use, as no request's work (runtime-work.ts). */
  runtimeWork<T>(work: () => T): T;
}

// Captured at boot: the hooking happens when the tenant first reads a class, in its own code.
const { apply } = Reflect;
const { defineProperty } = Object;

/**
 * Gives `proto` its own `key`: a method that first announces a turn for the request running
 * now (in a callback from Node, the async context of whoever created the object), then calls
 * `original`. Locked, so that the announcement cannot be taken off again.
 */
export function announceBefore(proto: object, key: PropertyKey, original: (...args: unknown[]) => unknown, hooks: TurnHooks): void {
  defineProperty(proto, key, {
    value: function announced(this: unknown, ...args: unknown[]): unknown {
      const owner = hooks.current();
      if (owner !== 0) hooks.resume(owner);
      return apply(original, this, args);
    },
    writable: false,
    enumerable: false,
    configurable: false,
  });
}

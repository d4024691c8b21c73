/**
 * crypto.subtle's work runs in libuv's thread pool, and its result resumes the
 * tenant in a turn the runner did not start: neither the child's meter nor the
 * daemon's watchdog could tell whose it is, and the watchdog split it among
 * every request in flight, so a request that spun after awaiting a digest ran
 * k times its CPU limit beside k idle requests (and an idle one was blamed).
 * Each method's result now comes back through a reaction that first announces
 * the turn for the request that called it (Runtime.resumeTurn), before any of
 * the tenant's own reactions run.
 */
import type { TurnHooks } from './turn-hooks.js';

/** The SubtleCrypto methods that return a promise (W3C Web Cryptography API §14). */
const METHODS = ['encrypt', 'decrypt', 'sign', 'verify', 'digest', 'generateKey', 'deriveKey', 'deriveBits', 'importKey', 'exportKey', 'wrapKey', 'unwrapKey'];

// Captured at boot: the wrapping happens when the tenant first reads `crypto`, in its own code.
const { apply } = Reflect;
const { defineProperty, getOwnPropertyDescriptor, getPrototypeOf } = Object;
const promiseThen = Promise.prototype.then;

/** Replaces the promise-returning methods of `subtle`'s prototype (before it is frozen). */
export function announceSubtleTurns(subtle: object, hooks: TurnHooks): void {
  const proto = getPrototypeOf(subtle) as Record<string, unknown>;
  for (const name of METHODS) {
    const descriptor = getOwnPropertyDescriptor(proto, name);
    const original = descriptor?.value;
    if (typeof original !== 'function') continue;
    const wrapped = {
      [name](this: unknown, ...args: unknown[]): unknown {
        const owner = hooks.current();
        const result: unknown = apply(original, this, args);
        if (owner === 0 || !(result instanceof Promise)) return result;
        return apply(promiseThen, result, [
          (value: unknown) => {
            hooks.resume(owner);
            return value;
          },
          (error: unknown) => {
            hooks.resume(owner);
            throw error;
          },
        ]);
      },
    }[name]!;
    defineProperty(wrapped, 'length', { value: original.length });
    defineProperty(proto, name, { ...descriptor, value: wrapped });
  }
}

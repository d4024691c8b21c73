/**
 * crypto.subtle's work runs in libuv's thread pool, and its result resumes the
 * tenant in a turn the runner did not start: neither the child's meter nor the
 * daemon's watchdog could tell whose it is, and the watchdog split it among
 * every request in flight, so a request that spun after awaiting a digest ran
 * k times its CPU limit beside k idle requests (and an idle one was blamed).
 * Each method's result now comes back through a reaction that first announces
 * the turn for the request that called it (Runtime.resumeTurn), before any of
 * the tenant's own reactions run.
 *
 * The first call of a method with an algorithm is also where Node loads that
 * algorithm's code: it runs as the runtime's work, not the request's.
 */
import type { TurnHooks } from './turn-hooks.js';

/** The SubtleCrypto methods that return a promise (W3C Web Cryptography API §14). */
const METHODS = ['encrypt', 'decrypt', 'sign', 'verify', 'digest', 'generateKey', 'deriveKey', 'deriveBits', 'importKey', 'exportKey', 'wrapKey', 'unwrapKey'];

/**
 * The algorithms whose code Node loads on a method's first use with them (Web Cryptography API
 * §30, and Node's Ed/X curves), upper-cased. A name not here gets no window of its own: a tenant
 * cannot open one per made-up name.
 */
const ALGORITHMS = ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512', 'HMAC', 'RSASSA-PKCS1-V1_5', 'RSA-PSS', 'RSA-OAEP', 'ECDSA', 'ECDH', 'ED25519', 'X25519', 'ED448', 'X448', 'AES-CTR', 'AES-CBC', 'AES-GCM', 'AES-KW', 'HKDF', 'PBKDF2'];
/** Where a method takes its algorithm, when not first. */
const ALGORITHM_ARG: Record<string, number> = { importKey: 2, wrapKey: 3, unwrapKey: 3 };

// Captured at boot: the wrapping happens when the tenant first reads `crypto`, in its own code, and
// the calls run with the tenant's built-ins (Set, String.prototype), which it may have replaced.
const { apply } = Reflect;
const { create, defineProperty, getOwnPropertyDescriptor, getPrototypeOf } = Object;
const promiseThen = Promise.prototype.then;
const toUpperCase = String.prototype.toUpperCase;
/** A set of strings no prototype can answer for. */
type Names = Record<string, true>;
const names = (list: readonly string[]): Names => {
  const set = create(null) as Names;
  for (const name of list) set[name] = true;
  return set;
};
const KNOWN_ALGORITHMS = names(ALGORITHMS);

/** Whether this call is the first of its method with its algorithm (a known one: see ALGORITHMS). */
function firstUse(method: string, args: unknown[], used: Names): boolean {
  let algorithm: unknown = method === 'exportKey' ? '' : args[ALGORITHM_ARG[method] ?? 0];
  try {
    // The tenant's object: its getter runs here, outside the window, and again when Node reads it.
    if (algorithm !== null && typeof algorithm === 'object') algorithm = (algorithm as { name?: unknown }).name;
  } catch {
    return false;
  }
  if (typeof algorithm !== 'string') return false;
  const name = apply(toUpperCase, algorithm, []) as string;
  if (name !== '' && KNOWN_ALGORITHMS[name] !== true) return false;
  const key = `${method} ${name}`;
  if (used[key] === true) return false;
  used[key] = true;
  return true;
}

/**
 * Replaces the promise-returning methods of `subtle`'s prototype (before it is frozen). The first
 * call of each method with each algorithm runs as the runtime's work (runtime-work.ts): Node
 * loads that algorithm's code in it.
 */
export function announceSubtleTurns(subtle: object, hooks: TurnHooks): void {
  const proto = getPrototypeOf(subtle) as Record<string, unknown>;
  const used = names([]);
  for (const name of METHODS) {
    const descriptor = getOwnPropertyDescriptor(proto, name);
    const original = descriptor?.value;
    if (typeof original !== 'function') continue;
    const wrapped = {
      [name](this: unknown, ...args: unknown[]): unknown {
        const owner = hooks.current();
        const result: unknown = firstUse(name, args, used) ? hooks.runtimeWork(() => apply(original, this, args)) : apply(original, this, args);
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

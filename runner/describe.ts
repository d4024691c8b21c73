/**
 * Describes what a tenant threw (or returned instead of a Response) for the
 * daemon's log and the error response. Reading a tenant's value runs tenant
 * code — getters, Proxy traps, a patched Error.prepareStackTrace — which may
 * throw in turn, loop, or return something enormous; every function here is
 * total and bounded, because a description that throws would leave the request
 * unanswered until its wall-time limit (test/hostile/throw-non-errors.test.ts).
 */
import { isProxy } from 'node:util/types';

/** Characters of a tenant's error message that reach the log and the client. */
export const MAX_MESSAGE_CHARS = 1024;
/** Characters of a tenant's stack trace that reach the log. */
export const MAX_STACK_CHARS = 16 * 1024;

/** `Name: message` for an Error, `Uncaught <what it was>` for anything else. */
export function describeError(error: unknown): string {
  try {
    if (!isProxy(error) && error instanceof Error) return clip(`${error.name}: ${error.message}`, MAX_MESSAGE_CHARS);
    return `Uncaught ${describeValue(error)}`;
  } catch {
    return 'Uncaught an exception that threw when it was read';
  }
}

/** An Error's message (bounded), or the description of anything else; never throws. */
export function messageOf(error: unknown): string {
  try {
    if (!isProxy(error) && error instanceof Error) return clip(String(error.message), MAX_MESSAGE_CHARS);
  } catch {
    // Described below instead.
  }
  return describeError(error);
}

/** The stack of an Error, or null: a Proxy, a non-string stack or one that throws when read has none. */
export function stackOf(error: unknown): string | null {
  try {
    if (isProxy(error) || !(error instanceof Error)) return null;
    const stack: unknown = error.stack;
    return typeof stack === 'string' ? clip(stack, MAX_STACK_CHARS) : null;
  } catch {
    return null;
  }
}

/** What a value is, in a few words, without running any of its code but a constructor name getter. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  // Checked before anything else: every operation on a Proxy, instanceof included, runs its traps.
  if (isProxy(value)) return 'a Proxy';
  if (typeof value === 'object') {
    let name: unknown;
    try {
      name = (value as object).constructor?.name;
    } catch {
      name = undefined;
    }
    return `an object (${typeof name === 'string' && name ? clip(name, 60) : 'Object'})`;
  }
  if (typeof value === 'string') return `a string (${JSON.stringify(value.slice(0, 40))})`;
  return `a ${typeof value}`;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

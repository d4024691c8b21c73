/**
 * CompressionStream and DecompressionStream run zlib in libuv's thread pool, and
 * each chunk of output resumes the tenant (the read it waits on resolves) in a
 * turn the runner did not start: the watchdog split it among every request in
 * flight, so a request that spun after reading a chunk ran k times its CPU limit
 * beside k idle requests. Node's zlib streams hand each chunk on through their
 * push(); theirs now first announces the turn for the request that created the
 * stream (the zlib handle's async context is its creator's: Runtime.currentRequest).
 */
import { announceBefore, type TurnHooks } from './turn-hooks.js';

// Captured at boot: the hooking happens when the tenant first reads one of the classes, in its own code.
const { getPrototypeOf } = Object;
let hooked = false;

/** Gives the prototype every zlib stream of Node's inherits (Zlib.prototype) a push() that announces each chunk's turn. */
export function announceCompressionTurns(hooks: TurnHooks): void {
  if (hooked) return;
  hooked = true;
  // Loaded here, not at boot: a child whose tenant never compresses does not carry zlib. Node's
  // own CompressionStream, which the tenant just read, requires the same module.
  const zlib = require('node:zlib') as typeof import('node:zlib');
  const proto = getPrototypeOf(zlib.Deflate.prototype) as Record<string, unknown> | null;
  const original = proto?.push;
  // Another Node, another shape: chunks stay unannounced (their CPU split evenly), as before.
  if (!proto || typeof original !== 'function' || getPrototypeOf(zlib.Inflate.prototype) !== proto) return;
  announceBefore(proto, 'push', original as (...args: unknown[]) => unknown, hooks);
}

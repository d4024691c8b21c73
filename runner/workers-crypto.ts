/**
 * Workers' non-standard additions to Web Crypto. `crypto.DigestStream(algorithm)`: a
 * WritableStream that hashes what is written to it, its `digest` a promise of the hash once it
 * is closed (for hashing a body as it streams, without holding it whole).
 * `crypto.subtle.timingSafeEqual(a, b)`, which
 * Cloudflare's own examples use to compare a secret with what a client sent. As on Workers it
 * is synchronous, takes two ArrayBuffers or ArrayBuffer views, and throws a TypeError when
 * their byte lengths differ (so a caller must compare lengths, or digests, first). Every byte
 * is compared whatever the earlier ones were: the time depends on the length only.
 */

import { bytesOf } from './bytes.js';
import type { TurnHooks } from './turn-hooks.js';

// Captured at boot: the method is added when the tenant first reads `crypto`, in its own code.
const { create, defineProperty, freeze, getPrototypeOf } = Object;
const Writable = WritableStream;
const { toUpperCase } = String.prototype;
const { apply } = Reflect;

function bufferBytes(value: unknown, what: string): Uint8Array {
  const bytes = bytesOf(value);
  if (bytes === null) throw new TypeError(`${what} must be an ArrayBuffer or an ArrayBuffer view (a TypedArray or DataView)`);
  return bytes;
}

function timingSafeEqual(a: unknown, b: unknown): boolean {
  const left = bufferBytes(a, 'crypto.subtle.timingSafeEqual: argument 1');
  const right = bufferBytes(b, 'crypto.subtle.timingSafeEqual: argument 2');
  if (left.byteLength !== right.byteLength) {
    throw new TypeError(`crypto.subtle.timingSafeEqual: the two buffers must have the same byte length (got ${left.byteLength} and ${right.byteLength})`);
  }
  let difference = 0;
  for (let i = 0; i < left.byteLength; i++) difference |= left[i]! ^ right[i]!;
  return difference === 0;
}

/** DigestStream's algorithms (Workers': the SHA family and MD5) → Node's hash names. */
const DIGEST_HASHES: Record<string, string | undefined> = Object.assign(create(null) as Record<string, string>, {
  'SHA-1': 'sha1',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
  MD5: 'md5',
});

type Hash = { update(bytes: Uint8Array): void; digest(): Uint8Array };

function digestStreamClass(hooks: TurnHooks): unknown {
  let createHash: ((name: string) => Hash) | null = null;
  const DigestStream = class DigestStream extends Writable<unknown> {
    readonly digest: Promise<ArrayBuffer>;

    constructor(algorithm: string | { name?: unknown }) {
      const requested = typeof algorithm === 'string' ? algorithm : algorithm?.name;
      const hashName = typeof requested === 'string' ? DIGEST_HASHES[apply(toUpperCase, requested, []) as string] : undefined;
      if (hashName === undefined) {
        throw new DOMException(`DigestStream: unsupported algorithm ${String(requested)}; use SHA-1, SHA-256, SHA-384, SHA-512 or MD5`, 'NotSupportedError');
      }
      // Node's hashing is loaded on the first DigestStream: the runtime's work (runtime-work.ts).
      createHash ??= hooks.runtimeWork(() => (require('node:crypto') as { createHash: (name: string) => Hash }).createHash);
      const hash = createHash(hashName);
      let settle!: { resolve(value: ArrayBuffer): void; reject(reason: unknown): void };
      const digest = new Promise<ArrayBuffer>((resolve, reject) => (settle = { resolve, reject }));
      // A stream aborted before anyone asked for its digest is no unhandled rejection.
      digest.catch(() => {});
      super({
        write(chunk) {
          hash.update(bufferBytes(chunk, 'DigestStream: a chunk'));
        },
        close() {
          const out = hash.digest();
          settle.resolve(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength) as ArrayBuffer);
        },
        abort(reason) {
          settle.reject(reason);
        },
      });
      this.digest = digest;
    }
  };
  freeze(DigestStream.prototype);
  return freeze(DigestStream);
}

/** Adds DigestStream to `crypto` (before it is frozen). */
export function addDigestStream(crypto: object, hooks: TurnHooks): void {
  defineProperty(crypto, 'DigestStream', { value: digestStreamClass(hooks), writable: true, enumerable: false, configurable: true });
}

/** Adds timingSafeEqual to `subtle`'s prototype, as a method like the standard ones (before it is frozen). */
export function addWorkersSubtle(subtle: object): void {
  defineProperty(getPrototypeOf(subtle), 'timingSafeEqual', { value: timingSafeEqual, writable: true, enumerable: true, configurable: true });
}

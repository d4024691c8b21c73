/**
 * Workers' non-standard addition to Web Crypto: `crypto.subtle.timingSafeEqual(a, b)`, which
 * Cloudflare's own examples use to compare a secret with what a client sent. As on Workers it
 * is synchronous, takes two ArrayBuffers or ArrayBuffer views, and throws a TypeError when
 * their byte lengths differ (so a caller must compare lengths, or digests, first). Every byte
 * is compared whatever the earlier ones were: the time depends on the length only.
 */

// Captured at boot: the method is added when the tenant first reads `crypto`, in its own code.
const { defineProperty, getPrototypeOf } = Object;
const { isView } = ArrayBuffer;
const Bytes = Uint8Array;
const AnyArrayBuffer = ArrayBuffer;

function bytesOf(value: unknown, position: number): Uint8Array {
  if (value instanceof AnyArrayBuffer) return new Bytes(value);
  if (isView(value)) return new Bytes(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`crypto.subtle.timingSafeEqual: argument ${position} must be an ArrayBuffer or an ArrayBuffer view (a TypedArray or DataView)`);
}

function timingSafeEqual(a: unknown, b: unknown): boolean {
  const left = bytesOf(a, 1);
  const right = bytesOf(b, 2);
  if (left.byteLength !== right.byteLength) {
    throw new TypeError(`crypto.subtle.timingSafeEqual: the two buffers must have the same byte length (got ${left.byteLength} and ${right.byteLength})`);
  }
  let difference = 0;
  for (let i = 0; i < left.byteLength; i++) difference |= left[i]! ^ right[i]!;
  return difference === 0;
}

/** Adds timingSafeEqual to `subtle`'s prototype, as a method like the standard ones (before it is frozen). */
export function addWorkersCrypto(subtle: object): void {
  defineProperty(getPrototypeOf(subtle), 'timingSafeEqual', { value: timingSafeEqual, writable: true, enumerable: true, configurable: true });
}

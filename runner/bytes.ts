/**
 * The bytes behind an ArrayBuffer or an ArrayBuffer view (a TypedArray or DataView), as a
 * Uint8Array over the same memory; null for anything else, which each caller refuses in its
 * own words. Used in the tenant's code (crypto.subtle.timingSafeEqual, crypto.DigestStream,
 * the byte streams), so the built-ins are captured at boot.
 */
const Bytes = Uint8Array;
const AnyArrayBuffer = ArrayBuffer;
const { isView } = ArrayBuffer;

export function bytesOf(value: unknown): Uint8Array | null {
  if (value instanceof AnyArrayBuffer) return new Bytes(value);
  if (isView(value)) return new Bytes(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

/**
 * Workers' byte streams beside the standard TransformStream, which Workers apps
 * use for streamed responses: `IdentityTransformStream` (bytes written to its
 * writable side come out of its readable side unchanged; anything but bytes is a
 * TypeError) and `FixedLengthStream(expectedLength)` (the same, for exactly that
 * many bytes: more is an error on write, fewer an error on close, and a Response
 * whose body is its readable side goes out with a Content-Length header instead of
 * chunked, and so does a fetch() whose body it is). Not yet as on Workers: the readable
 * side takes no BYOB reader.
 */

import { bytesOf } from './bytes.js';

// Captured at boot: these classes are constructed in the tenant's code, which may have replaced
// the built-ins they would otherwise reach through the global scope.
const Transform = TransformStream;
const { isSafeInteger } = Number;
const Lengths = WeakMap;

/** The readable side of each FixedLengthStream, and the length it promises (Runtime#respond). */
const expectedLengths: WeakMap<object, number> = new Lengths();

/** The length a Response body stream promises (a FixedLengthStream's readable side), or null. */
export function fixedLengthOf(stream: object): number | null {
  return expectedLengths.get(stream) ?? null;
}

function chunkBytes(chunk: unknown, className: string): Uint8Array {
  const bytes = bytesOf(chunk);
  if (bytes !== null) return bytes;
  throw new TypeError(
    `This ${className} is a byte stream: it takes ArrayBuffer or ArrayBufferView chunks on its writable side, and was given ${chunk === null ? 'null' : typeof chunk}. Encode strings with TextEncoder (or pipe through a TextEncoderStream) first.`,
  );
}

interface Counter {
  /** Bytes still expected (FixedLengthStream), or null for any number. */
  left: number | null;
}

function byteTransformer(className: string, counter: Counter): Transformer<unknown, Uint8Array> {
  return {
    transform(chunk, controller) {
      const bytes = chunkBytes(chunk, className);
      if (counter.left !== null) {
        if (bytes.byteLength > counter.left) throw new TypeError('Attempt to write too many bytes through a FixedLengthStream.');
        counter.left -= bytes.byteLength;
      }
      if (bytes.byteLength > 0) controller.enqueue(bytes);
    },
    flush() {
      if (counter.left !== null && counter.left > 0) throw new TypeError('FixedLengthStream did not see all expected bytes before close().');
    },
  };
}

/**
 * The writable side's strategy: a chunk that is not bytes is refused when it is written, as on
 * Workers, not once the readable side is read (a write waits until then; it never would if the
 * reader waited for the write).
 */
function byteChunks(className: string): QueuingStrategy<unknown> {
  return {
    highWaterMark: 1,
    size(chunk) {
      chunkBytes(chunk, className);
      return 1;
    },
  };
}

function readableStrategy(queuingStrategy?: { highWaterMark?: number }): QueuingStrategy<Uint8Array> | undefined {
  return queuingStrategy?.highWaterMark === undefined ? undefined : { highWaterMark: queuingStrategy.highWaterMark };
}

export class IdentityTransformStream extends Transform<unknown, Uint8Array> {
  constructor(queuingStrategy?: { highWaterMark?: number }) {
    super(byteTransformer('IdentityTransformStream', { left: null }), byteChunks('IdentityTransformStream'), readableStrategy(queuingStrategy));
  }
}

export class FixedLengthStream extends Transform<unknown, Uint8Array> {
  constructor(expectedLength: number | bigint, queuingStrategy?: { highWaterMark?: number }) {
    const length = typeof expectedLength === 'bigint' ? Number(expectedLength) : expectedLength;
    if (typeof length !== 'number' || !isSafeInteger(length) || length < 0) {
      throw new TypeError(`FixedLengthStream: expectedLength must be a non-negative integer (a number or a bigint), got ${String(expectedLength)}`);
    }
    super(byteTransformer('FixedLengthStream', { left: length }), byteChunks('FixedLengthStream'), readableStrategy(queuingStrategy));
    expectedLengths.set(this.readable, length);
  }
}

/**
 * Makes Node 20's web streams plain JavaScript objects, as they are from Node 21 on.
 *
 * Node 20 turns every ReadableStream, WritableStream and TransformStream it constructs into a
 * transferable host object (internal/worker/js_transferable's makeTransferable: a C++-backed
 * JSTransferable with the stream's properties copied onto it), so that it can be posted to a
 * worker thread. V8 treats a weak handle to a host object that has been modified as a root in
 * every scavenge, so each stream, and everything reachable from it (its queue and chunks, its
 * promises, the Request or Response that holds it), lived until the next full collection: in
 * plain Node, a loop making one stream per turn promoted 288 KB per scavenge, and 0.7 KB with
 * this; under wrk, a tenant answering with a streamed body used 45-54 µs of the child's CPU per
 * request, and 33-37 with it.
 *
 * makeTransferable leaves alone an object that already is `instanceof JSTransferable`, so this
 * answers yes for the streams themselves. JSTransferable is not exported, but it is the parent
 * class of node:net's SocketAddress, the cheapest of its subclasses to load (bench/memory, PSS
 * per tenant: node:crypto's X509Certificate cost 0.5 MiB; replacing makeTransferable itself,
 * which needs --expose-internals, 0.03 MiB; this, nothing measurable). Transferring to a worker
 * thread is all it serves, and a tenant has none; on Workers streams neither transfer nor clone
 * either (see guardStructuredClone). Should Node change, nothing is patched and streams stay as
 * Node makes them.
 */
import { SocketAddress } from 'node:net';

const STREAM_PROTOTYPES: readonly object[] = [ReadableStream.prototype, WritableStream.prototype, TransformStream.prototype];
const STREAM_CLASSES: ReadonlyArray<abstract new (...args: never[]) => unknown> = [ReadableStream, WritableStream, TransformStream];
const isPrototypeOf = Object.prototype.isPrototypeOf;

function plainStreams(): boolean {
  const JSTransferable = Object.getPrototypeOf(SocketAddress) as unknown;
  if (typeof JSTransferable !== 'function' || JSTransferable.name !== 'JSTransferable') return false;
  if (Object.prototype.hasOwnProperty.call(JSTransferable, Symbol.hasInstance)) return false;
  const ordinary = Function.prototype[Symbol.hasInstance];
  Object.defineProperty(JSTransferable, Symbol.hasInstance, {
    value(this: typeof JSTransferable, value: unknown): boolean {
      if (typeof value === 'object' && value !== null && STREAM_PROTOTYPES.some((prototype) => isPrototypeOf.call(prototype, value))) return true;
      return ordinary.call(this, value);
    },
  });
  return true;
}

export const streamsArePlain = plainStreams();

type Clone = (value: unknown, options?: StructuredSerializeOptions) => unknown;

/**
 * structuredClone as Workers has it for a stream: a DataCloneError. Node's own would now copy a
 * plain stream's (symbol-keyed, so none) properties into `{}`. Only the value itself is checked:
 * a stream nested inside an object still clones to `{}`, where Workers throws (README).
 */
export function guardStructuredClone(clone: Clone): Clone {
  return {
    structuredClone(value: unknown, options?: StructuredSerializeOptions): unknown {
      if (streamsArePlain && typeof value === 'object' && value !== null && STREAM_CLASSES.some((type) => value instanceof type)) {
        throw new DOMException(`${(value as object).constructor.name} could not be cloned.`, 'DataCloneError');
      }
      return clone(value, options);
    },
  }.structuredClone!;
}

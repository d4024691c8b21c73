/**
 * Makes Node 20's web streams plain JavaScript objects, as they are from Node 21 on.
 * Imported first by bootstrap.ts: it must run before anything loads node:stream/web.
 *
 * Node 20 turns every ReadableStream, WritableStream and TransformStream it constructs into a
 * transferable host object (internal/worker/js_transferable's makeTransferable: a C++-backed
 * JSTransferable with the stream's properties copied onto it), so that it can be posted to a
 * worker thread. V8 treats a weak handle to a host object that has been modified as a root in
 * every scavenge, so each stream, and everything reachable from it (its queue and chunks, its
 * promises, the Request or Response that holds it), lived until the next full collection: in
 * plain Node, a loop making one stream per turn promoted 288 KB per scavenge, and 0.4 KB with
 * this; under wrk, a tenant answering with a streamed body used 45-54 µs of the child's CPU per
 * request, and 36-37 with it.
 *
 * Transferring streams is all that makeTransferable serves, and a tenant has no worker threads;
 * on Workers, streams do not transfer or clone either (see guardStructuredClone). Replacing it
 * needs --expose-internals (spawn.ts): the tenant never sees `require`, so only the runner can
 * load an internal module. Without the flag the streams stay as Node makes them.
 */
import { createRequire } from 'node:module';

function plainStreams(): boolean {
  try {
    const transferable = createRequire(__filename)('internal/worker/js_transferable') as { makeTransferable: (value: object) => object };
    transferable.makeTransferable = (value) => value;
    return true;
  } catch {
    return false;
  }
}

export const streamsArePlain = plainStreams();

type Clone = (value: unknown, options?: StructuredSerializeOptions) => unknown;

/**
 * structuredClone as Workers has it for a stream: a DataCloneError. Node's own would now copy a
 * plain stream's (symbol-keyed, so none) properties into `{}`. Only the value itself is checked:
 * a stream nested inside an object still clones to `{}`, where Workers throws (README).
 */
export function guardStructuredClone(clone: Clone): Clone {
  let streams: Array<abstract new (...args: never[]) => unknown> | null = null;
  return {
    structuredClone(value: unknown, options?: StructuredSerializeOptions): unknown {
      if (streamsArePlain && typeof value === 'object' && value !== null) {
        // Loaded at the first call, not at import: this module runs before node:stream/web may load.
        if (!streams) {
          const web = createRequire(__filename)('node:stream/web') as typeof import('node:stream/web');
          streams = [web.ReadableStream, web.WritableStream, web.TransformStream];
        }
        if (streams.some((type) => value instanceof type)) {
          throw new DOMException(`${(value as object).constructor.name} could not be cloned.`, 'DataCloneError');
        }
      }
      return clone(value, options);
    },
  }.structuredClone!;
}

/**
 * The child's end of a binding call (KV, Cache API): the tenant's object holds
 * only a name; every operation is one call the daemon carries out, on an even
 * stream like a fetch, with the same flow-controlled bodies both ways and the
 * same rule that it belongs to a request in flight.
 */
import { FrameType, type BindingCallMessage, type BindingResultMessage, type BindingTarget } from '../protocol/messages.js';
import { openSubstream, type SubrequestHost } from './fetch.js';

export interface BindingReply {
  value: unknown;
  /** The result's bytes (a KV value, a cached response body), or null. */
  body: ReadableStream<Uint8Array> | null;
}

export type BindingCaller = (
  target: BindingTarget,
  op: string,
  args: Record<string, unknown>,
  body?: ReadableStream<Uint8Array> | null,
) => Promise<BindingReply>;

const ERRORS = { TypeError, Error, RangeError } as const;

export function createBindingCaller(host: SubrequestHost): BindingCaller {
  return async function callBinding(target, op, args, body = null) {
    const parent = host.currentRequest();
    if (!host.isInFlight(parent)) {
      // As for fetch (runner/fetch.ts): the daemon counts KV operations per request, and Workers
      // allows no I/O at global scope or after the request is over.
      throw new Error(
        `${describeTarget(target)}.${op}(): no request is in flight here (the request this code ran for has finished, or this is the global scope); a worker uses its bindings only while handling a request or its waitUntil work`,
      );
    }
    const message: BindingCallMessage = { parent, target, op, args, hasBody: body !== null };
    const { id, stream, answer: head } = openSubstream<BindingResultMessage>(host, parent, FrameType.BindingCall, message, body);
    let result: BindingResultMessage;
    try {
      result = await head;
    } catch (error) {
      host.unregister(id);
      throw error;
    }
    if (!result.hasBody) host.unregister(id);
    if (result.error) {
      const Type = ERRORS[result.error.name] ?? Error;
      throw new Type(result.error.message);
    }
    return { value: result.value, body: result.hasBody ? stream.incoming.stream : null };
  };
}

function describeTarget(target: BindingTarget): string {
  return target.kind === 'kv' ? target.binding : `caches.${target.cache === 'default' ? 'default' : `open(${JSON.stringify(target.cache)})`}`;
}

/**
 * The Web classes undici implements, bundled from the npm package rather than
 * taken from Node's globals: Node 20's built-in copy looks up `Buffer` on the
 * global object at call time, so it breaks once the tenant scope has no
 * `Buffer`. The bundle resolves `Buffer` through esbuild's inject instead
 * (see runner/inject.ts), invisible to the tenant.
 */
// @ts-expect-error undici ships no types for its internal files
import { Response as UndiciResponse, getResponseState, setWebSocketCheck } from 'undici/lib/web/fetch/response.js';
// @ts-expect-error undici ships no types for its internal files
import { Request as UndiciRequest, getRequestState, signalIfMade } from 'undici/lib/web/fetch/request.js';
// @ts-expect-error undici ships no types for its internal files
import { Headers as UndiciHeaders, getHeadersList } from 'undici/lib/web/fetch/headers.js';
// @ts-expect-error undici ships no types for its internal files
import { FormData as UndiciFormData } from 'undici/lib/web/fetch/formdata.js';
import { isProxy } from 'node:util/types';
import type { HeaderList } from '../protocol/messages.js';
import { fixedLengthOf } from './workers-streams.js';
import { isWebSocket } from './websocket.js';

export const Response: typeof globalThis.Response = UndiciResponse;
export const Request: typeof globalThis.Request = UndiciRequest;
export const Headers: typeof globalThis.Headers = UndiciHeaders;
export const FormData: typeof globalThis.FormData = UndiciFormData;
export type Response = globalThis.Response;
export type Request = globalThis.Request;

/**
 * `request.cf`: on Workers, what Cloudflare's edge knows of a request (its colo, the client's
 * country, ASN, TLS, ...). edgeproc's front door knows no geolocation and makes none up: an
 * incoming request's `cf` holds the fields `--cf FILE` configured (for local testing, as
 * wrangler dev's) and `clientAcceptEncoding`, so `request.cf.country` is undefined rather than
 * a TypeError on `cf`. A Request the tenant builds has none, as on Workers.
 */
let configuredCf: Readonly<Record<string, unknown>> = Object.freeze({});

/** The instance's `--cf` fields, from its Load message; frozen all the way down, every request shares them. */
export function configureCf(fields: Record<string, unknown> | null): void {
  configuredCf = deepFreeze(fields ?? {});
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

class Stamp {
  constructor(target: object) {
    return target as Stamp;
  }
}

/**
 * Marks the requests the runtime received with a private field (set on the request itself by
 * the constructor's return override): invisible to the tenant, no table of requests; it holds
 * the request's `cf` once read.
 */
class Received extends Stamp {
  #cf: Record<string, unknown> | null = null;

  static stamp(request: object): void {
    new Received(request);
  }

  static cf(request: unknown): Record<string, unknown> | undefined {
    if (typeof request !== 'object' || request === null || !(#cf in request)) return undefined;
    const received = request as Received;
    received.#cf ??= { ...configuredCf, clientAcceptEncoding: (request as unknown as Request).headers.get('accept-encoding') ?? '' };
    return received.#cf;
  }
}

Object.defineProperty(UndiciRequest.prototype, 'cf', {
  get: function cf(this: unknown) {
    return Received.cf(this);
  },
  enumerable: true,
  configurable: true,
});

// Absent only where this module runs unbundled (unit tests): the build fails if it cannot add it.
(setWebSocketCheck as ((check: (value: unknown) => boolean) => void) | undefined)?.(isWebSocket);

/** Workers' `response.webSocket`: the WebSocket a 101 response hands to the client, else null (scripts/websocket-response-plugin.mjs). */
Object.defineProperty(UndiciResponse.prototype, 'webSocket', {
  get: function webSocket(this: Response) {
    return responseWebSocket(this);
  },
  enumerable: true,
  configurable: true,
});

/** The webSocket a Response was constructed with (the build's patch keeps it in its state), or null. */
export function responseWebSocket(response: Response): unknown {
  return (getResponseState(response) as { webSocket?: unknown }).webSocket ?? null;
}

interface HeadersListInternal {
  append(name: string, value: string, isLowerCase: boolean): void;
}

/**
 * The Request a handler receives, built from the head the daemon parsed. The same object
 * `new Request(url, { method, headers, body, duplex: 'half' })` makes, for less: the
 * header list is filled directly instead of through RequestInit's conversion and Headers'
 * per-header validation (~0.8 of the constructor's ~1.7 µs with three headers), which
 * Node's HTTP parser in the daemon already did (names are tokens, values have no CR, LF
 * or NUL and no surrounding whitespace). A GET without a body takes no init at all,
 * which for a URL string makes the same request.
 */
export function incomingRequest(url: string, method: string, headers: HeaderList, body: ReadableStream<Uint8Array> | null): Request {
  const request: Request =
    method === 'GET' && body === null ? new UndiciRequest(url) : new UndiciRequest(url, { method, body, duplex: 'half' } as RequestInit);
  const list = getHeadersList(request.headers) as HeadersListInternal;
  for (const [name, value] of headers) list.append(name, value, false);
  Received.stamp(request);
  return request;
}

interface ResponseState {
  status: number;
  statusText: string;
  body: { source: unknown; length: number | null } | null;
}

/** Response.prototype's own `headers` getter, captured before any tenant code runs (the prototype is frozen later anyway). */
const headersOf = Object.getOwnPropertyDescriptor(UndiciResponse.prototype, 'headers')!.get! as (this: Response) => Headers;

/**
 * `value` if it is a genuine Response (an instance of the class or a subclass),
 * else null. Neither `instanceof` nor a getter decides: a Proxy of a Response
 * passes `instanceof` through its getPrototypeOf trap and then fails on every
 * internal field, and an object made with Object.create(Response.prototype) has
 * none. The brand is the private state itself.
 */
export function asResponse(value: unknown): Response | null {
  if (typeof value !== 'object' || value === null || isProxy(value)) return null;
  try {
    getResponseState(value);
    return value as Response;
  } catch {
    return null;
  }
}

/**
 * A Request's signal if it has one (it follows the signal of its init or its input request), else
 * undefined: one that follows nothing can never abort, and the build makes it only when read
 * (scripts/lazy-signal-plugin.mjs), so this does not read it.
 */
export function signalOf(request: Request): AbortSignal | undefined {
  return signalIfMade(request) as AbortSignal | undefined;
}

/**
 * How many bytes a Request's body has, when that is known before it is read: the tenant gave it
 * whole (a string, bytes, a Blob, URLSearchParams, a FormData), or as the readable side of a
 * FixedLengthStream. Null for any other stream, and for no body.
 */
export function requestBodyLength(request: Request): number | null {
  const body = (getRequestState(request) as { body: { length: number | null; stream: object } | null }).body;
  if (!body) return null;
  return body.length ?? fixedLengthOf(body.stream);
}

/**
 * Status, status text and headers as the Response holds them: from its internal
 * state, never through getters a subclass may override (`get status() { return 101 }`).
 * As on Workers, what the runtime sends is what the Response is, not what it claims.
 */
export function responseParts(response: Response): { status: number; statusText: string; headers: HeaderList } {
  const state = getResponseState(response) as ResponseState;
  return { status: state.status, statusText: state.statusText, headers: [...headersOf.call(response)] };
}

/**
 * The bytes a Response was constructed from, when it was built from a string
 * or bytes and its body is still untouched: the runner then sends them as they
 * are instead of reading them back through a ReadableStream (the hot path of
 * most responses). undici exports this accessor from its module, not on the
 * class, so tenants cannot reach it.
 */
export function responseSource(response: Response): string | Uint8Array | null {
  const state = (getResponseState(response) as ResponseState).body;
  if (!state) return null;
  const source = state.source;
  if (typeof source !== 'string' && !(source instanceof Uint8Array)) return null;
  // With the lazy-body build patch (scripts/lazy-body-plugin.mjs), a stream nobody asked
  // for does not exist yet (the body has no `stream` of its own): untouched by definition.
  if (!Object.hasOwn(state, 'stream')) return source;
  const stream = response.body;
  return stream && !stream.locked && !response.bodyUsed ? source : null;
}

/**
 * The Web classes undici implements, bundled from the npm package rather than
 * taken from Node's globals: Node 20's built-in copy looks up `Buffer` on the
 * global object at call time, so it breaks once the tenant scope has no
 * `Buffer`. The bundle resolves `Buffer` through esbuild's inject instead
 * (see runner/inject.ts), invisible to the tenant.
 */
// @ts-expect-error undici ships no types for its internal files
import { Response as UndiciResponse, getResponseState } from 'undici/lib/web/fetch/response.js';
// @ts-expect-error undici ships no types for its internal files
import { Request as UndiciRequest } from 'undici/lib/web/fetch/request.js';
// @ts-expect-error undici ships no types for its internal files
import { Headers as UndiciHeaders } from 'undici/lib/web/fetch/headers.js';
// @ts-expect-error undici ships no types for its internal files
import { FormData as UndiciFormData } from 'undici/lib/web/fetch/formdata.js';

export const Response: typeof globalThis.Response = UndiciResponse;
export const Request: typeof globalThis.Request = UndiciRequest;
export const Headers: typeof globalThis.Headers = UndiciHeaders;
export const FormData: typeof globalThis.FormData = UndiciFormData;
export type Response = globalThis.Response;
export type Request = globalThis.Request;

interface ResponseState {
  body: { source: unknown; length: number | null } | null;
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
  // for does not exist yet: the body is untouched by definition.
  if (Object.getOwnPropertyDescriptor(state, 'stream')?.get) return source;
  const stream = response.body;
  return stream && !stream.locked && !response.bodyUsed ? source : null;
}

/**
 * What cache.put (and match and delete, for the URL) reject on Workers, with
 * workerd's own messages, which the tenant sees as a TypeError
 * (https://github.com/cloudflare/workerd/blob/main/src/workerd/api/cache.c%2B%2B,
 * Cache::put and validateUrl; listed under "Invalid parameters" in
 * https://developers.cloudflare.com/workers/runtime-apis/cache/).
 *
 * Two more rejections of Cache::put are the tenant side's, since they concern the
 * Response object rather than what crosses to the daemon: an error response ("Cache
 * is unable to store an error response") and a WebSocket upgrade ("Cannot cache
 * WebSocket upgrade response.").
 */
import type { HeaderList } from '../../../protocol/messages.js';
import { EdgeprocError } from '../../errors.js';
import { headerValue } from './header-list.js';

export const CACHE_MESSAGES = Object.freeze({
  invalidUrl: 'Invalid URL. Cache API keys must be fully-qualified, valid URLs.',
  nonGet: 'Cannot cache response to non-GET request.',
  partialContent: 'Cannot cache response to a range request (206 Partial Content).',
  varyStar: "Cannot cache response with 'Vary: *' header.",
});

export function assertValidUrl(url: string): void {
  if (!URL.canParse(url)) throw new EdgeprocError('ERR_CACHE_INVALID', CACHE_MESSAGES.invalidUrl);
}

/** In workerd's order, so a request failing several checks gets the same message. */
export function assertPutAllowed(requestMethod: string, status: number, responseHeaders: HeaderList): void {
  // 1. Only GET requests are keys (the method is already normalised to upper case by Request).
  if (requestMethod !== 'GET') throw new EdgeprocError('ERR_CACHE_INVALID', CACHE_MESSAGES.nonGet);
  // 2. A partial response cannot stand for the whole resource.
  if (status === 206) throw new EdgeprocError('ERR_CACHE_INVALID', CACHE_MESSAGES.partialContent);
  // 3. `*` anywhere in Vary (workerd searches the value for the character, so `Vary: Accept, *` too).
  //    Every other Vary is stored and ignored: "Cloudflare does not consider vary values in caching
  //    decisions" (https://developers.cloudflare.com/cache/concepts/cache-control/#other).
  if (headerValue(responseHeaders, 'vary')?.includes('*')) {
    throw new EdgeprocError('ERR_CACHE_INVALID', CACHE_MESSAGES.varyStar);
  }
}

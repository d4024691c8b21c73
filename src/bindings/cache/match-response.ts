/**
 * What cache.match returns for a fresh entry: the stored response, a 304 for a
 * request whose preconditions it meets, or a 206 / 416 for a Range request.
 * Runs per cache.match hit: the stored body is returned as is or as a view, never copied.
 */
import type { HeaderList } from '../../../protocol/messages.js';
import { isNotModified } from './conditional.js';
import { type CacheEntry, currentAgeSeconds } from './entry.js';
import { headerValue } from './header-list.js';
import { decideRange } from './range.js';
import type { CachedResponse } from './types.js';

const EMPTY = Buffer.alloc(0);

/** Statuses whose response has no body, so no Content-Length either (RFC 9110 §8.6). */
const NO_CONTENT = new Set([204, 205, 304]);

export function matchResponse(entry: CacheEntry, requestHeaders: HeaderList, nowMs: number): CachedResponse {
  // Every hit carries the cache's own fields, as responses served from Cloudflare's cache do:
  // CF-Cache-Status: HIT (workerd treats a response without it as a miss) and Age, "the time in
  // seconds that an asset has been in Cloudflare's cache"
  // (https://developers.cloudflare.com/cache/concepts/cache-responses/).
  const served: HeaderList = [
    ...entry.headers,
    ['Age', String(currentAgeSeconds(entry, nowMs))],
    ['CF-Cache-Status', 'HIT'],
  ];
  const { status, body } = entry;
  const successful = status >= 200 && status < 300;

  // 1. Preconditions first (RFC 9110 §13.2.2), and only where the response would be 2xx (§13.2.1):
  //    a cached 404 is a 404 whatever the request's If-None-Match says.
  if (successful && isNotModified(entry.headers, requestHeaders)) {
    return { status: 304, headers: served, body: EMPTY };
  }

  // 2. Range, on a stored 200 only: other statuses are not representations to take parts of.
  const range = headerValue(requestHeaders, 'range');
  if (status === 200 && range !== null) {
    const decision = decideRange(range, body.length);
    if (decision.kind === 'unsatisfiable') {
      return {
        status: 416,
        headers: [
          ['Content-Range', `bytes */${body.length}`],
          ['CF-Cache-Status', 'HIT'],
        ],
        body: EMPTY,
      };
    }
    if (decision.kind === 'partial') {
      const { start, end } = decision;
      served.push(['Content-Range', `bytes ${start}-${end}/${body.length}`], ['Content-Length', String(end - start + 1)]);
      return { status: 206, headers: served, body: body.subarray(start, end + 1) };
    }
  }

  // 3. The stored response whole, with its true length.
  if (!NO_CONTENT.has(status)) served.push(['Content-Length', String(body.length)]);
  return { status, headers: served, body };
}

/**
 * Conditional cache.match requests. [workers]
 * https://developers.cloudflare.com/workers/runtime-apis/cache/ : If-None-Match
 * "Results in a 304 response if a matching response is found with an ETag header
 * with a value that matches a value in If-None-Match", If-Modified-Since likewise
 * against Last-Modified (304 when Last-Modified is at or before the given time,
 * as workerd's local implementation in miniflare compares them).
 */
import type { HeaderList } from '../../../protocol/messages.js';
import { headerValue } from './header-list.js';
import { parseHttpDate } from './http-date.js';

// An entity-tag: optional W/ and an opaque quoted string, which may hold commas.
const ENTITY_TAG = /(?:W\/)?"([^"]*)"/g;

/** Whether the stored response answers the request's preconditions with 304 Not Modified. */
export function isNotModified(stored: HeaderList, request: HeaderList): boolean {
  // 1. If-None-Match, when present, decides alone: If-Modified-Since is then ignored (RFC 9110 §13.2.2).
  const ifNoneMatch = headerValue(request, 'if-none-match');
  if (ifNoneMatch !== null) {
    const etag = headerValue(stored, 'etag');
    const storedTag = etag === null ? null : opaqueTags(etag)[0];
    // A stored response without a valid ETag matches nothing, not even `*` (as miniflare).
    if (storedTag === undefined || storedTag === null) return false;
    if (ifNoneMatch.trim() === '*') return true;
    // Weak comparison: W/"x" and "x" are the same tag (RFC 9110 §13.1.2).
    return opaqueTags(ifNoneMatch).includes(storedTag);
  }
  // 2. If-Modified-Since: not modified when Last-Modified is at or before it; a value that is not an
  //    HTTP-date is ignored (RFC 9110 §13.1.3).
  const ifModifiedSince = headerValue(request, 'if-modified-since');
  const lastModified = headerValue(stored, 'last-modified');
  if (ifModifiedSince === null || lastModified === null) return false;
  const since = parseHttpDate(ifModifiedSince);
  const modified = parseHttpDate(lastModified);
  return since !== null && modified !== null && modified <= since;
}

function opaqueTags(value: string): string[] {
  return Array.from(value.matchAll(ENTITY_TAG), (m) => m[1]!);
}

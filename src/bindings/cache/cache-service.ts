/**
 * The daemon's Cache API store: one byte-bounded LRU per worker holding all of
 * that worker's caches (caches.default and each caches.open name), in memory.
 * https://developers.cloudflare.com/workers/runtime-apis/cache/
 *
 * Keys are the URL without its fragment, per cache name. Vary is not part of the
 * key: Cloudflare "does not consider vary values in caching decisions"
 * (https://developers.cloudflare.com/cache/concepts/cache-control/#other), and
 * miniflare keys by URL alone too; only `Vary: *` matters, and put rejects it.
 */
import type { HeaderList } from '../../../protocol/messages.js';
import { EdgeprocError } from '../../errors.js';
import { type CacheEntry, createEntry, isFresh } from './entry.js';
import { ByteLru } from './lru.js';
import { matchResponse } from './match-response.js';
import { assertPutAllowed, assertValidUrl } from './put-validation.js';
import { decideStorage } from './storage-policy.js';
import type { CacheKey, CacheMatchRequest, CachePutOutcome, CacheService, CachedResponse } from './types.js';

export interface CacheServiceOptions {
  /** limits.cacheBytes of a worker, read on every put so a redeploy with a new limit takes effect. */
  cacheBytes(worker: string): number;
  /** Milliseconds since the epoch; injectable so tests need not wait for entries to expire. */
  now?: () => number;
}

export function createCacheService(options: CacheServiceOptions): CacheService {
  if (typeof options?.cacheBytes !== 'function') {
    throw new EdgeprocError('ERR_CONFIG', `createCacheService: options.cacheBytes must be a function, got ${typeof options?.cacheBytes}`);
  }
  return new MemoryCacheService(options.cacheBytes, options.now ?? Date.now);
}

class MemoryCacheService implements CacheService {
  readonly #cacheBytes: (worker: string) => number;
  readonly #now: () => number;
  readonly #workers = new Map<string, ByteLru<CacheEntry>>();

  constructor(cacheBytes: (worker: string) => number, now: () => number) {
    this.#cacheBytes = cacheBytes;
    this.#now = now;
  }

  /** Per cache.match call. */
  match(key: CacheKey, request: CacheMatchRequest): CachedResponse | null {
    assertValidUrl(key.url);
    // workerd answers undefined for a non-GET request without looking in the cache.
    if (!request.ignoreMethod && request.method !== 'GET') return null;
    const lru = this.#workers.get(key.worker);
    const id = entryId(key);
    const entry = lru?.get(id);
    if (!lru || !entry) return null;
    const nowMs = this.#now();
    if (!isFresh(entry, nowMs)) {
      lru.delete(id);
      return null;
    }
    return matchResponse(entry, request.headers, nowMs);
  }

  put(key: CacheKey, requestHeaders: HeaderList, response: CachedResponse, requestMethod: string): CachePutOutcome {
    assertValidUrl(key.url);
    assertPutAllowed(requestMethod, response.status, response.headers);
    // 1. workerd drops a 304 without an error: "Caching 304s could be a source of bugs in a worker,
    //    since a worker which blindly stuffs responses from fetch() into cache could end up caching
    //    one, then later respond to non-conditional requests with the cached 304" (Cache::put).
    if (response.status === 304) {
      return { stored: false, reason: 'a 304 Not Modified response is discarded, as on Workers' };
    }
    // 2. Cache-Control, Expires, Set-Cookie and Authorization decide whether and how long.
    const nowMs = this.#now();
    const decision = decideStorage({ status: response.status, responseHeaders: response.headers, requestHeaders, nowMs });
    if (!decision.storable) return { stored: false, reason: decision.reason };
    // 3. Within the worker's bound, evicting its least recently used entries as needed. An entry
    //    that could never fit is refused and leaves the cache as it was.
    const url = withoutFragment(key.url);
    const { freshForMs, initialAgeSeconds, dropFields } = decision;
    const entry = createEntry({ url, response, nowMs, freshForMs, initialAgeSeconds, dropFields });
    const limitBytes = this.#cacheBytes(key.worker);
    if (entry.bytes > limitBytes) {
      return {
        stored: false,
        reason: `the entry takes ${entry.bytes} bytes (body, headers and URL), more than worker "${key.worker}" may hold in all its caches (limits.cacheBytes = ${limitBytes})`,
      };
    }
    let lru = this.#workers.get(key.worker);
    if (!lru) this.#workers.set(key.worker, (lru = new ByteLru()));
    lru.set(entryId(key), entry, entry.bytes, limitBytes);
    return { stored: true };
  }

  delete(key: CacheKey, requestMethod: string, ignoreMethod: boolean): boolean {
    assertValidUrl(key.url);
    // workerd answers false for a non-GET request without asking the cache.
    if (!ignoreMethod && requestMethod !== 'GET') return false;
    const lru = this.#workers.get(key.worker);
    const id = entryId(key);
    const entry = lru?.peek(id);
    if (!lru || !entry) return false;
    lru.delete(id);
    // An expired entry is removed too, but it was no longer there for match, so delete says false.
    return isFresh(entry, this.#now());
  }

  dropWorker(worker: string): void {
    this.#workers.delete(worker);
  }

  bytes(worker: string): number {
    return this.#workers.get(worker)?.bytes ?? 0;
  }
}

/** One worker's caches share an LRU; the cache name and the URL together name an entry. */
function entryId(key: CacheKey): string {
  return JSON.stringify([key.cache, withoutFragment(key.url)]);
}

/**
 * A serialised URL has `#` only where its fragment starts (the URL serializer
 * percent-encodes it everywhere else), so cutting there is exact.
 */
function withoutFragment(url: string): string {
  const hash = url.indexOf('#');
  return hash === -1 ? url : url.slice(0, hash);
}

/**
 * The daemon's Cache API storage as the binding dispatcher sees it: one
 * CacheService per daemon, holding a separate, size-bounded LRU per worker
 * (caches.default and each caches.open(name) are separate caches of that
 * worker). Entries live in the daemon's memory, shared by all instances of the
 * worker, and are gone on restart (as a cold Cloudflare colo would be).
 */
import type { HeaderList } from '../../../protocol/messages.js';

export interface CacheKey {
  worker: string;
  /** `default` for caches.default, else the name given to caches.open. */
  cache: string;
  /** The request URL, absolute; the fragment is ignored. */
  url: string;
}

/** What a match needs of the request beyond its URL. */
export interface CacheMatchRequest {
  method: string;
  /** The request's headers (Range, If-None-Match, If-Modified-Since are honoured). */
  headers: HeaderList;
  /** `match(request, { ignoreMethod: true })`. */
  ignoreMethod: boolean;
}

export interface CachedResponse {
  status: number;
  headers: HeaderList;
  body: Buffer;
}

export type CachePutOutcome =
  | { stored: true }
  /** Not stored, and not an error on Workers either (e.g. `Cache-Control: no-store`). `reason` is for the log. */
  | { stored: false; reason: string };

/**
 * put validates as Workers does and throws CacheError (message the tenant sees as a TypeError)
 * for what Workers rejects: a non-GET request, a 206 response, `Vary: *`.
 */
export interface CacheService {
  match(key: CacheKey, request: CacheMatchRequest): CachedResponse | null;
  put(key: CacheKey, requestHeaders: HeaderList, response: CachedResponse, requestMethod: string): CachePutOutcome;
  delete(key: CacheKey, requestMethod: string, ignoreMethod: boolean): boolean;
  /** Drops every cache of a worker (it was deleted). */
  dropWorker(worker: string): void;
  /** Bytes held for one worker, all its caches together. */
  bytes(worker: string): number;
}

/**
 * One stored Cache API entry: the response as it will be served, when it was
 * stored, until when it is fresh, and the bytes it is charged against the
 * worker's limits.cacheBytes.
 */
import type { HeaderList } from '../../../protocol/messages.js';
import { hasHeader, headerListBytes, headerValue, withoutHeaders } from './header-list.js';
import type { CachedResponse } from './types.js';

export interface CacheEntry {
  status: number;
  /** As put, less the fields a cache does not store or sets itself on each match. */
  headers: HeaderList;
  body: Buffer;
  storedAtMs: number;
  /** Fresh while now < expiresAtMs; met after that, the entry is removed. */
  expiresAtMs: number;
  initialAgeSeconds: number;
  /** Body, header names and values, and URL, in bytes. */
  bytes: number;
}

/**
 * Fields not stored: those of the connection, which RFC 9111 §3.1 lets a cache drop on
 * storing (RFC 9110 §7.6.1), and those match sets from the entry itself (Age,
 * CF-Cache-Status, Content-Length), so a stale or wrong value put with the response is
 * never served.
 */
const NOT_STORED = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'age', 'cf-cache-status', 'content-length'];

export interface EntryInput {
  url: string;
  response: CachedResponse;
  /** Extra fields to drop (`Cache-Control: private=<fields>`). */
  dropFields: ReadonlySet<string>;
  nowMs: number;
  freshForMs: number;
  initialAgeSeconds: number;
}

export function createEntry({ url, response, dropFields, nowMs, freshForMs, initialAgeSeconds }: EntryInput): CacheEntry {
  const dropped = new Set([...NOT_STORED, ...dropFields, ...connectionOptions(response.headers)]);
  const headers = withoutHeaders(response.headers, dropped).map(([name, value]): [string, string] => [name, value]);
  const body = ownedCopy(response.body);
  return {
    status: response.status,
    headers,
    body,
    storedAtMs: nowMs,
    expiresAtMs: nowMs + freshForMs,
    initialAgeSeconds,
    bytes: body.length + headerListBytes(headers) + Buffer.byteLength(url),
  };
}

export function isFresh(entry: CacheEntry, nowMs: number): boolean {
  return nowMs < entry.expiresAtMs;
}

/** The Age a match reports: the age it was put with plus the whole seconds it has spent here (RFC 9111 §4.2.3). */
export function currentAgeSeconds(entry: CacheEntry, nowMs: number): number {
  return entry.initialAgeSeconds + Math.max(0, Math.floor((nowMs - entry.storedAtMs) / 1000));
}

/** Fields a Connection header names are of the connection too (RFC 9110 §7.6.1). */
function connectionOptions(headers: HeaderList): string[] {
  if (!hasHeader(headers, 'connection')) return [];
  return headerValue(headers, 'connection')!
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
}

/**
 * The body in memory of its own. The caller's Buffer may be a view into a larger
 * one (an IPC frame, Node's shared 8 KiB pool), which would keep all of it alive
 * for as long as the entry lives while being charged only for the view.
 */
function ownedCopy(body: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(body.length);
  body.copy(copy);
  return copy;
}

/**
 * Whether cache.put stores a response, and for how long, as Cloudflare's
 * Cache API decides it from the response's headers (and the request's
 * Authorization). A response that is not stored is not an error on Workers:
 * put resolves either way, so the outcome carries a reason for the log only.
 *
 * Sources, cited by the rules below:
 *   [workers]  https://developers.cloudflare.com/workers/runtime-apis/cache/
 *   [cc]       https://developers.cloudflare.com/cache/concepts/cache-control/
 *              (Origin Cache Control is on for every non-Enterprise zone, so its
 *              "enabled" column is the behaviour a Worker gets)
 *   [default]  https://developers.cloudflare.com/cache/concepts/default-cache-behavior/
 *   [edge-ttl] https://developers.cloudflare.com/cache/how-to/configure-cache-status-code/#edge-ttl
 *   [rfc9111]  https://www.rfc-editor.org/rfc/rfc9111
 *
 * Not honoured, as on Workers: the request's own Cache-Control (miniflare,
 * Cloudflare's local implementation, drops it before deciding), and
 * stale-while-revalidate / stale-if-error ([workers]: "not supported when
 * using the cache.put or cache.match methods").
 */
import type { HeaderList } from '../../../protocol/messages.js';
import { type CacheDirective, fieldNames, parseCacheControl, parseDeltaSeconds } from './cache-control.js';
import { hasHeader, headerValue } from './header-list.js';
import { parseHttpDate } from './http-date.js';

export type StorageDecision =
  | {
      storable: true;
      /** How long from now the entry stays fresh. */
      freshForMs: number;
      /** The response's own Age when it was put; match reports it plus the time spent in the cache. */
      initialAgeSeconds: number;
      /** Lower-case names of fields stored without (from `private=<fields>`). */
      dropFields: ReadonlySet<string>;
    }
  | { storable: false; reason: string };

/** [edge-ttl]: the TTL by status "when a cache-control directive or expires response header are not present". */
const DEFAULT_EDGE_TTL_SECONDS: ReadonlyMap<number, number> = new Map([
  [200, 120 * 60],
  [206, 120 * 60],
  [301, 120 * 60],
  [302, 20 * 60],
  [303, 20 * 60],
  [404, 3 * 60],
  [410, 3 * 60],
]);

export interface StorageInput {
  status: number;
  responseHeaders: HeaderList;
  requestHeaders: HeaderList;
  nowMs: number;
}

export function decideStorage({ status, responseHeaders, requestHeaders, nowMs }: StorageInput): StorageDecision {
  const directives = parseCacheControl(headerValue(responseHeaders, 'cache-control'));
  const has = (name: string): boolean => directives.some((d) => d.name === name);

  // 1. `no-store`: never stored ([cc] table: "Will not cache"; [default]).
  if (has('no-store')) return notStored('Cache-Control: no-store');

  // 2. `private` without fields: "must not be stored by a shared cache like Cloudflare" ([cc]).
  //    `private=<fields>`: stored without those fields ([cc] table: "Does not cache <headers> values
  //    mentioned in Private=<headers>"); [workers] names `private=Set-Cookie` as the way to store a
  //    response that sets a cookie.
  const privateFields = qualifiedFields(directives, 'private');
  if (privateFields === 'unqualified') return notStored('Cache-Control: private');
  const dropFields = new Set(privateFields);
  const kept = (name: string): boolean => !dropFields.has(name) && hasHeader(responseHeaders, name);

  // 3. `no-cache`: with Origin Cache Control, Cloudflare "caches and always revalidates" ([cc]). But
  //    cache.match "never sends a subrequest to the origin" ([workers]), so such an entry could never
  //    be returned: it is not stored. `no-cache=<fields>` is the same when one of the fields is in the
  //    response, and nothing when none is ([cc] table: "Caches if headers mentioned in
  //    no-cache=<headers> do not exist. Always revalidates if any header mentioned ... is present").
  const noCacheFields = qualifiedFields(directives, 'no-cache');
  if (noCacheFields === 'unqualified') {
    return notStored('Cache-Control: no-cache (the entry would need revalidating on every use, which cache.match never does)');
  }
  const revalidated = noCacheFields.find(kept);
  if (revalidated !== undefined) {
    return notStored(`Cache-Control: no-cache=${revalidated} and the response has ${revalidated} (it would need revalidating on every use)`);
  }

  // 4. Set-Cookie: "Responses with Set-Cookie headers are never cached" unless it is deleted or
  //    `Cache-Control: private=Set-Cookie` is set ([workers]); step 2 has dropped it in that case.
  if (kept('set-cookie')) {
    return notStored('the response has Set-Cookie (delete it, or send Cache-Control: private=Set-Cookie to store the response without it)');
  }

  // 5. A request with Authorization: "Content is cached only if must-revalidate, public, or s-maxage
  //    is also present" ([cc] Conditions; [rfc9111] §3.5). workerd sends the put's request headers to
  //    the cache, and miniflare applies the same rule.
  if (hasHeader(requestHeaders, 'authorization') && !has('public') && !has('s-maxage') && !has('must-revalidate')) {
    return notStored('the request has Authorization and the response has none of Cache-Control: public, s-maxage, must-revalidate');
  }

  // 6. Freshness lifetime: s-maxage over max-age over Expires ([cc]: s-maxage "overrides the maximum
  //    age specified by either the max-age directive or the Expires header"; [default]: "If both
  //    max-age and an Expires header are set, max-age will be used"), else the status's default edge
  //    TTL, else not stored ([edge-ttl]: "All other status codes are not cached by default").
  const lifetime = freshnessLifetimeMs(directives, responseHeaders, status, nowMs);
  if ('notStored' in lifetime) return notStored(lifetime.notStored);

  // 7. A response is stale once its age reaches its lifetime ([rfc9111] §4.2). Its age on arrival is
  //    its Age field (§4.2.3; an invalid one is ignored, §5.1). One already stale is not stored:
  //    max-age=0 and s-maxage=0 are "Will not cache" or "always revalidates" in [cc], and match would
  //    never return it.
  const initialAgeSeconds = ageFieldSeconds(responseHeaders);
  const freshForMs = lifetime.ms - initialAgeSeconds * 1000;
  if (freshForMs <= 0) {
    return notStored(`the response is already stale: freshness lifetime ${lifetime.ms / 1000} s (${lifetime.source}), age ${initialAgeSeconds} s`);
  }
  return { storable: true, freshForMs, initialAgeSeconds, dropFields };
}

type Lifetime = { ms: number; source: string } | { notStored: string };

function freshnessLifetimeMs(directives: CacheDirective[], headers: HeaderList, status: number, nowMs: number): Lifetime {
  for (const name of ['s-maxage', 'max-age']) {
    // The first occurrence counts ([rfc9111] §4.2.1).
    const directive = directives.find((d) => d.name === name);
    if (!directive) continue;
    const seconds = parseDeltaSeconds(directive.value);
    // "Caches are encouraged to consider responses that have invalid freshness information ... to be stale" (§4.2.1).
    if (seconds === null) return { notStored: `Cache-Control: ${name}=${directive.value ?? ''} is not a number of seconds (read as stale)` };
    return { ms: seconds * 1000, source: `${name}=${seconds}` };
  }
  const expires = headerValue(headers, 'expires');
  if (expires !== null) {
    // An Expires that is not an HTTP-date (often "0") means already expired (§5.3).
    const expiresMs = parseHttpDate(expires);
    if (expiresMs === null) return { notStored: `Expires: ${expires} is not an HTTP-date (read as already expired)` };
    // Relative to the response's Date when it has one, else to the time it was put (§4.2.1).
    const dateField = headerValue(headers, 'date');
    const dateMs = (dateField === null ? null : parseHttpDate(dateField)) ?? nowMs;
    return { ms: Math.max(0, expiresMs - dateMs), source: 'Expires' };
  }
  const seconds = DEFAULT_EDGE_TTL_SECONDS.get(status);
  if (seconds === undefined) {
    return { notStored: `status ${status} has no default edge TTL and the response sets no freshness (Cache-Control: s-maxage or max-age, or Expires)` };
  }
  return { ms: seconds * 1000, source: `default edge TTL for status ${status}` };
}

/** The first member of the Age field; 0 when absent or invalid ([rfc9111] §5.1). */
function ageFieldSeconds(headers: HeaderList): number {
  const age = headerValue(headers, 'age');
  if (age === null) return 0;
  return parseDeltaSeconds(age.split(',')[0]!.trim()) ?? 0;
}

/**
 * The fields a `private` or `no-cache` directive lists, all occurrences together; 'unqualified'
 * when any occurrence lists none (the stricter reading wins, [rfc9111] §4.2.1).
 */
function qualifiedFields(directives: CacheDirective[], name: 'private' | 'no-cache'): string[] | 'unqualified' {
  const fields: string[] = [];
  for (const directive of directives) {
    if (directive.name !== name) continue;
    const listed = directive.value === null ? [] : fieldNames(directive.value);
    if (listed.length === 0) return 'unqualified';
    fields.push(...listed);
  }
  return fields;
}

function notStored(reason: string): StorageDecision {
  return { storable: false, reason };
}

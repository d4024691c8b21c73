/**
 * The daemon's Cache API store (src/bindings/cache/), called directly: every
 * rule of put, match and delete as Workers has them, the per-worker byte bound,
 * and expiry on an injected clock. Pure and in-process; the tenant's side over
 * real children is in cache-binding.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { HeaderList } from '../../protocol/messages.js';
import { parseCacheControl } from '../../src/bindings/cache/cache-control.js';
import { createCacheService } from '../../src/bindings/cache/cache-service.js';
import { parseHttpDate } from '../../src/bindings/cache/http-date.js';
import type { CacheKey, CacheMatchRequest, CachedResponse } from '../../src/bindings/cache/types.js';
import { EdgeprocError } from '../../src/errors.js';

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const URL_A = 'https://example.com/a';

function harness(cacheBytes: number | ((worker: string) => number) = 1024 * 1024) {
  let nowMs = T0;
  const service = createCacheService({
    cacheBytes: typeof cacheBytes === 'number' ? () => cacheBytes : cacheBytes,
    now: () => nowMs,
  });
  return {
    service,
    advance(ms: number) {
      nowMs += ms;
    },
    /** put with a GET request and no request headers. */
    put(url: string, response: CachedResponse, key: Partial<CacheKey> = {}) {
      return service.put(keyOf(url, key), [], response, 'GET');
    },
    match(url: string, headers: HeaderList = [], key: Partial<CacheKey> = {}) {
      return service.match(keyOf(url, key), get(headers));
    },
  };
}

function keyOf(url: string, key: Partial<CacheKey> = {}): CacheKey {
  return { worker: 'w', cache: 'default', url, ...key };
}

function get(headers: HeaderList = []): CacheMatchRequest {
  return { method: 'GET', headers, ignoreMethod: false };
}

function response(body: string, headers: HeaderList = [['Cache-Control', 'max-age=60']], status = 200): CachedResponse {
  return { status, headers, body: Buffer.from(body) };
}

function header(res: CachedResponse | null, name: string): string | null {
  const values = (res?.headers ?? []).filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  return values.length === 0 ? null : values.join(', ');
}

function expectCacheError(call: () => unknown, message: string): void {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(EdgeprocError);
    expect((error as EdgeprocError).code).toBe('ERR_CACHE_INVALID');
    expect((error as EdgeprocError).message).toBe(message);
    return;
  }
  throw new Error(`expected ERR_CACHE_INVALID: ${message}`);
}

const httpDate = (ms: number) => new Date(ms).toUTCString();

describe('put rejects what Workers rejects, with workerd\'s messages', () => {
  it('rejects a non-GET request', () => {
    const { service } = harness();
    for (const method of ['POST', 'HEAD', 'PUT']) {
      expectCacheError(() => service.put(keyOf(URL_A), [], response('x'), method), 'Cannot cache response to non-GET request.');
    }
  });

  it('rejects a 206 response', () => {
    const { service } = harness();
    expectCacheError(
      () => service.put(keyOf(URL_A), [], response('x', [['Cache-Control', 'max-age=60']], 206), 'GET'),
      'Cannot cache response to a range request (206 Partial Content).',
    );
  });

  it('rejects Vary: *, alone or in a list', () => {
    const { service } = harness();
    for (const vary of ['*', 'Accept, *']) {
      expectCacheError(
        () => service.put(keyOf(URL_A), [], response('x', [['Cache-Control', 'max-age=60'], ['Vary', vary]]), 'GET'),
        "Cannot cache response with 'Vary: *' header.",
      );
    }
  });

  it('checks in workerd\'s order: a POST of a 206 is reported as non-GET', () => {
    const { service } = harness();
    expectCacheError(
      () => service.put(keyOf(URL_A), [], response('x', [['Vary', '*']], 206), 'POST'),
      'Cannot cache response to non-GET request.',
    );
  });

  it('rejects a key that is not an absolute URL, in put, match and delete', () => {
    const { service } = harness();
    const message = 'Invalid URL. Cache API keys must be fully-qualified, valid URLs.';
    expectCacheError(() => service.put(keyOf('/relative'), [], response('x'), 'GET'), message);
    expectCacheError(() => service.match(keyOf('/relative'), get()), message);
    expectCacheError(() => service.delete(keyOf('/relative'), 'GET', false), message);
  });

  it('discards a 304 without an error', () => {
    const h = harness();
    expect(h.put(URL_A, response('', [['Cache-Control', 'max-age=60']], 304))).toEqual({
      stored: false,
      reason: 'a 304 Not Modified response is discarded, as on Workers',
    });
    expect(h.match(URL_A)).toBeNull();
  });
});

describe('put stores by Cache-Control, Expires and Set-Cookie as Cloudflare does', () => {
  it.each([
    ['no-store', 'max-age=60, no-store', 'Cache-Control: no-store'],
    ['private', 'private, max-age=60', 'Cache-Control: private'],
    ['no-cache', 'no-cache, max-age=60', 'Cache-Control: no-cache (the entry would need revalidating on every use, which cache.match never does)'],
    ['max-age=0', 'max-age=0', 'the response is already stale: freshness lifetime 0 s (max-age=0), age 0 s'],
    ['s-maxage=0 over max-age', 's-maxage=0, max-age=60', 'the response is already stale: freshness lifetime 0 s (s-maxage=0), age 0 s'],
    ['an invalid max-age', 'max-age=soon', 'Cache-Control: max-age=soon is not a number of seconds (read as stale)'],
  ])('does not store %s', (_, cacheControl, reason) => {
    const h = harness();
    expect(h.put(URL_A, response('x', [['Cache-Control', cacheControl]]))).toEqual({ stored: false, reason });
    expect(h.match(URL_A)).toBeNull();
    expect(h.service.bytes('w')).toBe(0);
  });

  it('does not store a response with Set-Cookie, and says how to store it', () => {
    const h = harness();
    expect(h.put(URL_A, response('x', [['Cache-Control', 'max-age=60'], ['Set-Cookie', 'id=1']]))).toEqual({
      stored: false,
      reason: 'the response has Set-Cookie (delete it, or send Cache-Control: private=Set-Cookie to store the response without it)',
    });
    expect(h.match(URL_A)).toBeNull();
  });

  it('stores a response with Set-Cookie under private=Set-Cookie, without the cookie', () => {
    const h = harness();
    const headers: HeaderList = [['Cache-Control', 'private=Set-Cookie, max-age=60'], ['Set-Cookie', 'id=1'], ['Set-Cookie', 'b=2'], ['X-Kept', 'yes']];
    expect(h.put(URL_A, response('x', headers))).toEqual({ stored: true });
    const hit = h.match(URL_A);
    expect(header(hit, 'set-cookie')).toBeNull();
    expect(header(hit, 'x-kept')).toBe('yes');
  });

  it('drops every field a quoted private="..." lists', () => {
    const h = harness();
    h.put(URL_A, response('x', [['Cache-Control', 'max-age=60, private="Set-Cookie, X-User"'], ['Set-Cookie', 'id=1'], ['X-User', 'ann'], ['X-Kept', 'yes']]));
    const hit = h.match(URL_A);
    expect(hit?.headers.map(([n]) => n.toLowerCase()).filter((n) => n.startsWith('x-') || n === 'set-cookie')).toEqual(['x-kept']);
  });

  it('treats no-cache=Set-Cookie as revalidate-always when the cookie is there, and as nothing when it is not', () => {
    const h = harness();
    expect(h.put(URL_A, response('x', [['Cache-Control', 'no-cache=Set-Cookie, max-age=60'], ['Set-Cookie', 'id=1']]))).toEqual({
      stored: false,
      reason: 'Cache-Control: no-cache=set-cookie and the response has set-cookie (it would need revalidating on every use)',
    });
    expect(h.put(URL_A, response('x', [['Cache-Control', 'no-cache="Set-Cookie", max-age=60']]))).toEqual({ stored: true });
    expect(h.match(URL_A)?.status).toBe(200);
  });

  it('stores for a request with Authorization only with public, s-maxage or must-revalidate', () => {
    const { service } = harness();
    const auth: HeaderList = [['Authorization', 'Bearer t']];
    expect(service.put(keyOf(URL_A), auth, response('x', [['Cache-Control', 'max-age=60']]), 'GET')).toEqual({
      stored: false,
      reason: 'the request has Authorization and the response has none of Cache-Control: public, s-maxage, must-revalidate',
    });
    for (const cc of ['public, max-age=60', 's-maxage=60', 'max-age=60, must-revalidate']) {
      expect(service.put(keyOf(URL_A), auth, response('x', [['Cache-Control', cc]]), 'GET')).toEqual({ stored: true });
    }
  });

  it('ignores the request\'s own Cache-Control', () => {
    const { service } = harness();
    expect(service.put(keyOf(URL_A), [['Cache-Control', 'no-store']], response('x'), 'GET')).toEqual({ stored: true });
  });

  it('reads Cache-Control spread over several fields, in any case', () => {
    const h = harness();
    expect(h.put(URL_A, response('x', [['cache-control', 'max-age=60'], ['CACHE-CONTROL', 'No-Store']]))).toMatchObject({ stored: false });
  });
});

describe('freshness: s-maxage over max-age over Expires, then the default edge TTL', () => {
  /** Fresh just before `ms` after the put, gone at `ms`. */
  function expectFreshFor(ms: number, headers: HeaderList, status = 200): void {
    const h = harness();
    expect(h.put(URL_A, response('x', headers, status))).toEqual({ stored: true });
    h.advance(ms - 1);
    expect(h.match(URL_A)?.status).toBe(status);
    h.advance(1);
    expect(h.match(URL_A)).toBeNull();
    expect(h.service.bytes('w')).toBe(0);
  }

  it('max-age', () => expectFreshFor(60_000, [['Cache-Control', 'max-age=60']]));
  it('s-maxage wins over max-age', () => expectFreshFor(10_000, [['Cache-Control', 'max-age=100, s-maxage=10']]));
  it('max-age wins over Expires', () => expectFreshFor(5_000, [['Cache-Control', 'max-age=5'], ['Expires', httpDate(T0 + 3_600_000)]]));
  it('the first of two max-age counts', () => expectFreshFor(5_000, [['Cache-Control', 'max-age=5, max-age=500']]));
  it('a quoted max-age is read', () => expectFreshFor(7_000, [['Cache-Control', 'max-age="7"']]));
  it('Expires, relative to now without Date', () => expectFreshFor(30_000, [['Expires', httpDate(T0 + 30_000)]]));
  it('Expires, relative to Date when present', () =>
    expectFreshFor(30_000, [['Date', httpDate(T0 - 3_600_000)], ['Expires', httpDate(T0 - 3_600_000 + 30_000)]]));
  it('stale-while-revalidate does not extend it', () => expectFreshFor(1_000, [['Cache-Control', 'max-age=1, stale-while-revalidate=600']]));
  it('the response\'s Age is counted', () => expectFreshFor(10_000, [['Cache-Control', 'max-age=60'], ['Age', '50']]));
  it('200 without freshness: 120 minutes', () => expectFreshFor(120 * 60_000, [], 200));
  it('301 without freshness: 120 minutes', () => expectFreshFor(120 * 60_000, [], 301));
  it('302 without freshness: 20 minutes', () => expectFreshFor(20 * 60_000, [], 302));
  it('404 without freshness: 3 minutes', () => expectFreshFor(3 * 60_000, [], 404));
  it('a 500 with max-age is stored like any other', () => expectFreshFor(60_000, [['Cache-Control', 'max-age=60']], 500));

  it('does not store a status without a default edge TTL when nothing gives freshness', () => {
    const h = harness();
    expect(h.put(URL_A, response('x', [], 500))).toEqual({
      stored: false,
      reason: 'status 500 has no default edge TTL and the response sets no freshness (Cache-Control: s-maxage or max-age, or Expires)',
    });
  });

  it('reads an Expires that is not an HTTP-date (Expires: 0) as already expired', () => {
    const h = harness();
    expect(h.put(URL_A, response('x', [['Expires', '0']]))).toEqual({
      stored: false,
      reason: 'Expires: 0 is not an HTTP-date (read as already expired)',
    });
  });

  it('does not store a response whose Expires is already past', () => {
    const h = harness();
    expect(h.put(URL_A, response('x', [['Expires', httpDate(T0 - 1000)]]))).toMatchObject({ stored: false });
  });

  it('does not store a response whose Age already exceeds its max-age', () => {
    const h = harness();
    expect(h.put(URL_A, response('x', [['Cache-Control', 'max-age=60'], ['Age', '61']]))).toEqual({
      stored: false,
      reason: 'the response is already stale: freshness lifetime 60 s (max-age=60), age 61 s',
    });
  });
});

describe('match', () => {
  it('returns the stored status, headers and body with CF-Cache-Status: HIT, Age and the true Content-Length', () => {
    const h = harness();
    h.put(URL_A, response('hello', [['Cache-Control', 'max-age=60'], ['X-Origin', 'worker'], ['Content-Type', 'text/plain']], 201));
    const hit = h.match(URL_A);
    expect(hit).toEqual({
      status: 201,
      headers: [
        ['Cache-Control', 'max-age=60'],
        ['X-Origin', 'worker'],
        ['Content-Type', 'text/plain'],
        ['Age', '0'],
        ['CF-Cache-Status', 'HIT'],
        ['Content-Length', '5'],
      ],
      body: Buffer.from('hello'),
    });
  });

  it('reports Age as the age it was put with plus the whole seconds since', () => {
    const h = harness();
    h.put(URL_A, response('x', [['Cache-Control', 'max-age=600'], ['Age', '50']]));
    h.advance(5_999);
    expect(header(h.match(URL_A), 'age')).toBe('55');
  });

  it('does not store the fields of the connection, or Age, CF-Cache-Status and Content-Length as put', () => {
    const h = harness();
    h.put(
      URL_A,
      response('hello', [
        ['Cache-Control', 'max-age=60'],
        ['Connection', 'keep-alive, X-Hop'],
        ['X-Hop', '1'],
        ['Keep-Alive', 'timeout=5'],
        ['Transfer-Encoding', 'chunked'],
        ['Content-Length', '999'],
        ['CF-Cache-Status', 'MISS'],
        ['Age', '3'],
      ]),
    );
    expect(h.match(URL_A)?.headers).toEqual([
      ['Cache-Control', 'max-age=60'],
      ['Age', '3'],
      ['CF-Cache-Status', 'HIT'],
      ['Content-Length', '5'],
    ]);
  });

  it('sends no Content-Length for a cached 204', () => {
    const h = harness();
    h.put(URL_A, response('', [['Cache-Control', 'max-age=60']], 204));
    expect(header(h.match(URL_A), 'content-length')).toBeNull();
  });

  it('misses an unknown URL, and a non-GET request unless ignoreMethod', () => {
    const h = harness();
    h.put(URL_A, response('x'));
    expect(h.match('https://example.com/other')).toBeNull();
    expect(h.service.match(keyOf(URL_A), { method: 'POST', headers: [], ignoreMethod: false })).toBeNull();
    expect(h.service.match(keyOf(URL_A), { method: 'HEAD', headers: [], ignoreMethod: false })).toBeNull();
    expect(h.service.match(keyOf(URL_A), { method: 'POST', headers: [], ignoreMethod: true })?.status).toBe(200);
  });

  it('keys by the URL without its fragment, query included', () => {
    const h = harness();
    h.put('https://example.com/p?q=1#top', response('x'));
    expect(h.match('https://example.com/p?q=1')?.status).toBe(200);
    expect(h.match('https://example.com/p?q=1#bottom')?.status).toBe(200);
    expect(h.match('https://example.com/p?q=2')).toBeNull();
    expect(h.service.bytes('w')).toBe(1 + 'Cache-Control'.length + 'max-age=60'.length + 'https://example.com/p?q=1'.length);
  });

  it('ignores Vary other than *: one entry per URL, whatever the request headers', () => {
    const h = harness();
    h.put(URL_A, response('json', [['Cache-Control', 'max-age=60'], ['Vary', 'Accept']]));
    expect(h.match(URL_A, [['Accept', 'text/html']])?.body.toString()).toBe('json');
  });

  it('drops a stale entry when it meets it', () => {
    const h = harness();
    h.put(URL_A, response('x', [['Cache-Control', 'max-age=1']]));
    expect(h.service.bytes('w')).toBeGreaterThan(0);
    h.advance(1000);
    expect(h.match(URL_A)).toBeNull();
    expect(h.service.bytes('w')).toBe(0);
  });

  it('keeps the body as put, even if the caller reuses its buffer', () => {
    const h = harness();
    const body = Buffer.from('original');
    h.put(URL_A, { status: 200, headers: [['Cache-Control', 'max-age=60']], body });
    body.write('mutated!');
    expect(h.match(URL_A)?.body.toString()).toBe('original');
  });
});

describe('match with Range', () => {
  const TEN = response('0123456789', [['Cache-Control', 'max-age=60'], ['Content-Type', 'text/plain']]);

  function ranged(range: string, stored: CachedResponse = TEN) {
    const h = harness();
    h.put(URL_A, stored);
    return h.match(URL_A, [['Range', range]]);
  }

  it.each([
    ['bytes=2-4', 2, 4],
    ['bytes=5-', 5, 9],
    ['bytes=-3', 7, 9],
    ['bytes=8-100', 8, 9],
    ['bytes=0-0', 0, 0],
    [' Bytes = 2 - 4 ', 2, 4],
  ])('%s → 206 with bytes %i-%i', (range, start, end) => {
    const hit = ranged(range);
    expect(hit?.status).toBe(206);
    expect(hit?.body.toString()).toBe('0123456789'.slice(start, end + 1));
    expect(header(hit, 'content-range')).toBe(`bytes ${start}-${end}/10`);
    expect(header(hit, 'content-length')).toBe(String(end - start + 1));
    expect(header(hit, 'content-type')).toBe('text/plain');
    expect(header(hit, 'cf-cache-status')).toBe('HIT');
  });

  it.each(['bytes=10-', 'bytes=15-20', 'bytes=5-2', 'bytes=x-y', 'bytes=-'])('%s → 416 with the length', (range) => {
    expect(ranged(range)).toEqual({
      status: 416,
      headers: [
        ['Content-Range', 'bytes */10'],
        ['CF-Cache-Status', 'HIT'],
      ],
      body: Buffer.alloc(0),
    });
  });

  it.each(['items=0-1', 'bytes=0-1,3-4', 'bytes=-20', 'bytes=-0', 'bytes='])('%s → the whole body, 200', (range) => {
    const hit = ranged(range);
    expect(hit?.status).toBe(200);
    expect(hit?.body.toString()).toBe('0123456789');
    expect(header(hit, 'content-range')).toBeNull();
  });

  it('leaves a cached 404 whole', () => {
    const hit = ranged('bytes=0-1', response('not found', [['Cache-Control', 'max-age=60']], 404));
    expect(hit?.status).toBe(404);
    expect(hit?.body.toString()).toBe('not found');
  });
});

describe('conditional match', () => {
  const LAST_MODIFIED = 'Tue, 13 Jan 2026 12:00:00 GMT';
  const VALIDATED = response('body', [
    ['Cache-Control', 'max-age=60'],
    ['ETag', '"v1"'],
    ['Last-Modified', LAST_MODIFIED],
  ]);

  function conditional(headers: HeaderList, stored: CachedResponse = VALIDATED) {
    const h = harness();
    h.put(URL_A, stored);
    return h.match(URL_A, headers);
  }

  it.each(['"v1"', 'W/"v1"', '  "v1"  ', '"v0", "v1"', '"a,b", W/"v1"', '*'])('If-None-Match: %s → 304', (value) => {
    const hit = conditional([['If-None-Match', value]]);
    expect(hit?.status).toBe(304);
    expect(hit?.body.length).toBe(0);
    expect(header(hit, 'etag')).toBe('"v1"');
    expect(header(hit, 'cf-cache-status')).toBe('HIT');
    expect(header(hit, 'content-length')).toBeNull();
  });

  it.each(['"v2"', 'v1', '"v10"'])('If-None-Match: %s → 200', (value) => {
    expect(conditional([['If-None-Match', value]])?.status).toBe(200);
  });

  it('If-None-Match: * does not match a response without an ETag', () => {
    expect(conditional([['If-None-Match', '*']], response('body'))?.status).toBe(200);
  });

  it.each([
    ['at Last-Modified', LAST_MODIFIED, 304],
    ['after Last-Modified', 'Tue, 13 Jan 2026 13:00:00 GMT', 304],
    ['before Last-Modified', 'Tue, 13 Jan 2026 11:00:00 GMT', 200],
    ['in the RFC 850 form', 'Tuesday, 13-Jan-26 12:00:00 GMT', 304],
    ['in the asctime form', 'Tue Jan 13 12:00:00 2026', 304],
    ['not an HTTP-date', '13 Jan 2026 13:00:00 GMT', 200],
  ])('If-Modified-Since %s → %i', (_, value, status) => {
    expect(conditional([['If-Modified-Since', value]])?.status).toBe(status);
  });

  it('lets If-None-Match decide alone when both are sent', () => {
    expect(conditional([['If-None-Match', '"v2"'], ['If-Modified-Since', 'Tue, 13 Jan 2026 13:00:00 GMT']])?.status).toBe(200);
  });

  it('answers the precondition before the Range', () => {
    expect(conditional([['If-None-Match', '"v1"'], ['Range', 'bytes=0-1']])?.status).toBe(304);
  });

  it('evaluates no precondition on a cached non-2xx response', () => {
    const notFound = response('gone', [['Cache-Control', 'max-age=60'], ['ETag', '"v1"']], 404);
    expect(conditional([['If-None-Match', '"v1"']], notFound)?.status).toBe(404);
  });
});

describe('delete', () => {
  it('returns true when it removed an entry, then false', () => {
    const h = harness();
    h.put(URL_A, response('x'));
    expect(h.service.delete(keyOf(URL_A + '#frag'), 'GET', false)).toBe(true);
    expect(h.service.delete(keyOf(URL_A), 'GET', false)).toBe(false);
    expect(h.match(URL_A)).toBeNull();
    expect(h.service.bytes('w')).toBe(0);
  });

  it('returns false for a non-GET request unless ignoreMethod', () => {
    const h = harness();
    h.put(URL_A, response('x'));
    expect(h.service.delete(keyOf(URL_A), 'POST', false)).toBe(false);
    expect(h.match(URL_A)?.status).toBe(200);
    expect(h.service.delete(keyOf(URL_A), 'POST', true)).toBe(true);
  });

  it('removes an expired entry but returns false, as match would not have found it', () => {
    const h = harness();
    h.put(URL_A, response('x', [['Cache-Control', 'max-age=1']]));
    h.advance(1000);
    expect(h.service.delete(keyOf(URL_A), 'GET', false)).toBe(false);
    expect(h.service.bytes('w')).toBe(0);
  });
});

describe('the per-worker byte bound (limits.cacheBytes)', () => {
  // Each entry: 100 body bytes + "Cache-Control" (13) + "max-age=60" (10) + the 21-byte URL = 144 bytes.
  const ENTRY_BYTES = 144;
  const url = (name: string) => `https://example.com/${name}`;
  const entry = () => response('x'.repeat(100));

  it('charges body, header names and values, and URL', () => {
    const h = harness();
    h.put(url('a'), entry());
    expect(url('a').length).toBe(21);
    expect(h.service.bytes('w')).toBe(ENTRY_BYTES);
    h.put(url('a'), entry());
    expect(h.service.bytes('w')).toBe(ENTRY_BYTES); // replaced, not added
  });

  it('evicts the least recently used entry when full', () => {
    const h = harness(3 * ENTRY_BYTES);
    for (const name of ['a', 'b', 'c']) h.put(url(name), entry());
    expect(h.service.bytes('w')).toBe(3 * ENTRY_BYTES);
    h.put(url('d'), entry());
    expect(h.service.bytes('w')).toBe(3 * ENTRY_BYTES);
    expect(h.match(url('a'))).toBeNull();
    for (const name of ['b', 'c', 'd']) expect(h.match(url(name))?.status).toBe(200);
  });

  it('keeps a recently matched entry and evicts the one used longest ago', () => {
    const h = harness(3 * ENTRY_BYTES);
    for (const name of ['a', 'b', 'c']) h.put(url(name), entry());
    expect(h.match(url('a'))?.status).toBe(200);
    h.put(url('d'), entry());
    expect(h.match(url('b'))).toBeNull();
    for (const name of ['a', 'c', 'd']) expect(h.match(url(name))?.status).toBe(200);
  });

  it('evicts as many entries as a large one needs', () => {
    const h = harness(3 * ENTRY_BYTES);
    for (const name of ['a', 'b', 'c']) h.put(url(name), entry());
    h.put(url('e'), response('x'.repeat(200)));
    expect(h.match(url('a'))).toBeNull();
    expect(h.match(url('b'))).toBeNull();
    expect(h.match(url('c'))?.status).toBe(200);
    expect(h.service.bytes('w')).toBe(2 * ENTRY_BYTES + 100);
  });

  it('refuses an entry larger than the whole bound, leaving the cache as it was', () => {
    const h = harness(3 * ENTRY_BYTES);
    h.put(url('a'), entry());
    expect(h.put(url('big'), response('x'.repeat(3 * ENTRY_BYTES)))).toEqual({
      stored: false,
      reason: `the entry takes ${3 * ENTRY_BYTES + 13 + 10 + url('big').length} bytes (body, headers and URL), more than worker "w" may hold in all its caches (limits.cacheBytes = ${3 * ENTRY_BYTES})`,
    });
    expect(h.match(url('a'))?.status).toBe(200);
    expect(h.service.bytes('w')).toBe(ENTRY_BYTES);
  });

  it('reads the bound on each put, so a lower limit after a redeploy takes effect', () => {
    let limit = 3 * ENTRY_BYTES;
    const h = harness(() => limit);
    for (const name of ['a', 'b', 'c']) h.put(url(name), entry());
    limit = ENTRY_BYTES;
    h.put(url('d'), entry());
    expect(h.service.bytes('w')).toBe(ENTRY_BYTES);
    expect(h.match(url('c'))).toBeNull();
    expect(h.match(url('d'))?.status).toBe(200);
  });

  it('bounds each worker on its own: one worker filling its cache evicts nothing of another', () => {
    const h = harness((worker) => (worker === 'small' ? ENTRY_BYTES : 10 * ENTRY_BYTES));
    h.put(url('a'), entry(), { worker: 'big' });
    h.put(url('a'), entry(), { worker: 'small' });
    h.put(url('b'), entry(), { worker: 'small' });
    expect(h.service.bytes('small')).toBe(ENTRY_BYTES);
    expect(h.service.bytes('big')).toBe(ENTRY_BYTES);
    expect(h.match(url('a'), [], { worker: 'big' })?.status).toBe(200);
  });
});

describe('separation', () => {
  it('keeps workers apart, and dropWorker clears one worker only', () => {
    const h = harness();
    h.put(URL_A, response('mine'), { worker: 'one' });
    expect(h.match(URL_A, [], { worker: 'two' })).toBeNull();
    h.put(URL_A, response('theirs'), { worker: 'two' });
    h.service.dropWorker('one');
    expect(h.match(URL_A, [], { worker: 'one' })).toBeNull();
    expect(h.service.bytes('one')).toBe(0);
    expect(h.match(URL_A, [], { worker: 'two' })?.body.toString()).toBe('theirs');
  });

  it('keeps caches.default and each named cache of a worker apart, in one byte count', () => {
    const h = harness();
    h.put(URL_A, response('default'));
    h.put(URL_A, response('named'), { cache: 'custom:cache' });
    expect(h.match(URL_A)?.body.toString()).toBe('default');
    expect(h.match(URL_A, [], { cache: 'custom:cache' })?.body.toString()).toBe('named');
    expect(h.match(URL_A, [], { cache: 'other' })).toBeNull();
    const each = 'Cache-Control'.length + 'max-age=60'.length + URL_A.length;
    expect(h.service.bytes('w')).toBe(each * 2 + 'default'.length + 'named'.length);
    expect(h.service.delete(keyOf(URL_A, { cache: 'custom:cache' }), 'GET', false)).toBe(true);
    expect(h.match(URL_A)?.body.toString()).toBe('default');
  });
});

describe('parsers', () => {
  it('reads the three HTTP-date forms alike, and rejects what is not one', () => {
    const expected = Date.UTC(1994, 10, 6, 8, 49, 37);
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(expected);
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(expected);
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994')).toBe(expected);
    for (const invalid of ['0', '', 'Sun, 31 Feb 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 24:00:00 GMT', '2026-01-01T00:00:00Z']) {
      expect(parseHttpDate(invalid)).toBeNull();
    }
  });

  it('splits Cache-Control on commas outside quoted strings', () => {
    expect(parseCacheControl('Public, max-age=60 ,private="Set-Cookie, X-\\"Id\\"", , no-cache')).toEqual([
      { name: 'public', value: null },
      { name: 'max-age', value: '60' },
      { name: 'private', value: 'Set-Cookie, X-"Id"' },
      { name: 'no-cache', value: null },
    ]);
  });
});

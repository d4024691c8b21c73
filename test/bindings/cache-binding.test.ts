/**
 * The Cache API from a tenant (issue 6, part 4): caches.default and
 * caches.open(name), kept by the daemon per worker and shared by its
 * instances, honouring Cache-Control as Workers does. Real daemon, real
 * children; the rules themselves are unit-tested in cache-service.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

const CACHE_WORKER = `
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const cache = url.searchParams.has('named') ? await caches.open(url.searchParams.get('named')) : caches.default;
    const key = new Request('https://cache.example/' + (url.searchParams.get('key') ?? 'page'));
    try {
      switch (url.pathname) {
        case '/put': {
          const response = new Response(url.searchParams.get('body') ?? 'cached body', {
            status: Number(url.searchParams.get('status') ?? 200),
            headers: { 'cache-control': url.searchParams.get('cc') ?? 'max-age=3600', 'x-origin': 'worker' },
          });
          await cache.put(url.searchParams.has('post') ? new Request(key, { method: 'POST' }) : key, response);
          return new Response('put; body used: ' + response.bodyUsed);
        }
        case '/match': {
          const hit = await cache.match(key);
          if (!hit) return new Response('miss', { status: 404 });
          return new Response(hit.body, { status: hit.status, headers: { 'x-origin': hit.headers.get('x-origin'), 'x-cache-status': hit.headers.get('cf-cache-status') ?? '' } });
        }
        case '/delete':
          return new Response(String(await cache.delete(key)));
        case '/page': {
          // The usual pattern: serve from the cache, else build the page and cache it in waitUntil.
          const hit = await caches.default.match(request);
          if (hit) return hit;
          const page = new Response('built at ' + Date.now(), { headers: { 'cache-control': 's-maxage=600' } });
          await caches.default.put(request, page.clone());
          return page;
        }
      }
    } catch (error) {
      return new Response(error.constructor.name + ': ' + error.message, { status: 400 });
    }
    return new Response('no route', { status: 404 });
  },
};
`;

describe('Cache API, kept by the daemon per worker', () => {
  let daemon: TestDaemon;

  beforeAll(async () => {
    const dir = writeScripts({ 'pages.mjs': CACHE_WORKER, 'neighbour.mjs': CACHE_WORKER });
    daemon = await startTestDaemon(dir);
  });

  afterAll(closeDaemons);

  it('returns what was put, with its status and headers, and consumes the body put', async () => {
    expect((await daemon.fetchText('pages', '/put?key=a&body=hello')).text).toBe('put; body used: true');
    const hit = await daemon.fetchText('pages', '/match?key=a');
    expect(hit.status).toBe(200);
    expect(hit.text).toBe('hello');
    expect(hit.headers['x-origin']).toBe('worker');
    expect(hit.headers['x-cache-status']).toBe('HIT');
    expect((await daemon.fetchText('pages', '/match?key=never')).status).toBe(404);
  });

  it('serves a cached page to the next request, surviving a redeploy of the worker (the daemon holds it)', async () => {
    const first = await daemon.fetchText('pages', '/page?v=1');
    const second = await daemon.fetchText('pages', '/page?v=1');
    expect(second.text).toBe(first.text);
    const res = await request(`${daemon.adminUrl}/workers/pages`, { method: 'PUT', body: CACHE_WORKER });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect((await daemon.fetchText('pages', '/page?v=1')).text).toBe(first.text);
  });

  it('keeps each worker, and each named cache, apart', async () => {
    await daemon.fetchText('pages', '/put?key=private&body=mine');
    expect((await daemon.fetchText('neighbour', '/match?key=private')).status).toBe(404);
    expect((await daemon.fetchText('pages', '/match?key=private&named=other')).status).toBe(404);
    await daemon.fetchText('pages', '/put?key=private&body=named&named=other');
    expect((await daemon.fetchText('pages', '/match?key=private&named=other')).text).toBe('named');
    expect((await daemon.fetchText('pages', '/match?key=private')).text).toBe('mine');
  });

  it('does not store what Cache-Control forbids', async () => {
    await daemon.fetchText('pages', '/put?key=nostore&cc=no-store');
    expect((await daemon.fetchText('pages', '/match?key=nostore')).status).toBe(404);
    await daemon.fetchText('pages', '/put?key=private-cc&cc=private');
    expect((await daemon.fetchText('pages', '/match?key=private-cc')).status).toBe(404);
  });

  it('deletes an entry: true once, then false', async () => {
    await daemon.fetchText('pages', '/put?key=d');
    expect((await daemon.fetchText('pages', '/delete?key=d')).text).toBe('true');
    expect((await daemon.fetchText('pages', '/delete?key=d')).text).toBe('false');
    expect((await daemon.fetchText('pages', '/match?key=d')).status).toBe(404);
  });

  it('rejects what Workers rejects with a TypeError the tenant can catch', async () => {
    const post = await daemon.fetchText('pages', '/put?key=p&post=1');
    expect(post.status).toBe(400);
    expect(post.text).toMatch(/^TypeError: .*non-GET/);
    const partial = await daemon.fetchText('pages', '/put?key=p&status=206');
    expect(partial.status).toBe(400);
    expect(partial.text).toMatch(/^TypeError: .*206/);
  });
});

/**
 * The examples `npm start` serves: plain scripts beside real wrangler projects
 * (Hono and itty-router, their packages installed by the root npm workspace; a
 * URL shortener and a cron heartbeat on KV; a page in the Cache API), each
 * answering its routes exactly. KV lives in a fresh temp directory, never in
 * the repository's `.edgeproc/`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { openSocket } from '../helpers/websocket-client.js';

const EXAMPLES = fileURLToPath(new URL('../../examples', import.meta.url));
// HS256 over {"sub":"alice","iat":1700000000} with the example's JWT_SECRET: fixed, so it is checked byte for byte.
const ALICE_TOKEN =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMH0.Ana5aAK_Ro1cdPa-DmMBWPuK8CAHF-xCjgI6TO29_Hc';

let daemon: TestDaemon;
let persistTo: string;
beforeAll(async () => {
  persistTo = mkdtempSync(join(tmpdir(), 'edgeproc-examples-kv-'));
  daemon = await startTestDaemon(EXAMPLES, { persistTo, testScheduled: true });
});
afterAll(async () => {
  await closeDaemons();
  rmSync(persistTo, { recursive: true, force: true });
});

const json = { 'content-type': 'application/json' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/**
 * Resolves once every instance of `worker` has settled its requests, waitUntil work included
 * (the runner reports Settled only then): after it, a cache.put made in waitUntil has been stored.
 */
async function settled(worker: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ([...daemon.pool.live].some((instance) => instance.worker === worker && instance.inflight > 0)) {
    if (Date.now() > deadline) throw new Error(`${worker} still had requests in flight after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('examples/', () => {
  it('serves the plain scripts and the project folders together', async () => {
    expect(daemon.registry.list().map((w) => w.name)).toEqual([
      'cached-page',
      'cron-heartbeat',
      'echo',
      'hello',
      'hono-app',
      'itty-app',
      'proxy',
      'stream',
      'url-shortener',
    ]);
    expect((await daemon.fetchText('hello')).text).toBe('Hello from edgeproc!\n');
  });

  it('hono-app: routing, middleware and JSON', async () => {
    const home = await daemon.fetchText('hono-app');
    expect(home).toMatchObject({ status: 200, text: 'Hello from Hono!\n' });
    expect(home.headers['x-served-by']).toBe('hono on edgeproc');
    expect(await daemon.fetchText('hono-app', '/users/7')).toMatchObject({ status: 200, text: '{"id":7,"name":"user-7"}' });
    expect(await daemon.fetchText('hono-app', '/users/x')).toMatchObject({ status: 400, text: '{"error":"id must be a number"}' });
    expect(await daemon.fetchText('hono-app', '/echo', { method: 'POST', headers: json, body: '{"a":[1,2]}' })).toMatchObject({
      status: 200,
      text: '{"received":{"a":[1,2]}}',
    });
    expect(await daemon.fetchText('hono-app', '/nope')).toMatchObject({ status: 404, text: '404 Not Found' });
  });

  it('hono-app: a WebSocket through hono/cloudflare-workers upgradeWebSocket', async () => {
    const socket = await openSocket(daemon, 'hono-app', '/ws');
    socket.ws.send('one');
    expect(await socket.next()).toBe('hono heard #1: one');
    socket.ws.send('two');
    expect(await socket.next()).toBe('hono heard #2: two');
    socket.ws.send('bye');
    expect(await socket.closed).toEqual({ code: 1000, reason: 'goodbye' });
    // Not an upgrade: hono's helper passes, and the route answers as Hono does without a match.
    expect((await daemon.fetchText('hono-app', '/ws')).status).toBe(404);
  });

  it('hono-app: a JWT signed and verified through crypto.subtle', async () => {
    const issued = await daemon.fetchText('hono-app', '/token', { method: 'POST', headers: json, body: '{"sub":"alice"}' });
    expect(issued).toMatchObject({ status: 200, text: `{"token":"${ALICE_TOKEN}"}` });
    const me = await daemon.fetchText('hono-app', '/me', { headers: { authorization: `Bearer ${ALICE_TOKEN}` } });
    expect(me).toMatchObject({ status: 200, text: '{"sub":"alice"}' });
    const forged = await daemon.fetchText('hono-app', '/me', { headers: { authorization: `Bearer ${ALICE_TOKEN.slice(0, -2)}xx` } });
    expect(forged).toMatchObject({ status: 401, text: '{"error":"invalid token"}' });
  });

  it('hono-app: a streamed response arrives in chunks', async () => {
    const res = await request(`${daemon.url}/stream`, { headers: { host: `hono-app.localhost:${daemon.port}` } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    const chunks: string[] = [];
    for await (const chunk of res.body) chunks.push(chunk.toString());
    expect(chunks.join('')).toBe('chunk 1\nchunk 2\nchunk 3\n');
    expect(chunks.length).toBeGreaterThan(1);
  });

  it('itty-app: routing, middleware and JSON', async () => {
    const home = await daemon.fetchText('itty-app');
    expect(home).toMatchObject({ status: 200, text: '{"app":"itty","routes":["/todos","/todos/:id"]}' });
    expect(home.headers['x-served-by']).toBe('itty on edgeproc');
    expect(await daemon.fetchText('itty-app', '/todos/2')).toMatchObject({ status: 200, text: '{"id":2,"title":"serve unchanged","done":true}' });
    expect(await daemon.fetchText('itty-app', '/todos/9')).toMatchObject({ status: 404, text: '{"status":404,"error":"no todo 9"}' });
    expect(await daemon.fetchText('itty-app', '/todos', { method: 'POST', headers: json, body: '{"title":"ship"}' })).toMatchObject({
      status: 201,
      text: '{"id":3,"title":"ship","done":false}',
    });
    expect(await daemon.fetchText('itty-app', '/todos', { headers: { 'x-api-version': '0' } })).toMatchObject({
      status: 410,
      text: '{"status":410,"error":"API version 0 is gone"}',
    });
  });
  describe('url-shortener: links in KV', () => {
    const shortener = (path: string, init?: Parameters<TestDaemon['fetchText']>[2]) => daemon.fetchText('url-shortener', path, init);
    const origin = () => `http://url-shortener.localhost:${daemon.port}`;

    async function shorten(url: string): Promise<string> {
      const created = await shortener('/api/links', { method: 'POST', headers: json, body: JSON.stringify({ url }) });
      expect(created.status).toBe(201);
      return JSON.parse(created.text).code;
    }

    async function findLink(code: string): Promise<Record<string, unknown> | undefined> {
      let cursor = '';
      do {
        const page = JSON.parse((await shortener(`/api/links?limit=1000&cursor=${encodeURIComponent(cursor)}`)).text);
        const link = page.links.find((l: { code: string }) => l.code === code);
        if (link) return link;
        cursor = page.cursor ?? '';
      } while (cursor);
      return undefined;
    }

    it('creates a link from JSON, and from a form with an expiry', async () => {
      const before = Date.now();
      const created = await shortener('/api/links', { method: 'POST', headers: json, body: '{"url":"https://example.com/docs?page=2#intro"}' });
      expect(created.status).toBe(201);
      const link = JSON.parse(created.text);
      expect(link).toEqual({
        code: expect.stringMatching(/^[0-9A-Za-z]{7}$/),
        shortUrl: `${origin()}/${link.code}`,
        url: 'https://example.com/docs?page=2#intro',
        createdAt: expect.stringMatching(ISO_TIME),
        expiresAt: null,
        visits: 0,
      });
      expect(created.headers.location).toBe(link.shortUrl);
      expect(Date.parse(link.createdAt)).toBeGreaterThanOrEqual(before - 1);

      const fromForm = await shortener('/api/links', { method: 'POST', headers: form, body: 'url=http%3A%2F%2Fexample.org%2Fa%20b&ttl=3600' });
      expect(fromForm.status).toBe(201);
      const expiring = JSON.parse(fromForm.text);
      expect(expiring.url).toBe('http://example.org/a%20b');
      const expiresIn = Date.parse(expiring.expiresAt) - Date.parse(expiring.createdAt);
      expect(expiresIn).toBeGreaterThan(3598_000);
      expect(expiresIn).toBeLessThanOrEqual(3600_000);
      expect(await findLink(expiring.code)).toEqual(expiring);
    });

    it('redirects a code to its URL with 302 and Location', async () => {
      const code = await shorten('https://example.com/target');
      const visit = await shortener(`/${code}`);
      expect(visit.status).toBe(302);
      expect(visit.headers.location).toBe('https://example.com/target');
    });

    it('counts each visit (a GET, not a HEAD) in the link\'s metadata', async () => {
      const code = await shorten('https://example.com/counted');
      expect(await findLink(code)).toMatchObject({ code, visits: 0 });
      for (let i = 0; i < 3; i++) expect((await shortener(`/${code}`)).status).toBe(302);
      expect(await shortener(`/${code}`, { method: 'HEAD' })).toMatchObject({ status: 302, text: '' });
      expect(await findLink(code)).toMatchObject({ code, url: 'https://example.com/counted', visits: 3 });
    });

    it('lists links a page at a time, following the cursor to the end', async () => {
      const created = [await shorten('https://example.com/1'), await shorten('https://example.com/2'), await shorten('https://example.com/3')];
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await shortener(`/api/links?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        expect(res.status).toBe(200);
        const page: { links: Array<{ code: string }>; cursor: string | null } = JSON.parse(res.text);
        pages++;
        if (page.cursor) expect(page.links).toHaveLength(2);
        else expect(page.links.length).toBeLessThanOrEqual(2);
        seen.push(...page.links.map((l) => l.code));
        cursor = page.cursor;
      } while (cursor && pages < 100);
      expect(cursor).toBeNull();
      expect(pages).toBeGreaterThanOrEqual(2);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual([...seen].sort());
      expect(seen).toEqual(expect.arrayContaining(created));
      expect(await shortener('/api/links?limit=0')).toMatchObject({ status: 400, text: '{"error":"limit must be a whole number from 1 to 1000, got \\"0\\""}' });
    });

    it('deletes a link, after which its code is 404', async () => {
      const code = await shorten('https://example.com/gone');
      expect(await shortener(`/${code}`, { method: 'DELETE' })).toMatchObject({ status: 204, text: '' });
      expect(await shortener(`/${code}`)).toMatchObject({ status: 404, text: `{"error":"no link ${code}"}` });
      expect(await shortener(`/${code}`, { method: 'DELETE' })).toMatchObject({ status: 404, text: `{"error":"no link ${code}"}` });
      expect(await findLink(code)).toBeUndefined();
      expect(await shortener('/nope')).toMatchObject({ status: 404, text: '{"error":"not found"}' });
    });

    it('refuses what is not an http(s) URL, and a bad ttl, with 400 and a JSON error', async () => {
      const post = (body: string, headers = json) => shortener('/api/links', { method: 'POST', headers, body });
      expect(await post('{"url":"javascript:alert(1)"}')).toMatchObject({ status: 400, text: '{"error":"only http and https URLs can be shortened, got javascript:"}' });
      expect(await post('{"url":"ftp://example.com/file"}')).toMatchObject({ status: 400, text: '{"error":"only http and https URLs can be shortened, got ftp:"}' });
      expect(await post('{"url":"example.com"}')).toMatchObject({ status: 400, text: '{"error":"not a URL: \\"example.com\\""}' });
      expect(await post('{}')).toMatchObject({ status: 400, text: '{"error":"url is required"}' });
      expect(await post('{"url":')).toMatchObject({ status: 400, text: '{"error":"the body is not valid JSON"}' });
      expect(await post('url=https://example.com&ttl=10', form)).toMatchObject({
        status: 400,
        text: '{"error":"ttl must be a whole number of seconds, at least 60, got \\"10\\""}',
      });
      expect(await post(JSON.stringify({ url: `https://example.com/${'x'.repeat(1000)}` }))).toMatchObject({ status: 400 });
      expect(await post('https://example.com', { 'content-type': 'text/plain' })).toMatchObject({
        status: 415,
        text: '{"error":"send JSON ({\\"url\\": \\"https://…\\"}) or a form (url=https://…)"}',
      });
    });
  });

  describe('cron-heartbeat: a cron trigger writing to KV', () => {
    const CRON = '*/5 * * * *';

    it('records each scheduled run under run:<time> and a rolling count in latest; fetch shows them', { timeout: 60_000 }, async () => {
      // The daemon runs the real trigger too, every five minutes: keep clear of a mark (the test
      // once counted a third run that fired while it ran), and count from the runs already there.
      const toMark = 300_000 - (Date.now() % 300_000);
      if (toMark < 15_000) await sleep(toMark + 2_000);
      const earlier = JSON.parse((await daemon.fetchText('cron-heartbeat', '/')).text);
      const runsBefore: number = earlier.latest?.runs ?? 0;
      const before = Date.now();
      for (let i = 0; i < 2; i++) {
        expect(await daemon.fetchText('cron-heartbeat', `/__scheduled?cron=${encodeURIComponent(CRON)}`)).toMatchObject({
          status: 200,
          text: 'Ran scheduled event',
        });
      }
      const report = JSON.parse((await daemon.fetchText('cron-heartbeat', '/')).text);
      expect(report.runs).toHaveLength(runsBefore + 2);
      const [newest, oldest] = report.runs;
      expect(oldest).toEqual({ cron: CRON, scheduledTime: expect.stringMatching(ISO_TIME), lagMs: expect.any(Number), sinceLastSeconds: runsBefore === 0 ? null : expect.any(Number) });
      expect(newest).toEqual({ cron: CRON, scheduledTime: expect.stringMatching(ISO_TIME), lagMs: expect.any(Number), sinceLastSeconds: expect.any(Number) });
      expect(Date.parse(oldest.scheduledTime)).toBeGreaterThanOrEqual(before);
      expect(Date.parse(newest.scheduledTime)).toBeGreaterThan(Date.parse(oldest.scheduledTime));
      expect(report.latest).toEqual({ runs: runsBefore + 2, firstRun: runsBefore === 0 ? oldest.scheduledTime : earlier.latest.firstRun, lastRun: newest });
    });

    it('says it is healthy while the last run is recent', async () => {
      const health = await daemon.fetchText('cron-heartbeat', '/health');
      expect(health.status).toBe(200);
      expect(JSON.parse(health.text)).toEqual({ ok: true, lastRun: expect.stringMatching(ISO_TIME), ageSeconds: expect.any(Number) });
    });
  });

  describe('cached-page: the Cache API', () => {
    const page = (path = '/', init?: Parameters<TestDaemon['fetchText']>[2]) => daemon.fetchText('cached-page', path, init);

    async function purge(): Promise<boolean> {
      const res = await page('/purge', { method: 'POST' });
      expect(res.status).toBe(200);
      return JSON.parse(res.text).purged;
    }

    /** A page built now: no CF-Cache-Status, and its build time in the header and the body. */
    function expectMiss(res: Awaited<ReturnType<typeof page>>): void {
      expect(res.status).toBe(200);
      expect(res.headers['cf-cache-status']).toBeUndefined();
      expect(res.headers['x-generated-at']).toMatch(ISO_TIME);
      expect(res.text).toContain(`Generated at ${res.headers['x-generated-at']} (build `);
    }

    it('builds the page on a miss, with s-maxage for the edge', async () => {
      await purge();
      const first = await page();
      expectMiss(first);
      expect(first.headers['cache-control']).toBe('public, max-age=0, s-maxage=300');
      expect(first.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(first.text).toContain('<p>1229 primes; the last twenty:</p>');
      await settled('cached-page');
    });

    it('serves the same page from the cache next time, marked CF-Cache-Status: HIT, whatever the query string', async () => {
      await purge();
      const first = await page();
      expectMiss(first);
      await settled('cached-page');
      for (const path of ['/', '/?utm_source=test']) {
        const hit = await page(path);
        expect(hit.status).toBe(200);
        expect(hit.headers['cf-cache-status']).toBe('HIT');
        expect(hit.headers['x-generated-at']).toBe(first.headers['x-generated-at']);
        expect(hit.text).toBe(first.text);
      }
    });

    it('builds the page again after POST /purge', async () => {
      await page();
      await settled('cached-page');
      const cached = await page();
      expect(cached.headers['cf-cache-status']).toBe('HIT');
      expect(await purge()).toBe(true);
      expect(await purge()).toBe(false);
      const rebuilt = await page();
      expectMiss(rebuilt);
      expect(rebuilt.text).not.toBe(cached.text);
      await settled('cached-page');
      expect((await page()).text).toBe(rebuilt.text);
      expect(await page('/purge')).toMatchObject({ status: 405 });
    });

    it('never serves the private, no-store page from the cache, though it goes through the same put', async () => {
      const alice = await page('/account', { headers: { cookie: 'user=alice' } });
      await settled('cached-page');
      const bob = await page('/account', { headers: { cookie: 'user=bob' } });
      await settled('cached-page');
      for (const [res, name] of [[alice, 'alice'], [bob, 'bob']] as const) {
        expect(res.status).toBe(200);
        expect(res.headers['cf-cache-status']).toBeUndefined();
        expect(res.headers['cache-control']).toBe('private, no-store');
        expect(res.text).toContain(`<h1>Hello, ${name}</h1>`);
      }
      expect(alice.headers['x-generated-at']).not.toBe(bob.headers['x-generated-at']);
    });
  });
});

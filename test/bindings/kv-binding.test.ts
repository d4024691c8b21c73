/**
 * KV from a tenant (issue 6, part 3): `env.NAME` of a wrangler project's
 * kv_namespaces, carried out by the daemon on its SQLite store. Real daemons,
 * real children, a real database file in a temp directory.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

const STORE_WORKER = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const key = url.searchParams.get('key') ?? 'k';
    try {
      switch (url.pathname) {
        case '/put':
          await env.STORE.put(key, await request.text(), {
            metadata: url.searchParams.has('meta') ? JSON.parse(url.searchParams.get('meta')) : undefined,
            expirationTtl: url.searchParams.has('ttl') ? Number(url.searchParams.get('ttl')) : undefined,
          });
          return new Response('stored');
        case '/get': {
          const type = url.searchParams.get('type') ?? 'text';
          const value = await env.STORE.get(key, type);
          if (value === null) return new Response('missing', { status: 404 });
          if (type === 'json') return Response.json({ json: value });
          if (type === 'arrayBuffer') return new Response(value, { headers: { 'x-kind': Object.prototype.toString.call(value) } });
          if (type === 'stream') return new Response(value, { headers: { 'x-kind': String(value instanceof ReadableStream) } });
          return new Response(value);
        }
        case '/meta':
          return Response.json(await env.STORE.getWithMetadata(key));
        case '/delete':
          await env.STORE.delete(key);
          return new Response('deleted');
        case '/list':
          return Response.json(await env.STORE.list({
            prefix: url.searchParams.get('prefix') ?? undefined,
            limit: url.searchParams.has('limit') ? Number(url.searchParams.get('limit')) : undefined,
            cursor: url.searchParams.get('cursor') ?? undefined,
          }));
        case '/stream-put': {
          const { readable, writable } = new TransformStream();
          const writer = writable.getWriter();
          const put = env.STORE.put(key, readable);
          const bytes = new TextEncoder().encode('x'.repeat(64 * 1024));
          for (let i = 0; i < 16; i++) await writer.write(bytes);
          await writer.close();
          await put;
          return new Response('streamed');
        }
        case '/huge':
          await env.STORE.put(key, 'x'.repeat(25 * 1024 * 1024 + 1));
          return new Response('stored');
        case '/bulk':
          return Response.json(Object.fromEntries(await env.STORE.get(url.searchParams.getAll('k'), 'text')));
        case '/many': {
          const n = Number(url.searchParams.get('n'));
          let done = 0;
          try {
            for (let i = 0; i < n; i++) { await env.STORE.get('x' + i); done++; }
          } catch (error) {
            return new Response(done + ' then ' + error.message, { status: 429 });
          }
          return new Response('all ' + done);
        }
        case '/brand':
          return new Response(await env.STORE.get.call({}, 'k').then(() => 'no error', (e) => e.constructor.name + ': ' + e.message));
      }
    } catch (error) {
      return new Response(error.constructor.name + ': ' + error.message, { status: 400 });
    }
    return new Response('no route', { status: 404 });
  },
};
`;

function kvProject(name: string, source: string, kv: string, extra = ''): Record<string, string> {
  return {
    [`${name}/wrangler.toml`]: `name = "${name}"\nmain = "index.js"\nkv_namespaces = [${kv}]\n${extra}`,
    [`${name}/index.js`]: source,
  };
}

describe('KV namespaces in env, on the embedded SQLite store', () => {
  let daemon: TestDaemon;
  let persistTo: string;

  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), 'edgeproc-kv-'));
    const dir = writeScripts({
      ...kvProject('store', STORE_WORKER, '{ binding = "STORE", id = "ns-one" }'),
      // Same namespace id under another binding name: it sees the same data, as on Cloudflare.
      ...kvProject('twin', STORE_WORKER.replaceAll('env.STORE', 'env.SAME'), '{ binding = "SAME", id = "ns-one" }'),
      ...kvProject('other', STORE_WORKER, '{ binding = "STORE", id = "ns-two" }'),
      ...kvProject(
        'sw',
        `addEventListener('fetch', (event) => event.respondWith((async () => {
          await STORE.put('sw', 'from a service worker ' + GREETING);
          return new Response(await STORE.get('sw'));
        })()));`,
        '{ binding = "STORE", id = "ns-sw" }',
        '[vars]\nGREETING = "hi"',
      ),
      ...kvProject(
        'toplevel',
        `let loadError = 'none';
        STORE.get('x').catch((error) => { loadError = error.message; });
        addEventListener('fetch', (event) => event.respondWith(new Response(loadError)));`,
        '{ binding = "STORE", id = "ns-top" }',
      ),
    });
    daemon = await startTestDaemon(dir, { persistTo, kvOperations: 20 });
  });

  afterAll(closeDaemons);

  it('puts and gets a value as text, json, arrayBuffer and stream', async () => {
    expect((await daemon.fetchText('store', '/put?key=greeting', { method: 'POST', body: '{"hello":"world"}' })).text).toBe('stored');
    expect((await daemon.fetchText('store', '/get?key=greeting')).text).toBe('{"hello":"world"}');
    expect(JSON.parse((await daemon.fetchText('store', '/get?key=greeting&type=json')).text)).toEqual({ json: { hello: 'world' } });
    const buffer = await daemon.fetchText('store', '/get?key=greeting&type=arrayBuffer');
    expect(buffer.headers['x-kind']).toBe('[object ArrayBuffer]');
    expect(buffer.text).toBe('{"hello":"world"}');
    const stream = await daemon.fetchText('store', '/get?key=greeting&type=stream');
    expect(stream.headers['x-kind']).toBe('true');
    expect(stream.text).toBe('{"hello":"world"}');
    expect((await daemon.fetchText('store', '/get?key=absent')).status).toBe(404);
  });

  it('keeps metadata and an expiration, and lists keys by prefix with a cursor', async () => {
    await daemon.fetchText('store', `/put?key=user:1&meta=${encodeURIComponent('{"role":"admin"}')}&ttl=3600`, { method: 'POST', body: 'ada' });
    const meta = JSON.parse((await daemon.fetchText('store', '/meta?key=user:1')).text);
    expect(meta).toEqual({ value: 'ada', metadata: { role: 'admin' }, cacheStatus: null });
    expect(JSON.parse((await daemon.fetchText('store', '/meta?key=nobody')).text)).toEqual({ value: null, metadata: null, cacheStatus: null });
    for (const n of [2, 3]) await daemon.fetchText('store', `/put?key=user:${n}`, { method: 'POST', body: `user ${n}` });
    const first = JSON.parse((await daemon.fetchText('store', '/list?prefix=user:&limit=2')).text);
    expect(first.keys.map((k: { name: string }) => k.name)).toEqual(['user:1', 'user:2']);
    expect(first.keys[0].metadata).toEqual({ role: 'admin' });
    expect(first.keys[0].expiration).toBeGreaterThan(Date.now() / 1000 + 3000);
    expect(first.list_complete).toBe(false);
    const rest = JSON.parse((await daemon.fetchText('store', `/list?prefix=user:&limit=2&cursor=${encodeURIComponent(first.cursor)}`)).text);
    expect(rest.keys.map((k: { name: string }) => k.name)).toEqual(['user:3']);
    expect(rest.list_complete).toBe(true);
  });

  it('deletes, and bulk-gets several keys into a Map', async () => {
    await daemon.fetchText('store', '/put?key=gone', { method: 'POST', body: 'soon' });
    expect((await daemon.fetchText('store', '/delete?key=gone')).text).toBe('deleted');
    expect((await daemon.fetchText('store', '/get?key=gone')).status).toBe(404);
    await daemon.fetchText('store', '/put?key=a', { method: 'POST', body: 'A' });
    expect(JSON.parse((await daemon.fetchText('store', '/bulk?k=a&k=gone')).text)).toEqual({ a: 'A', gone: null });
  });

  it('stores a value written to a ReadableStream, 1 MiB in 64 KiB writes', async () => {
    expect((await daemon.fetchText('store', '/stream-put?key=big')).text).toBe('streamed');
    const got = await daemon.fetchText('store', '/get?key=big');
    expect(got.text.length).toBe(1024 * 1024);
  });

  it("rejects inside the tenant with Workers' messages for a bad key, TTL or metadata, which it can catch", async () => {
    const longKey = 'k'.repeat(513);
    const res = await daemon.fetchText('store', `/put?key=${longKey}`, { method: 'POST', body: 'v' });
    expect(res.status).toBe(400);
    expect(res.text).toMatch(/^Error: KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512\.$/);
    const ttl = await daemon.fetchText('store', '/put?key=t&ttl=30', { method: 'POST', body: 'v' });
    expect(ttl.status).toBe(400);
    expect(ttl.text).toContain('Invalid expiration_ttl of 30');
    const meta = await daemon.fetchText('store', `/put?key=m&meta=${encodeURIComponent(JSON.stringify({ x: 'y'.repeat(1100) }))}`, { method: 'POST', body: 'v' });
    expect(meta.status).toBe(400);
    expect(meta.text).toMatch(/Metadata length of \d+ exceeds limit of 1024/);
    expect((await daemon.fetchText('store', '/put?key=', { method: 'POST', body: 'v' })).text).toBe('TypeError: Key name cannot be empty.');
    expect((await daemon.fetchText('store', '/huge?key=huge')).text).toBe('Error: KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400.');
    expect((await daemon.fetchText('store', '/brand')).text).toBe('TypeError: KVNamespace.get: called on an object that is not a KV namespace');
  });

  it('counts KV operations per request: past --kv-operations the call rejects, and the next request starts again', async () => {
    const res = await daemon.fetchText('store', '/many?n=25');
    expect(res.status).toBe(429);
    expect(res.text).toBe('20 then Too many KV operations: this request already made 20; the limit is 20 per request (--kv-operations).');
    expect((await daemon.fetchText('store', '/many?n=5')).text).toBe('all 5');
    expect(daemon.logs.some((l) => l.msg === 'limit exceeded' && l.limit === 'kvOperations' && l.worker === 'store')).toBe(true);
    const { text } = await daemon.metrics.scrape();
    expect(text).toContain('edgeproc_limit_breaches_total{worker="store",kind="kv_operations"} 1');
    expect(text).toMatch(/edgeproc_binding_calls_total\{worker="store",binding="kv",op="get"\} \d+/);
  });

  it('shares a namespace between workers that name the same id, and only them', async () => {
    await daemon.fetchText('store', '/put?key=shared', { method: 'POST', body: 'one store' });
    expect((await daemon.fetchText('twin', '/get?key=shared')).text).toBe('one store');
    expect((await daemon.fetchText('other', '/get?key=shared')).status).toBe(404);
  });

  it('gives a service-worker script its bindings and vars as globals', async () => {
    const res = await daemon.fetchText('sw');
    expect(res.text).toBe('from a service worker hi');
  });

  it('refuses KV at global scope, where Workers allows no I/O either', async () => {
    expect((await daemon.fetchText('toplevel')).text).toBe(
      'STORE.get(): no request is in flight here (the request this code ran for has finished, or this is the global scope); a worker uses its bindings only while handling a request or its waitUntil work',
    );
  });
});

describe('KV data on disk', () => {
  afterEach(closeDaemons);

  it('survives a daemon restart (same --persist-to)', async () => {
    const persistTo = mkdtempSync(join(tmpdir(), 'edgeproc-kv-'));
    const dir = writeScripts(kvProject('store', STORE_WORKER, '{ binding = "STORE", id = "restart" }'));
    const first = await startTestDaemon(dir, { persistTo });
    await first.fetchText('store', '/put?key=kept', { method: 'POST', body: 'across restarts' });
    await first.close();
    const second = await startTestDaemon(dir, { persistTo });
    expect((await second.fetchText('store', '/get?key=kept')).text).toBe('across restarts');
  });

  it('is not touched when no worker has a KV namespace', async () => {
    const persistTo = join(mkdtempSync(join(tmpdir(), 'edgeproc-kv-')), 'state');
    const dir = writeScripts({ 'plain.js': 'export default { fetch() { return new Response("ok") } }' });
    const daemon = await startTestDaemon(dir, { persistTo });
    expect((await daemon.fetchText('plain')).text).toBe('ok');
    const { existsSync } = await import('node:fs');
    expect(existsSync(persistTo)).toBe(false);
  });
});

import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

afterEach(closeDaemons);

async function scrape(daemon: TestDaemon, headers: Record<string, string> = {}) {
  const res = await request(`${daemon.adminUrl}/metrics`, { headers });
  return { status: res.statusCode, contentType: res.headers['content-type'], text: await res.body.text() };
}

/** The value of one sample of the text exposition format; labels match whatever their order. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/i.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/gi)].map((m) => [m[1], m[2]]));
    if (Object.keys(found).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => found[k] === v)) {
      return Number(match[3]);
    }
  }
  return undefined;
}

describe('GET /metrics', () => {
  it('counts requests by worker and status, cold starts by pool hit or miss, breaches by kind, subrequests', async () => {
    const dir = writeScripts({
      'hello.mjs': `export default { fetch() { console.log('hi'); return new Response('hello'); } };`,
      'other.mjs': `export default { fetch(request) { return new Response('other', { status: new URL(request.url).pathname === '/gone' ? 410 : 200 }); } };`,
      'spin.mjs': `export default { fetch() { for (;;) {} } };`,
      // Loopback is closed to tenants: both fetches are refused, the second by the subrequest limit.
      'fetcher.mjs': `export default { async fetch() {
        const errors = [];
        for (let i = 0; i < 2; i++) { try { await fetch('http://127.0.0.1:9/'); } catch (e) { errors.push(e.message); } }
        return new Response(errors.join('\\n'));
      } };`,
      // Its own heap size cannot come out of the pool (whose children have the daemon's): a pool miss.
      'edgeproc.json': JSON.stringify({ workers: { other: { memoryMb: 96 }, spin: { cpuMs: 50 }, fetcher: { subrequests: 1 } } }),
    });
    const daemon = await startTestDaemon(dir, { warmPool: 1 });

    expect((await daemon.fetchText('hello')).status).toBe(200);
    expect((await daemon.fetchText('hello')).status).toBe(200);
    expect((await daemon.fetchText('hello')).status).toBe(200);
    expect((await daemon.fetchText('other')).status).toBe(200);
    expect((await daemon.fetchText('other', '/gone')).status).toBe(410);
    expect((await daemon.fetchText('spin')).status).toBe(503);
    expect((await daemon.fetchText('fetcher')).text).toMatch(/Too many subrequests/);

    const { status, contentType, text } = await scrape(daemon);
    expect(status).toBe(200);
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');

    expect(sample(text, 'edgeproc_requests_total', { worker: 'hello', status: '200' })).toBe(3);
    expect(sample(text, 'edgeproc_requests_total', { worker: 'other', status: '200' })).toBe(1);
    expect(sample(text, 'edgeproc_requests_total', { worker: 'other', status: '410' })).toBe(1);
    expect(sample(text, 'edgeproc_requests_total', { worker: 'spin', status: '503' })).toBe(1);
    expect(sample(text, 'edgeproc_requests_total', { worker: 'hello', status: '503' })).toBeUndefined();
    expect(sample(text, 'edgeproc_request_duration_seconds_count', { worker: 'hello' })).toBe(3);
    expect(sample(text, 'edgeproc_request_cpu_seconds_count', { worker: 'spin' })).toBe(1);
    // The CPU limit is 50 ms: the spinning request is past the 25 ms bucket, not past 250 ms.
    expect(sample(text, 'edgeproc_request_cpu_seconds_bucket', { worker: 'spin', le: '0.025' })).toBe(0);
    expect(sample(text, 'edgeproc_request_cpu_seconds_bucket', { worker: 'spin', le: '0.25' })).toBe(1);

    // The pool was full when hello first came; other needs a 96 MiB heap, which no pool child has.
    expect(sample(text, 'edgeproc_cold_starts_total', { worker: 'hello', kind: 'pool_hit' })).toBe(1);
    expect(sample(text, 'edgeproc_cold_starts_total', { worker: 'hello', kind: 'pool_miss' })).toBeUndefined();
    expect(sample(text, 'edgeproc_cold_starts_total', { worker: 'other', kind: 'pool_miss' })).toBe(1);
    expect(sample(text, 'edgeproc_pool_hits_total')).toBe(daemon.pool.stats().hits);
    expect(sample(text, 'edgeproc_pool_misses_total')).toBe(daemon.pool.stats().misses);

    expect(sample(text, 'edgeproc_limit_breaches_total', { worker: 'spin', kind: 'cpu' })).toBe(1);
    expect(sample(text, 'edgeproc_limit_breaches_total', { worker: 'fetcher', kind: 'subrequests' })).toBe(1);
    expect(sample(text, 'edgeproc_subrequests_total', { worker: 'fetcher' })).toBe(2);

    // Read at scrape time: hello's one instance is alive and holds some memory; spin's was killed.
    expect(sample(text, 'edgeproc_instances', { worker: 'hello' })).toBe(1);
    expect(sample(text, 'edgeproc_instances', { worker: 'spin' })).toBe(0);
    expect(sample(text, 'edgeproc_instance_memory_bytes', { worker: 'hello' })).toBeGreaterThan(1024 * 1024);
    expect(sample(text, 'edgeproc_pool_warm')).toBe(daemon.pool.stats().warm);
    // Node's own, for the daemon process.
    expect(sample(text, 'edgeproc_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'edgeproc_nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('samples the event-loop delay while requests are served, and stops sampling once the daemon idles', { timeout: 30_000 }, async () => {
    const daemon = await startTestDaemon(writeScripts({ 'hello.mjs': `export default { fetch() { return new Response('hello'); } };` }), { warmPool: 0 });
    const names = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((k) => `edgeproc_nodejs_eventloop_lag_${k}_seconds`);
    const serveFor = async (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until) expect((await daemon.fetchText('hello')).status).toBe(200);
    };
    const lag = (text: string) => Object.fromEntries(names.map((n) => [n.replace(/^.*_lag_|_seconds$/g, ''), sample(text, n)]));

    // The first request is a pool miss (a spawn, hundreds of ms on a loaded machine); the
    // sampler starts as it settles, and the window measured starts after it.
    expect((await daemon.fetchText('hello')).status).toBe(200);
    await scrape(daemon);
    await serveFor(600);
    const busy = (await scrape(daemon)).text;
    // Each gauge once (prom-client's own were taken out), with the delays of the busy window.
    for (const name of names) expect(busy.split('\n').filter((l) => l.startsWith(`${name} `))).toHaveLength(1);
    const seen = lag(busy);
    expect(seen.min).toBeGreaterThan(0);
    expect(seen.p99).toBeGreaterThanOrEqual(seen.p50!);
    expect(seen.max).toBeGreaterThanOrEqual(seen.p99!);

    // Idle: the sampler stops within a few seconds (it checks every 2), and a window of idle has
    // no samples. Were it still on (every 50 ms), 600 ms would hold about 12.
    let quiet: Record<string, number | undefined> | undefined;
    for (const deadline = performance.now() + 15_000; performance.now() < deadline; ) {
      await scrape(daemon);
      await new Promise((resolve) => setTimeout(resolve, 600));
      const window = lag((await scrape(daemon)).text);
      if (window.max === 0) {
        quiet = window;
        break;
      }
    }
    expect(quiet).toEqual(Object.fromEntries(names.map((n) => [n.replace(/^.*_lag_|_seconds$/g, ''), 0])));

    // And on again with the next requests.
    await serveFor(600);
    expect(lag((await scrape(daemon)).text).min).toBeGreaterThan(0);
  });

  it('keeps daemons apart (a registry each) and needs the admin token when one is set', async () => {
    const dir = writeScripts({ 'hello.mjs': `export default { fetch() { return new Response('hello'); } };` });
    const open = await startTestDaemon(dir, { warmPool: 0 });
    const guarded = await startTestDaemon(dir, { warmPool: 0, adminToken: 'sekret-token' });
    expect((await open.fetchText('hello')).status).toBe(200);

    const refused = await scrape(guarded);
    expect(refused.status).toBe(401);
    expect(refused.text).not.toContain('edgeproc_');
    expect((await scrape(guarded, { authorization: 'Bearer wrong-token!' })).status).toBe(401);
    const allowed = await scrape(guarded, { authorization: 'Bearer sekret-token' });
    expect(allowed.status).toBe(200);
    expect(sample(allowed.text, 'edgeproc_requests_total', { worker: 'hello', status: '200' })).toBeUndefined();
    expect(sample((await scrape(open)).text, 'edgeproc_requests_total', { worker: 'hello', status: '200' })).toBe(1);

    const post = await request(`${open.adminUrl}/metrics`, { method: 'POST' });
    await post.body.text();
    expect(post.statusCode).toBe(405);
  });
});

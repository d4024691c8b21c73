import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

afterEach(closeDaemons);

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});
afterAll(() => origin.close());

const version = (label: string) => `export default { fetch() { return new Response('${label}'); } };`;

async function admin(daemon: TestDaemon, method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  const res = await request(`${daemon.adminUrl}${path}`, { method: method as 'GET', body, headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

describe('admin API', () => {
  it('deploys a new worker (201) that then serves', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'base.mjs': version('base') }));
    expect((await daemon.fetchText('fresh')).status).toBe(404);
    const put = await admin(daemon, 'PUT', '/workers/fresh', version('fresh v1'));
    expect(put.status).toBe(201);
    expect(put.json()).toMatchObject({ name: 'fresh', syntax: 'module' });
    expect(await daemon.fetchText('fresh', '/')).toMatchObject({ status: 200, text: 'fresh v1' });
    // A service-worker script deploys too.
    const sw = await admin(daemon, 'PUT', '/workers/sw', `addEventListener('fetch', (e) => e.respondWith(new Response('sw')));`);
    expect(sw.status).toBe(201);
    expect(sw.json()).toMatchObject({ name: 'sw', syntax: 'service-worker' });
    expect(await daemon.fetchText('sw')).toMatchObject({ status: 200, text: 'sw' });
    // A classic script with a line that only looks like an export (inside a string) stays classic,
    // and a module whose import is a dynamic import() stays a classic script too.
    const lookalike = `var text = \`\nexport default nothing\n\`;\naddEventListener('fetch', (e) => e.respondWith(new Response(text.trim())));`;
    const tricky = await admin(daemon, 'PUT', '/workers/tricky', lookalike);
    expect(tricky.status).toBe(201);
    expect(tricky.json()).toMatchObject({ syntax: 'service-worker' });
    expect(await daemon.fetchText('tricky')).toMatchObject({ status: 200, text: 'export default nothing' });
  });

  it('replaces a worker (200): new requests see the new version while an in-flight one finishes on the old', async () => {
    const dir = writeScripts({
      'app.mjs': `
        export default {
          async fetch(request) {
            if (new URL(request.url).pathname === '/slow') {
              const gate = await fetch('${origin.url}/gate/replace');
              return new Response('v1 slow ' + await gate.text());
            }
            return new Response('v1');
          },
        };`,
    });
    const daemon = await startTestDaemon(dir, { egressAllow: '127.0.0.1/32' });
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'v1' });
    const slow = daemon.fetchText('app', '/slow');
    await origin.arrived('replace');

    const put = await admin(daemon, 'PUT', '/workers/app', version('v2'));
    expect(put.status).toBe(200);
    expect(put.json()).toMatchObject({ name: 'app', syntax: 'module' });
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'v2' });
    expect(await daemon.fetchText('app', '/slow')).toMatchObject({ status: 200, text: 'v2' });

    origin.release('replace', 'done');
    expect(await slow).toMatchObject({ status: 200, text: 'v1 slow done' });
    const list = (await admin(daemon, 'GET', '/workers')).json();
    expect(list.workers).toEqual([expect.objectContaining({ name: 'app', version: put.json().version, instances: 1 })]);
  });

  it('keeps the last PUT live when an earlier one of the same worker finishes loading later', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'app.mjs': version('v0') }), { warmPool: 2 });
    const slowLoad = `const t = Date.now(); while (Date.now() - t < 300) {}\n${version('first')}`;
    const first = admin(daemon, 'PUT', '/workers/app', slowLoad);
    // The first PUT has taken a warm child (and its version number) before the second is sent.
    while (daemon.pool.stats().hits < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    const second = await admin(daemon, 'PUT', '/workers/app', version('second'));
    expect(second.status).toBe(200);
    expect((await first).status).toBe(200);
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'second' });
    expect((await admin(daemon, 'GET', '/workers/app')).json()).toMatchObject({ version: second.json().version, instances: 1 });
  });

  it('rejects a script that does not parse with 400, message, line and column, and keeps the old version serving', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'app.mjs': version('old') }));
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'old' });
    const put = await admin(daemon, 'PUT', '/workers/app', `export default {\n  fetch() {\n    return new Response('x';\n  },\n};\n`);
    expect(put.status).toBe(400);
    expect(put.headers['content-type']).toBe('application/json');
    expect(put.json()).toEqual({
      error: {
        code: 'ERR_SCRIPT_LOAD',
        kind: 'SyntaxError',
        message: expect.stringMatching(/^SyntaxError: /),
        line: 3,
        column: expect.any(Number),
        detail: expect.stringContaining('app.js:3:'),
      },
    });
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'old' });

    // The same for a classic script, where V8 itself knows the position.
    const classic = await admin(daemon, 'PUT', '/workers/app', `addEventListener('fetch', (e) => {\n  e.respondWith(new Response('x'))\n  let = ;\n});\n`);
    expect(classic.status).toBe(400);
    expect(classic.json().error).toMatchObject({ code: 'ERR_SCRIPT_LOAD', kind: 'SyntaxError', line: 3, column: expect.any(Number) });
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'old' });
  });

  it('rejects a script that throws while loading with 400, and a new name stays unknown', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'app.mjs': version('old') }));
    const put = await admin(daemon, 'PUT', '/workers/app', `const config = null;\nconst key = config.key;\nexport default { fetch() { return new Response(key); } };\n`);
    expect(put.status).toBe(400);
    expect(put.json().error).toMatchObject({
      code: 'ERR_SCRIPT_LOAD',
      kind: 'ScriptError',
      message: expect.stringMatching(/^TypeError: Cannot read properties of null \(reading 'key'\)/),
      line: 2,
      column: expect.any(Number),
    });
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'old' });

    const fresh = await admin(daemon, 'PUT', '/workers/fresh', `throw new Error('not today');`);
    expect(fresh.status).toBe(400);
    expect(fresh.json().error).toMatchObject({ kind: 'ScriptError', message: 'Error: not today', line: 1 });
    expect((await daemon.fetchText('fresh')).status).toBe(404);
    expect((await admin(daemon, 'GET', '/workers')).json().workers.map((w: { name: string }) => w.name)).toEqual(['app']);
  });

  it('removes a worker with DELETE (200), after which its requests get 404', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'app.mjs': version('app'), 'other.mjs': version('other') }));
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'app' });
    const instance = daemon.broker.instances()[0]!;
    const del = await admin(daemon, 'DELETE', '/workers/app');
    expect(del.status).toBe(200);
    expect(del.json()).toEqual({ removed: 'app' });
    const after = await daemon.fetchText('app');
    expect(after.status).toBe(404);
    expect(after.text).toContain('No worker named "app"');
    await instance.exited;
    expect(await daemon.fetchText('other')).toMatchObject({ status: 200, text: 'other' });
    expect((await admin(daemon, 'DELETE', '/workers/app')).status).toBe(404);
  });

  it('lets an in-flight request finish when its worker is deleted', async () => {
    const dir = writeScripts({
      'app.mjs': `
        export default {
          async fetch() {
            const gate = await fetch('${origin.url}/gate/delete');
            return new Response('finished ' + await gate.text());
          },
        };`,
    });
    const daemon = await startTestDaemon(dir, { egressAllow: '127.0.0.1/32' });
    const slow = daemon.fetchText('app');
    await origin.arrived('delete');
    expect((await admin(daemon, 'DELETE', '/workers/app')).status).toBe(200);
    expect((await daemon.fetchText('app')).status).toBe(404);
    origin.release('delete', 'anyway');
    expect(await slow).toMatchObject({ status: 200, text: 'finished anyway' });
  });

  it('stops the instance of a worker deleted while its first instance was still loading', async () => {
    const daemon = await startTestDaemon(
      writeScripts({ 'app.mjs': `const t = Date.now(); while (Date.now() - t < 300) {}\n${version('loaded late')}` }),
    );
    const first = daemon.fetchText('app');
    while (daemon.pool.stats().hits < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await admin(daemon, 'DELETE', '/workers/app')).status).toBe(200);
    expect((await first).status).toBe(200);
    expect((await daemon.fetchText('app')).status).toBe(404);
    // Nothing may keep the late instance alive: close() must not wait on it forever.
    const [late] = [...daemon.pool.live].filter((i) => i.worker === 'app');
    if (late) await late.exited;
  });

  it('keeps a freshly deployed instance even if its child waited in the pool longer than idleTimeout', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'base.mjs': version('base') }), { idleTimeout: 200 });
    const [warm] = [...daemon.pool.live];
    // Let the warm child age past idleTimeout (a precondition, not synchronisation).
    await new Promise((resolve) => setTimeout(resolve, 300));
    const before = performance.now();
    expect((await admin(daemon, 'PUT', '/workers/fresh', version('fresh'))).status).toBe(201);
    const [deployed] = daemon.broker.instances();
    expect(deployed).toBe(warm);
    // Deploying is activity: the idle clock starts now, not when the child was spawned.
    expect(deployed!.lastActiveAt).toBeGreaterThanOrEqual(before);
  });

  it('replaces a worker whose script on disk fails to load', async () => {
    // It parses (serve refuses one that does not) but throws while loading.
    const daemon = await startTestDaemon(writeScripts({ 'app.js': `throw new Error('not configured');\naddEventListener('fetch', () => {});` }));
    expect((await daemon.fetchText('app')).status).toBe(500);
    expect((await admin(daemon, 'PUT', '/workers/app', version('fixed'))).status).toBe(200);
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'fixed' });
  });

  it('lists workers with instance counts', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': version('a'), 'b.mjs': version('b') }));
    const before = await admin(daemon, 'GET', '/workers');
    expect(before.status).toBe(200);
    expect(before.json().workers).toEqual([
      expect.objectContaining({ name: 'a', instances: 0, inflight: 0, requests: 0 }),
      expect.objectContaining({ name: 'b', instances: 0, inflight: 0, requests: 0 }),
    ]);
    await daemon.fetchText('a');
    await daemon.fetchText('a');
    const after = (await admin(daemon, 'GET', '/workers')).json();
    expect(after.workers).toEqual([
      expect.objectContaining({ name: 'a', instances: 1, requests: 2, errors: 0, coldStarts: 1 }),
      expect.objectContaining({ name: 'b', instances: 0, requests: 0 }),
    ]);
    expect((await admin(daemon, 'GET', '/workers/a')).json()).toMatchObject({ name: 'a', instances: 1 });
    expect((await admin(daemon, 'GET', '/workers/zzz')).status).toBe(404);
  });

  it('lists workers a page at a time, in name order, with the next page named', async () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const daemon = await startTestDaemon(writeScripts(Object.fromEntries(names.map((name) => [`${name}.mjs`, version(name)]))));
    await daemon.fetchText('c');
    const pages: Array<{ workers: Array<{ name: string; requests: number }>; next: string | null }> = [];
    let after: string | null = null;
    do {
      const res = await admin(daemon, 'GET', `/workers?limit=2${after === null ? '' : `&after=${after}`}`);
      expect(res.status).toBe(200);
      pages.push(res.json());
      after = pages.at(-1)!.next;
    } while (after !== null);
    expect(pages.map((page) => page.workers.map((w) => w.name))).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    expect(pages.map((page) => page.next)).toEqual(['b', 'd', null]);
    // The entries are the full listing's, figures included.
    expect(pages[1]!.workers[0]).toMatchObject({ name: 'c', requests: 1 });
    expect((await admin(daemon, 'GET', '/workers?after=zzz')).json()).toMatchObject({ workers: [], next: null });
    for (const bad of ['0', '-1', 'ten', '1001', '']) {
      const res = await admin(daemon, 'GET', `/workers?limit=${bad}`);
      expect(res.status).toBe(400);
      expect(res.json().error).toEqual({ code: 'ERR_BAD_REQUEST', message: `limit must be a whole number from 1 to 1000, got "${bad}"` });
    }
  });

  it('answers 401 without the admin token when one is set', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': version('a') }), { adminToken: 's3cret' });
    const none = await admin(daemon, 'GET', '/workers');
    expect(none.status).toBe(401);
    expect(none.json().error.code).toBe('ERR_UNAUTHORIZED');
    expect((await admin(daemon, 'GET', '/workers', undefined, { authorization: 'Bearer wrong!' })).status).toBe(401);
    const put = await admin(daemon, 'PUT', '/workers/b', version('b'));
    expect(put.status).toBe(401);
    expect((await daemon.fetchText('b')).status).toBe(404);
    expect((await admin(daemon, 'GET', '/workers', undefined, { authorization: 'Bearer s3cret' })).status).toBe(200);
  });

  it('answers bad admin requests with clear errors', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': version('a') }));
    expect((await admin(daemon, 'PUT', '/workers/Bad_Name', version('x'))).json().error.code).toBe('ERR_WORKER_NAME');
    expect((await admin(daemon, 'PUT', '/workers/Bad_Name', version('x'))).status).toBe(400);
    expect((await admin(daemon, 'PUT', '/workers/empty', '')).status).toBe(400);
    expect((await admin(daemon, 'POST', '/workers')).status).toBe(405);
    expect((await admin(daemon, 'GET', '/nothing')).status).toBe(404);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

describe('serve a directory of workers', () => {
  it('routes by the first Host label and runs both syntaxes', async () => {
    const dir = writeScripts({
      'sw.js': `addEventListener('fetch', (e) => e.respondWith(new Response('sw ' + new URL(e.request.url).pathname)));`,
      'mod.mjs': `export default { fetch(request) { return new Response('module ' + request.method + ' ' + request.url); } };`,
    });
    const daemon = await startTestDaemon(dir);
    const sw = await daemon.fetchText('sw', '/a/b');
    expect(sw).toMatchObject({ status: 200, text: 'sw /a/b' });
    const mod = await daemon.fetchText('mod', '/p?q=1', { method: 'PUT', body: 'x' });
    expect(mod.status).toBe(200);
    expect(mod.text).toBe(`module PUT http://mod.localhost:${daemon.port}/p?q=1`);
  });

  it('answers 404 naming the host label for an unknown worker', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.js': `addEventListener('fetch', e => e.respondWith(new Response('a')))` }));
    const res = await daemon.fetchText('missing', '/');
    expect(res.status).toBe(404);
    expect(res.text).toContain('No worker named "missing"');
    expect(res.headers['edgeproc-request-id']).toMatch(/^[0-9a-f]{16}$/);
  });
});

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

const echoUrl = (label: string) =>
  `export default { fetch(request) { return new Response('${label} ' + request.url); } };`;

describe('routing', () => {
  it('sends every request to a single-file target, whatever the Host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeproc-test-'));
    const file = join(dir, 'only.mjs');
    writeFileSync(file, echoUrl('only'));
    const daemon = await startTestDaemon(file);
    for (const host of ['only.localhost', 'other.example:1234', '127.0.0.1', 'a.b.c.d']) {
      const res = await request(`${daemon.url}/x?y=1`, { headers: { host } });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe(`only http://${host}/x?y=1`);
    }
  });

  it('finds NAME.js, NAME.mjs, NAME/index.js and NAME/index.mjs in a directory', async () => {
    const dir = writeScripts({
      'classic.js': `addEventListener('fetch', (e) => e.respondWith(new Response('classic')));`,
      'module.mjs': `export default { fetch() { return new Response('module'); } };`,
      'folder/index.js': `addEventListener('fetch', (e) => e.respondWith(new Response('folder')));`,
      'folder-mjs/index.mjs': `export default { fetch() { return new Response('folder-mjs'); } };`,
      'README.md': 'not a worker',
      'empty-folder/other.js': 'not a worker either',
    });
    const daemon = await startTestDaemon(dir);
    expect(daemon.registry.list().map((w) => w.name)).toEqual(['classic', 'folder', 'folder-mjs', 'module']);
    for (const name of ['classic', 'module', 'folder', 'folder-mjs']) {
      expect(await daemon.fetchText(name)).toMatchObject({ status: 200, text: name });
    }
    const missing = await daemon.fetchText('empty-folder');
    expect(missing.status).toBe(404);
  });

  it('gives request.url as the client asked: scheme, Host with port, path and query', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'echo.mjs': echoUrl('echo') }));
    const res = await daemon.fetchText('echo', '/a/b%20c/?q=1&r=%C3%A9#frag');
    expect(res).toMatchObject({ status: 200, text: `echo http://echo.localhost:${daemon.port}/a/b%20c/?q=1&r=%C3%A9` });
    // The Host label picks the worker case-insensitively; the URL keeps the host the client sent.
    const upper = await request(`${daemon.url}/`, { headers: { host: `ECHO.Example.COM:${daemon.port}` } });
    expect(upper.statusCode).toBe(200);
    expect(await upper.body.text()).toBe(`echo http://echo.example.com:${daemon.port}/`);
  });
});

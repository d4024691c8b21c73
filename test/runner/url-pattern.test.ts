/**
 * URLPattern (a Workers global Node 20 lacks): the polyfill Miniflare uses, loaded from beside
 * the runner on the first read (runner/companions.ts), so a child that never reads it holds none of it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

const ROUTER = `
export default {
  fetch(request) {
    if (new URL(request.url).pathname === '/plain') return new Response('plain');
    const books = new URLPattern({ pathname: '/books/:id(\\\\d+)' });
    const match = books.exec(request.url);
    const wildcard = new URLPattern('https://*.example.com/*');
    let invalid;
    try { new URLPattern({ pathname: '/(' }); invalid = 'no error'; } catch (error) { invalid = error.name; }
    return Response.json({
      id: match?.pathname.groups.id ?? null,
      tested: books.test({ pathname: '/books/abc' }),
      host: wildcard.exec('https://api.example.com/v1')?.hostname.groups[0] ?? null,
      invalid,
      frozen: Object.isFrozen(URLPattern.prototype),
    });
  },
};
`;

describe('URLPattern', () => {
  it("matches as the standard says, and loads on first read as the instance's startup work", async () => {
    const daemon = await startTestDaemon(writeScripts({ 'router.mjs': ROUTER }));
    expect(await daemon.fetchText('router', '/plain')).toMatchObject({ status: 200, text: 'plain' });
    const instance = daemon.broker.instances().find((i) => i.worker === 'router')!;
    const loaded = instance.startupCpuMs;
    const res = await daemon.fetchText('router', '/books/42');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ id: '42', tested: false, host: 'api', invalid: 'TypeError', frozen: true });
    expect(instance.startupCpuMs).toBeGreaterThan(loaded);
  });
});

/**
 * A directory mixing plain scripts and Workers projects: each project is a
 * worker named by its config, and its `routes` decide before the Host-label
 * rule, the most specific pattern first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouteTable } from '../../src/server/routes.js';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

const answer = (name: string) => `export default { fetch: (request) => new Response("${name} " + new URL(request.url).pathname) };\n`;

let daemon: TestDaemon;
beforeAll(async () => {
  const dir = writeScripts({
    'hello.js': 'addEventListener("fetch", (e) => e.respondWith(new Response("hello " + new URL(e.request.url).pathname)));\n',
    'legacy/index.js': answer('legacy'),
    // The folder's name is not the worker's: the config's is.
    'api-project/wrangler.toml': 'name = "api"\nmain = "index.js"\nroutes = ["example.com/api/*", "hello.localhost/special/*"]\n',
    'api-project/index.js': answer('api'),
    'site/wrangler.json': JSON.stringify({ name: 'site', main: 'index.js', routes: [{ pattern: 'example.com/*', zone_name: 'example.com' }, '*.example.com/*'] }),
    'site/index.js': answer('site'),
  });
  daemon = await startTestDaemon(dir);
});
afterAll(() => closeDaemons());

async function get(host: string, path: string): Promise<string> {
  const res = await daemon.fetchText('unused', path, { headers: { host } });
  return `${res.status} ${res.text}`;
}

describe('routes', () => {
  it('serves plain scripts and project folders side by side, projects by their config name', () => {
    expect(daemon.registry.list().map((w) => w.name)).toEqual(['api', 'hello', 'legacy', 'site']);
  });

  it('picks the most specific matching pattern, whatever the order they were given in', async () => {
    expect(await get('example.com', '/api/users?x=1')).toBe('200 api /api/users');
    expect(await get('example.com:8787', '/api/')).toBe('200 api /api/');
    expect(await get('EXAMPLE.com', '/apix')).toBe('200 site /apix');
    expect(await get('example.com', '/')).toBe('200 site /');
    expect(await get('www.example.com', '/api/users')).toBe('200 site /api/users');
  });

  it('takes precedence over the Host-label rule, which still applies where no route matches', async () => {
    expect(await get('hello.localhost', '/special/offer')).toBe('200 api /special/offer');
    expect(await get('hello.localhost', '/other')).toBe('200 hello /other');
    expect(await get('legacy.localhost', '/api/x')).toBe('200 legacy /api/x');
    expect(await get('nobody.localhost', '/')).toMatch(/^404 No worker named "nobody"/);
  });

  it('matches hosts and paths as Cloudflare does', () => {
    const table = new RouteTable([
      { pattern: '*example.com/*', worker: 'apex-and-subdomains' },
      { pattern: '*.shop.com/*', worker: 'subdomains' },
      { pattern: 'exact.com/only', worker: 'exact' },
    ]);
    expect(table.match('example.com', '/x')).toBe('apex-and-subdomains');
    expect(table.match('a.example.com', '/x')).toBe('apex-and-subdomains');
    expect(table.match('shop.com', '/x')).toBeNull();
    expect(table.match('a.shop.com', '/x')).toBe('subdomains');
    expect(table.match('exact.com', '/only')).toBe('exact');
    expect(table.match('exact.com', '/only/more')).toBeNull();
  });
});

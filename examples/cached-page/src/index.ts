/**
 * A page kept in the Cache API: on a miss the Worker builds it (slowly, as from
 * a database) and answers at once, storing a copy in caches.default through
 * ctx.waitUntil; until s-maxage runs out the next requests get that copy, which
 * the runtime marks `CF-Cache-Status: HIT`. A second page is per visitor and
 * marked `Cache-Control: private, no-store`: it goes through the same code, and
 * the cache refuses to keep it — the response's own headers decide what is
 * stored. The same file runs on Cloudflare Workers (on a custom domain: the
 * Cache API does nothing on workers.dev).
 *
 *   GET  /         the report, cached for five minutes at the edge (X-Generated-At says when it was built)
 *   POST /purge    deletes the cached report, so the next GET builds it again
 *   GET  /account  a greeting for the `user` cookie's visitor, never cached
 */

type Render = (request: Request) => Promise<Response>;

/** At the edge; browsers are told to come back every time (max-age=0), so a purge reaches them. */
const REPORT_CACHE_CONTROL = 'public, max-age=0, s-maxage=300';

const PAGES: Record<string, Render> = { '/': renderReport, '/account': renderAccount };

export default {
  async fetch(request, _env, ctx) {
    const url = new URL(request.url);

    if (url.pathname === '/purge') {
      if (request.method !== 'POST') return methodNotAllowed('POST');
      const purged = await caches.default.delete(cacheKey(new URL('/', url)));
      return Response.json({ purged });
    }

    const render = PAGES[url.pathname];
    if (!render) return new Response('Not found\n', { status: 404 });
    if (request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed('GET, HEAD');
    return cached(request, ctx, render);
  },
} satisfies ExportedHandler;

/** The read-through pattern: the cached copy if there is one; else build, answer, and store a copy. */
async function cached(request: Request, ctx: ExecutionContext, render: Render): Promise<Response> {
  const key = cacheKey(new URL(request.url));
  const hit = await caches.default.match(key);
  if (hit) return hit;
  const response = await render(request);
  // The visitor is not kept waiting for the write. put() reads the whole body, hence the clone;
  // it stores nothing for a response whose Cache-Control says private or no-store.
  ctx.waitUntil(caches.default.put(key, response.clone()));
  return response;
}

/** One entry per page: the query string is dropped, so `?utm_source=…` links do not each build the page again. */
function cacheKey(url: URL): Request {
  return new Request(url.origin + url.pathname, { method: 'GET' });
}

async function renderReport(): Promise<Response> {
  const builtAt = new Date().toISOString();
  const primes = await slowQuery(10_000);
  const rows = primes
    .slice(-20)
    .map((p) => `<tr><td>${p}</td></tr>`)
    .join('');
  const html = `<!doctype html>
<title>Primes report</title>
<h1>Primes below 10 000</h1>
<p>${primes.length} primes; the last twenty:</p>
<table>${rows}</table>
<footer>Generated at ${builtAt} (build ${crypto.randomUUID()})</footer>
`;
  return new Response(html, {
    headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': REPORT_CACHE_CONTROL, 'x-generated-at': builtAt },
  });
}

async function renderAccount(request: Request): Promise<Response> {
  const user = cookie(request, 'user') ?? 'guest';
  const builtAt = new Date().toISOString();
  const html = `<!doctype html>
<title>Your account</title>
<h1>Hello, ${escapeHtml(user)}</h1>
<footer>Generated at ${builtAt}</footer>
`;
  return new Response(html, {
    headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'private, no-store', 'x-generated-at': builtAt },
  });
}

/** Stands in for the slow part of a real page (a database or an origin): a wait, then a sieve. */
async function slowQuery(below: number): Promise<number[]> {
  await new Promise((resolve) => setTimeout(resolve, 100));
  const composite = new Uint8Array(below);
  const primes: number[] = [];
  for (let n = 2; n < below; n++) {
    if (composite[n]) continue;
    primes.push(n);
    for (let m = n * n; m < below; m += n) composite[m] = 1;
  }
  return primes;
}

function cookie(request: Request, name: string): string | null {
  for (const pair of (request.headers.get('cookie') ?? '').split(';')) {
    const [key, ...value] = pair.trim().split('=');
    if (key !== name) continue;
    try {
      return decodeURIComponent(value.join('='));
    } catch {
      return value.join('=');
    }
  }
  return null;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function methodNotAllowed(allow: string): Response {
  return new Response('Method not allowed\n', { status: 405, headers: { allow } });
}

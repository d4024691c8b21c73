/**
 * A URL shortener on Workers KV: a link is one key, `link:CODE`, whose value is
 * the target URL and whose metadata carries what a listing shows (the URL, when
 * it was made, its expiry, its visit count), so GET /api/links is one KV list
 * per page and never a get per link. Codes are random (crypto.getRandomValues)
 * and checked for collisions; links may expire (expirationTtl). The same file
 * runs on Cloudflare Workers.
 *
 *   POST   /api/links  {"url": "https://…", "ttl": 3600}  (JSON or a form) → 201 the link
 *   GET    /api/links?limit=20&cursor=…                   → a page of links and the next cursor
 *   GET    /CODE                                          → 302 to the URL, counting the visit
 *   DELETE /CODE                                          → 204
 *
 * No authentication: anyone who can reach it may list and delete. Put it behind
 * Cloudflare Access (or check a secret) before deploying it for real.
 */
import { Hono, type Context } from 'hono';

type Bindings = { LINKS: KVNamespace };

/** What each link's metadata holds (KV caps metadata at 1024 bytes of JSON). */
interface LinkMetadata {
  url: string;
  createdAt: string;
  /** Seconds since the epoch, as KV counts it; absent for a link that never expires. */
  expiration?: number;
  visits: number;
}

const PREFIX = 'link:';
const CODE_LENGTH = 7;
const CODE_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const CODE_ATTEMPTS = 5;
const MAX_METADATA_BYTES = 1024;
/** Workers KV refuses an expiration less than 60 seconds ahead. */
const MIN_TTL_SECONDS = 60;
const MAX_PAGE = 1000;

const app = new Hono<{ Bindings: Bindings }>();

app.post('/api/links', async (c) => {
  const input = await readInput(c);
  if ('error' in input) return c.json({ error: input.error }, input.status);

  let target: URL;
  try {
    target = new URL(input.url);
  } catch {
    return c.json({ error: `not a URL: ${JSON.stringify(input.url)}` }, 400);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    return c.json({ error: `only http and https URLs can be shortened, got ${target.protocol}` }, 400);
  }

  let ttl: number | undefined;
  if (input.ttl !== undefined && input.ttl !== '') {
    ttl = Number(input.ttl);
    if (!Number.isInteger(ttl) || ttl < MIN_TTL_SECONDS) {
      return c.json({ error: `ttl must be a whole number of seconds, at least ${MIN_TTL_SECONDS}, got ${JSON.stringify(input.ttl)}` }, 400);
    }
  }

  const now = Date.now();
  const metadata: LinkMetadata = { url: target.href, createdAt: new Date(now).toISOString(), visits: 0 };
  if (ttl !== undefined) metadata.expiration = Math.floor(now / 1000) + ttl;
  // Measured with the largest visit count it could ever carry, so counting visits never outgrows the cap.
  if (new TextEncoder().encode(JSON.stringify({ ...metadata, visits: Number.MAX_SAFE_INTEGER })).length > MAX_METADATA_BYTES) {
    return c.json({ error: 'the URL is too long to shorten (it must fit in 1024 bytes of KV metadata with the rest of the link)' }, 400);
  }

  const code = await freeCode(c.env.LINKS);
  if (!code) return c.json({ error: 'could not find a free code; try again' }, 503);
  await c.env.LINKS.put(PREFIX + code, target.href, { metadata, expirationTtl: ttl });

  const shortUrl = new URL(`/${code}`, c.req.url).href;
  c.header('location', shortUrl);
  return c.json(describe(code, metadata, shortUrl), 201);
});

app.get('/api/links', async (c) => {
  const limitParam = c.req.query('limit') ?? '20';
  const limit = Number(limitParam);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    return c.json({ error: `limit must be a whole number from 1 to ${MAX_PAGE}, got ${JSON.stringify(limitParam)}` }, 400);
  }
  const page = await c.env.LINKS.list<LinkMetadata>({ prefix: PREFIX, limit, cursor: c.req.query('cursor') || undefined });
  const links = page.keys.flatMap((key) => {
    const code = key.name.slice(PREFIX.length);
    return key.metadata ? [describe(code, key.metadata, new URL(`/${code}`, c.req.url).href)] : [];
  });
  return c.json({ links, cursor: page.list_complete ? null : page.cursor });
});

app.get(`/:code{[0-9A-Za-z]{${CODE_LENGTH}}}`, async (c) => {
  const code = c.req.param('code');
  const { value: url, metadata } = await c.env.LINKS.getWithMetadata<LinkMetadata>(PREFIX + code);
  if (url === null) return unknownCode(c, code);
  // Hono answers HEAD with the GET route; a link checker's HEAD is not a visit.
  if (metadata && c.req.method === 'GET') await countVisit(c.env.LINKS, code, url, metadata);
  return c.redirect(url, 302);
});

app.delete(`/:code{[0-9A-Za-z]{${CODE_LENGTH}}}`, async (c) => {
  const code = c.req.param('code');
  // KV's delete says nothing about whether the key was there; a get first gives the 404.
  if ((await c.env.LINKS.get(PREFIX + code)) === null) return unknownCode(c, code);
  await c.env.LINKS.delete(PREFIX + code);
  return c.body(null, 204);
});

app.get('/', (c) =>
  c.html(`<!doctype html>
<title>Shorten a URL</title>
<form method="post" action="/api/links">
  <input name="url" type="url" placeholder="https://…" required>
  <input name="ttl" type="number" min="${MIN_TTL_SECONDS}" placeholder="expires after (seconds)">
  <button>Shorten</button>
</form>
`),
);

app.notFound((c) => c.json({ error: 'not found' }, 404));

type Input = { url: string; ttl?: string | number } | { error: string; status: 400 | 415 };

/** The link to make, from a JSON body or a form (urlencoded or multipart). */
async function readInput(c: Context<{ Bindings: Bindings }>): Promise<Input> {
  const type = c.req.header('content-type') ?? '';
  let fields: Record<string, unknown>;
  if (type.startsWith('application/json')) {
    try {
      fields = await c.req.json();
    } catch {
      return { error: 'the body is not valid JSON', status: 400 };
    }
    if (typeof fields !== 'object' || fields === null) return { error: 'send a JSON object: {"url": "https://…"}', status: 400 };
  } else if (type.startsWith('application/x-www-form-urlencoded') || type.startsWith('multipart/form-data')) {
    fields = await c.req.parseBody();
  } else {
    return { error: 'send JSON ({"url": "https://…"}) or a form (url=https://…)', status: 415 };
  }
  const { url, ttl } = fields;
  if (typeof url !== 'string' || url === '') return { error: 'url is required', status: 400 };
  if (ttl !== undefined && typeof ttl !== 'string' && typeof ttl !== 'number') return { error: 'ttl must be a number of seconds', status: 400 };
  return { url, ttl };
}

/** A random code no link has yet: 62^7 codes make a collision rare, but a rare overwrite is still a lost link. */
async function freeCode(links: KVNamespace): Promise<string | null> {
  for (let attempt = 0; attempt < CODE_ATTEMPTS; attempt++) {
    const code = randomCode();
    if ((await links.get(PREFIX + code)) === null) return code;
  }
  return null;
}

function randomCode(): string {
  // Rejection sampling: bytes at or above 248 (4 × 62) are dropped so every character is equally likely.
  const limit = 256 - (256 % CODE_ALPHABET.length);
  let code = '';
  while (code.length < CODE_LENGTH) {
    for (const byte of crypto.getRandomValues(new Uint8Array(CODE_LENGTH * 2))) {
      if (byte < limit && code.length < CODE_LENGTH) code += CODE_ALPHABET[byte % CODE_ALPHABET.length];
    }
  }
  return code;
}

/**
 * Rewrites the link with one more visit in its metadata, keeping its expiry. It is awaited
 * before the redirect so that a listing right after shows the visit; KV is eventually
 * consistent between locations, and two visits at the same moment may count as one — a
 * counter that must be exact belongs in a Durable Object.
 */
async function countVisit(links: KVNamespace, code: string, url: string, metadata: LinkMetadata): Promise<void> {
  // KV refuses an expiration less than a minute ahead: a link about to expire keeps its count.
  if (metadata.expiration !== undefined && metadata.expiration - Date.now() / 1000 < MIN_TTL_SECONDS) return;
  await links.put(PREFIX + code, url, { metadata: { ...metadata, visits: metadata.visits + 1 }, expiration: metadata.expiration });
}

function describe(code: string, metadata: LinkMetadata, shortUrl: string) {
  return {
    code,
    shortUrl,
    url: metadata.url,
    createdAt: metadata.createdAt,
    expiresAt: metadata.expiration === undefined ? null : new Date(metadata.expiration * 1000).toISOString(),
    visits: metadata.visits,
  };
}

function unknownCode(c: Context<{ Bindings: Bindings }>, code: string): Response {
  return c.json({ error: `no link ${code}` }, 404);
}

export default app;

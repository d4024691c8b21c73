/**
 * Hono on edgeproc: routing with parameters, middleware, JSON in and out, a
 * JWT signed and verified through crypto.subtle (hono/jwt), a streamed
 * response and a WebSocket (hono's Workers adapter: WebSocketPair and a 101).
 * The same file runs on Cloudflare Workers.
 */
import { Hono } from 'hono';
import { upgradeWebSocket } from 'hono/cloudflare-workers';
import { sign, verify } from 'hono/jwt';
import { stream } from 'hono/streaming';

type Bindings = { GREETING: string; JWT_SECRET: string };

const app = new Hono<{ Bindings: Bindings }>();

// Middleware: every response says who served it.
app.use('*', async (c, next) => {
  await next();
  c.header('x-served-by', 'hono on edgeproc');
});

app.get('/', (c) => c.text(`${c.env.GREETING} from Hono!\n`));

app.get('/users/:id', (c) => {
  const id = Number(c.req.param('id'));
  if (!Number.isInteger(id)) return c.json({ error: 'id must be a number' }, 400);
  return c.json({ id, name: `user-${id}` });
});

app.post('/echo', async (c) => c.json({ received: await c.req.json() }));

// POST /token {"sub": "alice"} → a signed HS256 token; GET /me with it as a bearer token → its subject.
app.post('/token', async (c) => {
  const { sub } = await c.req.json<{ sub?: string }>();
  if (!sub) return c.json({ error: 'send {"sub": "NAME"}' }, 400);
  const token = await sign({ sub, iat: 1_700_000_000 }, c.env.JWT_SECRET, 'HS256');
  return c.json({ token });
});

app.get('/me', async (c) => {
  const token = c.req.header('authorization')?.replace(/^Bearer /, '') ?? '';
  try {
    const payload = await verify(token, c.env.JWT_SECRET, 'HS256');
    return c.json({ sub: payload.sub });
  } catch {
    return c.json({ error: 'invalid token' }, 401);
  }
});

app.get('/stream', (c) =>
  stream(c, async (out) => {
    for (let i = 1; i <= 3; i++) {
      await out.write(`chunk ${i}\n`);
      await out.sleep(10);
    }
  }),
);

// A WebSocket: each message is answered, numbered; "bye" closes it from the server.
app.get(
  '/ws',
  upgradeWebSocket(() => {
    let heard = 0;
    return {
      onMessage(event, ws) {
        if (event.data === 'bye') return ws.close(1000, 'goodbye');
        ws.send(`hono heard #${++heard}: ${String(event.data)}`);
      },
    };
  }),
);

export default app;

/**
 * itty-router on edgeproc: routing with parameters, middleware (before and
 * finally), JSON responses and errors. The same file runs on Cloudflare Workers.
 */
import { AutoRouter, error, type IRequest } from 'itty-router';

type Env = { APP_NAME: string };

const todos = [
  { id: 1, title: 'bundle with esbuild', done: true },
  { id: 2, title: 'serve unchanged', done: true },
];

const router = AutoRouter<IRequest, [Env]>({
  // Middleware: answer a missing API version before any route runs, tag every response after.
  before: [(request) => (request.headers.get('x-api-version') === '0' ? error(410, 'API version 0 is gone') : undefined)],
  finally: [(response: Response) => (response.headers.set('x-served-by', 'itty on edgeproc'), response)],
});

router
  .get('/', (_request, env) => ({ app: env.APP_NAME, routes: ['/todos', '/todos/:id'] }))
  .get('/todos', () => todos)
  .get('/todos/:id', ({ params }) => todos.find((t) => t.id === Number(params.id)) ?? error(404, `no todo ${params.id}`))
  .post('/todos', async (request) => {
    const { title } = await request.json<{ title?: string }>();
    if (!title) return error(400, 'send {"title": "..."}');
    return new Response(JSON.stringify({ id: todos.length + 1, title, done: false }), {
      status: 201,
      headers: { 'content-type': 'application/json' },
    });
  });

export default router;

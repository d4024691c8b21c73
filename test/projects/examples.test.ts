/**
 * The examples `npm start` serves: plain scripts beside two real wrangler
 * projects (Hono and itty-router, their packages installed by the root npm
 * workspace), each answering its routes exactly.
 */
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

const EXAMPLES = fileURLToPath(new URL('../../examples', import.meta.url));
// HS256 over {"sub":"alice","iat":1700000000} with the example's JWT_SECRET: fixed, so it is checked byte for byte.
const ALICE_TOKEN =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMH0.Ana5aAK_Ro1cdPa-DmMBWPuK8CAHF-xCjgI6TO29_Hc';

let daemon: TestDaemon;
beforeAll(async () => {
  daemon = await startTestDaemon(EXAMPLES);
});
afterAll(() => closeDaemons());

const json = { 'content-type': 'application/json' };

describe('examples/', () => {
  it('serves the plain scripts and the project folders together', async () => {
    expect(daemon.registry.list().map((w) => w.name)).toEqual(['echo', 'hello', 'hono-app', 'itty-app', 'proxy', 'stream']);
    expect((await daemon.fetchText('hello')).text).toBe('Hello from edgeproc!\n');
  });

  it('hono-app: routing, middleware and JSON', async () => {
    const home = await daemon.fetchText('hono-app');
    expect(home).toMatchObject({ status: 200, text: 'Hello from Hono!\n' });
    expect(home.headers['x-served-by']).toBe('hono on edgeproc');
    expect(await daemon.fetchText('hono-app', '/users/7')).toMatchObject({ status: 200, text: '{"id":7,"name":"user-7"}' });
    expect(await daemon.fetchText('hono-app', '/users/x')).toMatchObject({ status: 400, text: '{"error":"id must be a number"}' });
    expect(await daemon.fetchText('hono-app', '/echo', { method: 'POST', headers: json, body: '{"a":[1,2]}' })).toMatchObject({
      status: 200,
      text: '{"received":{"a":[1,2]}}',
    });
    expect(await daemon.fetchText('hono-app', '/nope')).toMatchObject({ status: 404, text: '404 Not Found' });
  });

  it('hono-app: a JWT signed and verified through crypto.subtle', async () => {
    const issued = await daemon.fetchText('hono-app', '/token', { method: 'POST', headers: json, body: '{"sub":"alice"}' });
    expect(issued).toMatchObject({ status: 200, text: `{"token":"${ALICE_TOKEN}"}` });
    const me = await daemon.fetchText('hono-app', '/me', { headers: { authorization: `Bearer ${ALICE_TOKEN}` } });
    expect(me).toMatchObject({ status: 200, text: '{"sub":"alice"}' });
    const forged = await daemon.fetchText('hono-app', '/me', { headers: { authorization: `Bearer ${ALICE_TOKEN.slice(0, -2)}xx` } });
    expect(forged).toMatchObject({ status: 401, text: '{"error":"invalid token"}' });
  });

  it('hono-app: a streamed response arrives in chunks', async () => {
    const res = await request(`${daemon.url}/stream`, { headers: { host: `hono-app.localhost:${daemon.port}` } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    const chunks: string[] = [];
    for await (const chunk of res.body) chunks.push(chunk.toString());
    expect(chunks.join('')).toBe('chunk 1\nchunk 2\nchunk 3\n');
    expect(chunks.length).toBeGreaterThan(1);
  });

  it('itty-app: routing, middleware and JSON', async () => {
    const home = await daemon.fetchText('itty-app');
    expect(home).toMatchObject({ status: 200, text: '{"app":"itty","routes":["/todos","/todos/:id"]}' });
    expect(home.headers['x-served-by']).toBe('itty on edgeproc');
    expect(await daemon.fetchText('itty-app', '/todos/2')).toMatchObject({ status: 200, text: '{"id":2,"title":"serve unchanged","done":true}' });
    expect(await daemon.fetchText('itty-app', '/todos/9')).toMatchObject({ status: 404, text: '{"status":404,"error":"no todo 9"}' });
    expect(await daemon.fetchText('itty-app', '/todos', { method: 'POST', headers: json, body: '{"title":"ship"}' })).toMatchObject({
      status: 201,
      text: '{"id":3,"title":"ship","done":false}',
    });
    expect(await daemon.fetchText('itty-app', '/todos', { headers: { 'x-api-version': '0' } })).toMatchObject({
      status: 410,
      text: '{"status":410,"error":"API version 0 is gone"}',
    });
  });
});

/**
 * KV on Redis (`--kv-url`), from tenants: two daemons given the same URL are
 * one store, as several edge machines share one KV. A real redis-server
 * (test/helpers/redis.ts), real daemons and children.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { buildServeConfig } from '../../src/config.js';
import { startDaemon } from '../../src/daemon.js';
import { Logger } from '../../src/log.js';
import { freePort } from '../../src/lab/ports.js';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { redisSkipReason, useRedisServer } from '../helpers/redis.js';

const WORKER = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const key = url.searchParams.get('key');
    if (request.method === 'PUT') {
      await env.SHARED.put(key, await request.text(), { metadata: { by: url.searchParams.get('by') } });
      return new Response('stored');
    }
    if (request.method === 'DELETE') {
      await env.SHARED.delete(key);
      return new Response('deleted');
    }
    if (url.pathname === '/list') return Response.json((await env.SHARED.list({ prefix: 'k' })).keys);
    const { value, metadata } = await env.SHARED.getWithMetadata(key);
    return Response.json({ value, metadata });
  },
};
`;

const PROJECT = {
  'shared/wrangler.toml': 'name = "shared"\nmain = "index.js"\nkv_namespaces = [{ binding = "SHARED", id = "fleet" }]\n',
  'shared/index.js': WORKER,
};

describe.skipIf(redisSkipReason !== null)(`KV on Redis from tenants${redisSkipReason ? ` (${redisSkipReason})` : ''}`, () => {
  const redis = useRedisServer();
  afterAll(closeDaemons);

  it('is one store for two daemons given the same --kv-url', async () => {
    const dir = writeScripts(PROJECT);
    const a = await startTestDaemon(dir, { kvUrl: redis.url });
    const b = await startTestDaemon(dir, { kvUrl: redis.url });
    expect(a.kvStore).toMatchObject({ backend: 'redis' });
    expect((await a.fetchText('shared', '/?key=k1&by=a', { method: 'PUT', body: 'written by a' })).text).toBe('stored');
    expect(JSON.parse((await b.fetchText('shared', '/?key=k1')).text)).toEqual({ value: 'written by a', metadata: { by: 'a' } });
    await b.fetchText('shared', '/?key=k2&by=b', { method: 'PUT', body: 'written by b' });
    expect(JSON.parse((await a.fetchText('shared', '/list')).text)).toEqual([
      { name: 'k1', metadata: { by: 'a' } },
      { name: 'k2', metadata: { by: 'b' } },
    ]);
    await b.fetchText('shared', '/?key=k1', { method: 'DELETE' });
    expect(JSON.parse((await a.fetchText('shared', '/?key=k1')).text)).toEqual({ value: null, metadata: null });
  });

  it('stops serve with a message naming the URL when Redis cannot be reached', async () => {
    const port = await freePort();
    const config = buildServeConfig(writeScripts(PROJECT), { port: 0, adminPort: 0, warmPool: 0, kvUrl: `redis://:secret@127.0.0.1:${port}/0` }, {});
    const failure = await startDaemon(config, new Logger(() => {})).catch((error: unknown) => error as Error & { code?: string });
    expect(failure).toMatchObject({ code: 'ERR_KV_STORAGE' });
    expect((failure as Error).message).toContain(`127.0.0.1:${port}`);
    expect((failure as Error).message).not.toContain('secret');
  });
});

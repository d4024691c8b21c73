// What only the Redis backend promises: one store shared by several daemons, Redis's own expiry
// with the index cleaned lazily, and a server that is down, silent or gone failing a call at once
// with ERR_KV_STORAGE naming the URL without its password.
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EdgeprocError } from '../../../src/errors.js';
import { openKvService, type KvServiceOptions } from '../../../src/bindings/kv/kv-service.js';
import { redactRedisUrl } from '../../../src/bindings/kv/redis-store.js';
import type { KvService } from '../../../src/bindings/kv/types.js';
import { freePort } from '../../../src/lab/ports.js';
import { redisSkipReason, startRedisServer, useRedisServer, type RedisServer } from '../../helpers/redis.js';
import { rejection } from '../../helpers/kv-rejection.js';

const dir = mkdtempSync(join(tmpdir(), 'edgeproc-kv-redis-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('redactRedisUrl', () => {
  it('drops the password and keeps the rest', () => {
    expect(redactRedisUrl('redis://:s3cret@10.0.0.5:6380/2')).toBe('redis://10.0.0.5:6380/2');
    expect(redactRedisUrl('rediss://user:s3cret@cache.internal:6379')).toBe('rediss://user@cache.internal:6379');
    expect(redactRedisUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
  });
});

describe('openKvService with a URL that is not redis://', () => {
  it('is a configuration error', async () => {
    const error = await openKvService({ persistTo: dir, url: 'http://127.0.0.1:6379', nowMs: Date.now }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EdgeprocError);
    expect((error as EdgeprocError).code).toBe('ERR_CONFIG');
    expect((error as EdgeprocError).message).toBe('--kv-url must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), got "http://127.0.0.1:6379"');
  });
});

describe.skipIf(redisSkipReason !== null)(`the Redis KV store${redisSkipReason ? ` (${redisSkipReason})` : ''}`, () => {
  const redis = useRedisServer();
  const services: KvService[] = [];
  const servers: RedisServer[] = [];
  const clients: Redis[] = [];
  const open = async (options: Partial<KvServiceOptions> = {}) => {
    const kv = await openKvService({ persistTo: dir, url: redis.url, ...options });
    services.push(kv);
    return kv;
  };
  const rawClient = (url = redis.url) => {
    const client = new Redis(url);
    clients.push(client);
    return client;
  };
  afterEach(async () => {
    for (const kv of services.splice(0)) await kv.close();
    for (const client of clients.splice(0)) client.disconnect();
    for (const server of servers.splice(0)) await server.stop();
  });

  it('two services on one server (two daemons) see each other\'s writes, deletes and lists', async () => {
    const first = await open();
    const second = await open();
    expect(first.backend).toBe('redis');
    expect(first.location).toBe(redis.url);
    await first.put('shared', 'a', Buffer.from('from first'), { metadata: { by: 1 } });
    await second.put('shared', 'b', Buffer.from('from second'), { expirationTtl: 600 });
    expect(await second.get('shared', 'a')).toEqual({ value: Buffer.from('from first'), metadata: { by: 1 }, expiration: null });
    const listed = await first.list('shared', {});
    expect(listed.keys.map((key) => key.name)).toEqual(['a', 'b']);
    expect(listed.keys[1]!.expiration).toBeGreaterThan(Date.now() / 1000);
    await second.delete('shared', 'a');
    expect(await first.get('shared', 'a')).toBeNull();
    expect((await first.list('shared', {})).keys.map((key) => key.name)).toEqual(['b']);
  });

  it('keeps one sorted index and one hash per key, and lets Redis expire the hash', async () => {
    const kv = await open();
    await kv.put('layout', 'forever', Buffer.from('v'), {});
    await kv.put('layout', 'ttl', Buffer.from('v'), { expirationTtl: 60, metadata: 'm' });
    const raw = rawClient();
    expect(await raw.zrange('edgeproc:kv:{layout}:keys', 0, -1)).toEqual(['forever', 'ttl']);
    expect(await raw.hgetall('edgeproc:kv:{layout}:e:ttl')).toMatchObject({ v: 'v', m: '"m"' });
    expect(await raw.pttl('edgeproc:kv:{layout}:e:forever')).toBe(-1);
    const pttl = await raw.pttl('edgeproc:kv:{layout}:e:ttl');
    expect(pttl).toBeGreaterThan(58_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
  });

  it('a hash Redis expired is skipped by list and its name removed from the index', async () => {
    const kv = await open();
    for (const key of ['a', 'b', 'c', 'd']) await kv.put('lazy', key, Buffer.from(key), { expirationTtl: 600 });
    const raw = rawClient();
    await raw.pexpire('edgeproc:kv:{lazy}:e:b', 1);
    await raw.del('edgeproc:kv:{lazy}:e:c');
    while ((await raw.exists('edgeproc:kv:{lazy}:e:b')) === 1) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await kv.get('lazy', 'b')).toBeNull();
    const page = await kv.list('lazy', { limit: 2 });
    expect(page).toEqual({ keys: [expect.objectContaining({ name: 'a' }), expect.objectContaining({ name: 'd' })], list_complete: true, cacheStatus: null });
    expect(await raw.zrange('edgeproc:kv:{lazy}:keys', 0, -1)).toEqual(['a', 'd']);
  });

  it('a key written again while its stale name is pruned stays listed', async () => {
    const kv = await open();
    await kv.put('race', 'k', Buffer.from('1'), {});
    const raw = rawClient();
    await raw.del('edgeproc:kv:{race}:e:k'); // as if Redis had expired it
    await Promise.all([kv.list('race', {}), kv.put('race', 'k', Buffer.from('2'), {})]);
    expect((await kv.list('race', {})).keys).toEqual([{ name: 'k' }]);
  });

  it('works with a password in the URL, and never shows it', async () => {
    const server = await startRedisServer(['--requirepass', 's3cret']);
    servers.push(server);
    const url = `redis://:s3cret@127.0.0.1:${server.port}/0`;
    const kv = await open({ url });
    expect(kv.location).toBe(`redis://127.0.0.1:${server.port}/0`);
    await kv.put('auth', 'k', Buffer.from('v'), {});
    expect((await kv.get('auth', 'k'))!.value.toString()).toBe('v');

    const wrong = await rejection(openKvService({ persistTo: dir, url: `redis://:wrong@127.0.0.1:${server.port}/0` }));
    expect(wrong.code).toBe('ERR_KV_STORAGE');
    expect(wrong.message).not.toContain('wrong@');
  });

  it('a server nobody listens on fails opening at once with ERR_KV_STORAGE naming the URL without its password and what to do', async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await rejection(openKvService({ persistTo: dir, url: `redis://:s3cret@127.0.0.1:${port}/0` }));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error.code).toBe('ERR_KV_STORAGE');
    expect(error.errorClass).toBe('system');
    expect(error.message).toBe(
      `cannot reach the KV store at redis://127.0.0.1:${port}/0 (connect ECONNREFUSED 127.0.0.1:${port}) within 3000 ms: start redis-server there, correct --kv-url, or leave --kv-url out to keep KV in SQLite under --persist-to`,
    );
    expect(error.message).not.toContain('s3cret');
  });

  it('a server that accepts but never answers fails opening after the connect timeout, not later', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const started = Date.now();
      const error = await rejection(openKvService({ persistTo: dir, url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 300 }));
      expect(Date.now() - started).toBeLessThan(2000);
      expect(error.code).toBe('ERR_KV_STORAGE');
      expect(error.message).toMatch(new RegExp(`^cannot reach the KV store at redis://127.0.0.1:${port} \\(.+\\) within 300 ms: start redis-server there`));
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('a server that stops answering fails a call after the command timeout', async () => {
    const kv = await open({ commandTimeoutMs: 100 });
    await kv.put('paused', 'k', Buffer.from('v'), {});
    const raw = rawClient();
    await raw.call('CLIENT', 'PAUSE', '300', 'ALL');
    try {
      const started = Date.now();
      const error = await rejection(kv.get('paused', 'k'));
      expect(Date.now() - started).toBeLessThan(280);
      expect(error.code).toBe('ERR_KV_STORAGE');
      expect(error.message).toBe(`KV GET failed: cannot reach Redis at ${redis.url} (Command timed out); check that redis-server is running and reachable there (the daemon keeps reconnecting), or correct --kv-url`);
    } finally {
      await raw.call('CLIENT', 'UNPAUSE');
    }
  });

  it('a server that goes away fails each call at once with ERR_KV_STORAGE, and calls work again when it is back', async () => {
    const server = await startRedisServer();
    servers.push(server);
    const kv = await open({ url: server.url });
    await kv.put('gone', 'k', Buffer.from('v'), {});
    await server.stop();

    for (const call of [() => kv.get('gone', 'k'), () => kv.put('gone', 'k', Buffer.from('w'), {}), () => kv.delete('gone', 'k'), () => kv.list('gone', {})]) {
      const started = Date.now();
      const error = await rejection(call());
      expect(Date.now() - started).toBeLessThan(500);
      expect(error.code).toBe('ERR_KV_STORAGE');
      expect(error.message).toMatch(
        new RegExp(`^KV (GET|PUT|DELETE) failed: cannot reach Redis at ${server.url} \\(.+\\); check that redis-server is running and reachable there \\(the daemon keeps reconnecting\\), or correct --kv-url$`),
      );
    }

    // The client reconnects in the background (at most 2 s apart): the same service works again.
    servers.push(await startRedisServer([], server.port));
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        await kv.put('gone', 'k', Buffer.from('back'), {});
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    expect((await kv.get('gone', 'k'))!.value.toString()).toBe('back');
  });
});

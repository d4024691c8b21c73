// The behaviour of KvService that does not depend on where the data lives, run against both
// backends: SQLite in a temporary directory and a real redis-server. The clock is injected and
// moved forward, so expiry takes no waiting (Redis's own expiry is checked in redis-store.test.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openKvService } from '../../../src/bindings/kv/kv-service.js';
import type { KvService } from '../../../src/bindings/kv/types.js';
import { KV_LIMITS } from '../../../src/limits.js';
import { redisSkipReason, useRedisServer } from '../../helpers/redis.js';
import { rejection } from '../../helpers/kv-rejection.js';

interface Backend {
  name: 'sqlite' | 'redis';
  open(nowMs: () => number): Promise<KvService>;
}

const dir = mkdtempSync(join(tmpdir(), 'edgeproc-kv-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const backends: Backend[] = [{ name: 'sqlite', open: (nowMs) => openKvService({ persistTo: dir, url: null, nowMs }) }];
if (redisSkipReason) {
  describe.skip(`redis: ${redisSkipReason}`, () => {
    it('runs the same suite', () => {});
  });
} else {
  const redis = useRedisServer();
  backends.push({ name: 'redis', open: (nowMs) => openKvService({ persistTo: dir, url: redis.url, nowMs }) });
}

const text = (value: Buffer | undefined) => value?.toString('utf8');

let namespaces = 0;

describe.each(backends)('KvService on $name', (backend) => {
  let kv: KvService;
  let ns: string;
  let clockMs: number;
  const advance = (ms: number) => {
    clockMs += ms;
  };

  beforeEach(async () => {
    // A clock near real time: Redis expires keys by its own clock too, and must not do so first.
    clockMs = Math.floor(Date.now() / 1000) * 1000;
    kv = await backend.open(() => clockMs);
    ns = `ns-${process.pid}-${++namespaces}`;
  });
  afterEach(async () => {
    await kv.close();
  });

  it('names its backend', () => {
    expect(kv.backend).toBe(backend.name);
  });

  describe('get and put', () => {
    it('a missing key is null', async () => {
      expect(await kv.get(ns, 'missing')).toBeNull();
    });

    it('returns what was put, with no metadata and no expiration', async () => {
      await kv.put(ns, 'key', Buffer.from('value'), {});
      expect(await kv.get(ns, 'key')).toEqual({ value: Buffer.from('value'), metadata: null, expiration: null });
    });

    it('keeps every byte: all 256 byte values, invalid UTF-8 and an empty value', async () => {
      const bytes = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7) % 256));
      await kv.put(ns, 'binary', bytes, {});
      await kv.put(ns, 'invalid-utf8', Buffer.from([0xff, 0xfe, 0x00, 0xc3]), {});
      await kv.put(ns, 'empty', Buffer.alloc(0), {});
      expect((await kv.get(ns, 'binary'))!.value.equals(bytes)).toBe(true);
      expect([...(await kv.get(ns, 'invalid-utf8'))!.value]).toEqual([0xff, 0xfe, 0x00, 0xc3]);
      expect((await kv.get(ns, 'empty'))!.value.byteLength).toBe(0);
    });

    it('overwrites value, metadata and expiration together', async () => {
      await kv.put(ns, 'key', Buffer.from('one'), { metadata: { v: 1 }, expirationTtl: 600 });
      await kv.put(ns, 'key', Buffer.from('two'), {});
      expect(await kv.get(ns, 'key')).toEqual({ value: Buffer.from('two'), metadata: null, expiration: null });
      await kv.put(ns, 'key', Buffer.from('three'), { metadata: ['x'] });
      expect(await kv.get(ns, 'key')).toEqual({ value: Buffer.from('three'), metadata: ['x'], expiration: null });
    });

    it('keys are case-sensitive, byte-exact, and may hold any character', async () => {
      const keys = ['key', 'KEY', 'kéy', 'k\u0065\u0301y', 'a:b', 'a/b', '{ns}', '🙂', ' ', '\0', '...', 'x'.repeat(512)];
      for (const [i, key] of keys.entries()) await kv.put(ns, key, Buffer.from(String(i)), {});
      for (const [i, key] of keys.entries()) expect(text((await kv.get(ns, key))?.value)).toBe(String(i));
    });

    it('namespaces are separate, whatever characters their ids hold', async () => {
      const other = `${ns}}:e:x`;
      await kv.put(ns, 'shared', Buffer.from('mine'), {});
      await kv.put(other, 'shared', Buffer.from('theirs'), {});
      await kv.put(`${ns}:keys`, 'x', Buffer.from('x'), {});
      expect(text((await kv.get(ns, 'shared'))?.value)).toBe('mine');
      expect(text((await kv.get(other, 'shared'))?.value)).toBe('theirs');
      expect((await kv.list(ns, {})).keys).toEqual([{ name: 'shared' }]);
      await kv.delete(other, 'shared');
      expect(text((await kv.get(ns, 'shared'))?.value)).toBe('mine');
    });

    it('accepts a 25 MiB value and returns it whole; one byte more is refused and nothing is written', async () => {
      const big = Buffer.alloc(KV_LIMITS.valueBytes, 0x61);
      big[big.length - 1] = 0x7a;
      await kv.put(ns, 'big', big, {});
      const back = await kv.get(ns, 'big');
      expect(back!.value.byteLength).toBe(KV_LIMITS.valueBytes);
      expect(back!.value.equals(big)).toBe(true);

      const error = await rejection(kv.put(ns, 'too-big', Buffer.alloc(KV_LIMITS.valueBytes + 1), {}));
      expect(error.message).toBe('KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400.');
      expect(error.code).toBe('ERR_KV_INVALID');
      expect(await kv.get(ns, 'too-big')).toBeNull();
    });
  });

  describe('metadata', () => {
    it.each([
      ['an object', { a: 1, nested: { b: [true, null] } }],
      ['an array', [1, 'two']],
      ['a string', 'meta'],
      ['a number', 42],
      ['false', false],
    ])('%s round-trips through get and list', async (_, metadata) => {
      await kv.put(ns, 'key', Buffer.from('v'), { metadata });
      expect((await kv.get(ns, 'key'))!.metadata).toEqual(metadata);
      expect((await kv.list(ns, {})).keys).toEqual([{ name: 'key', metadata }]);
    });

    it('1024 bytes of JSON are kept; 1025 are refused', async () => {
      const metadata = { key: 'é'.repeat(507) }; // 10 + 1014 bytes
      await kv.put(ns, 'key', Buffer.from('v'), { metadata });
      expect((await kv.get(ns, 'key'))!.metadata).toEqual(metadata);
      const error = await rejection(kv.put(ns, 'key2', Buffer.from('v'), { metadata: { key: `${'é'.repeat(507)}x` } }));
      expect(error.message).toBe('KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024.');
    });
  });

  describe('expiry', () => {
    it('expirationTtl becomes an absolute expiration, seen by get and list', async () => {
      await kv.put(ns, 'key', Buffer.from('v'), { expirationTtl: 300 });
      const expiration = clockMs / 1000 + 300;
      expect((await kv.get(ns, 'key'))!.expiration).toBe(expiration);
      expect((await kv.list(ns, {})).keys).toEqual([{ name: 'key', expiration }]);
    });

    it('an absolute expiration is kept as given', async () => {
      const expiration = clockMs / 1000 + 3600;
      await kv.put(ns, 'key', Buffer.from('v'), { expiration, metadata: { m: 1 } });
      expect(await kv.get(ns, 'key')).toEqual({ value: Buffer.from('v'), metadata: { m: 1 }, expiration });
      expect((await kv.list(ns, {})).keys).toEqual([{ name: 'key', expiration, metadata: { m: 1 } }]);
    });

    it('a key is there until its expiration second and gone from it, for get and list', async () => {
      await kv.put(ns, 'short', Buffer.from('v'), { expirationTtl: 60 });
      await kv.put(ns, 'long', Buffer.from('v'), { expirationTtl: 120 });
      await kv.put(ns, 'forever', Buffer.from('v'), {});
      advance(59_999);
      expect(await kv.get(ns, 'short')).not.toBeNull();
      expect((await kv.list(ns, {})).keys.map((k) => k.name)).toEqual(['forever', 'long', 'short']);
      advance(1);
      expect(await kv.get(ns, 'short')).toBeNull();
      expect((await kv.list(ns, {})).keys.map((k) => k.name)).toEqual(['forever', 'long']);
      advance(60_000);
      expect(await kv.get(ns, 'long')).toBeNull();
      expect((await kv.list(ns, {})).keys.map((k) => k.name)).toEqual(['forever']);
    });

    it('an expired key can be written again', async () => {
      await kv.put(ns, 'key', Buffer.from('old'), { expirationTtl: 60 });
      advance(61_000);
      await kv.put(ns, 'key', Buffer.from('new'), {});
      expect(await kv.get(ns, 'key')).toEqual({ value: Buffer.from('new'), metadata: null, expiration: null });
    });

    it('validates against the injected clock', async () => {
      const error = await rejection(kv.put(ns, 'key', Buffer.from('v'), { expiration: clockMs / 1000 + 59 }));
      expect(error.message).toBe(`KV PUT failed: 400 Invalid expiration of ${clockMs / 1000 + 59}. Expiration times must be at least 60 seconds in the future.`);
    });
  });

  describe('delete', () => {
    it('removes the key from get and list', async () => {
      await kv.put(ns, 'a', Buffer.from('1'), {});
      await kv.put(ns, 'b', Buffer.from('2'), {});
      await kv.delete(ns, 'a');
      expect(await kv.get(ns, 'a')).toBeNull();
      expect((await kv.list(ns, {})).keys).toEqual([{ name: 'b' }]);
    });

    it('of a missing key does nothing', async () => {
      await expect(kv.delete(ns, 'missing')).resolves.toBeUndefined();
    });
  });

  describe('list', () => {
    async function putAll(keys: string[]): Promise<void> {
      for (const key of keys) await kv.put(ns, key, Buffer.from(key), {});
    }
    const names = (result: { keys: { name: string }[] }) => result.keys.map((key) => key.name);

    it('an empty namespace lists nothing, complete, without a cursor', async () => {
      expect(await kv.list(ns, {})).toEqual({ keys: [], list_complete: true, cacheStatus: null });
    });

    it('sorts by the bytes of UTF-8, not by UTF-16 units', async () => {
      // U+FF5E (EF BD 9E) comes before U+1F600 (F0 9F 98 80) in UTF-8, after it in UTF-16 (D83D…).
      const keys = ['b', 'a', 'B', ', ', '!', 'é', '\u{1F600}', '\uFF5E', 'a\0', 'aa', '~'];
      await putAll(keys);
      const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      expect(byBytes).toEqual(['!', ', ', 'B', 'a', 'a\0', 'aa', 'b', '~', 'é', '\uFF5E', '\u{1F600}']);
      expect(names(await kv.list(ns, {}))).toEqual(byBytes);
    });

    it('filters by prefix, case-sensitively, with no special characters', async () => {
      await putAll(['section1key1', 'section1key2', 'section2key1', 'Section1key3', 'key\\_%1', 'key\\a', 'key\\_%2', 'key\\bbb']);
      expect(names(await kv.list(ns, { prefix: 'section1' }))).toEqual(['section1key1', 'section1key2']);
      expect(names(await kv.list(ns, { prefix: 'key\\_%' }))).toEqual(['key\\_%1', 'key\\_%2']);
      expect(names(await kv.list(ns, { prefix: 'S' }))).toEqual(['Section1key3']);
      expect(await kv.list(ns, { prefix: 'none' })).toEqual({ keys: [], list_complete: true, cacheStatus: null });
    });

    it('a prefix that is a whole key lists that key, and a 512-byte prefix is accepted', async () => {
      const long = 'x'.repeat(512);
      await putAll(['ab', 'abc', 'b', long]);
      expect(names(await kv.list(ns, { prefix: 'ab' }))).toEqual(['ab', 'abc']);
      expect(names(await kv.list(ns, { prefix: long }))).toEqual([long]);
    });

    it('pages through a prefix with a cursor, and the last page has none', async () => {
      const inside = Array.from({ length: 25 }, (_, i) => `p/${String(i).padStart(2, '0')}`);
      await putAll(['o', 'p', 'p0', ...inside, 'q']);
      const pages: string[][] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await kv.list(ns, { prefix: 'p/', limit: 10, cursor });
        pages.push(names(page));
        expect(page.cacheStatus).toBeNull();
        if (page.list_complete) {
          expect(page).not.toHaveProperty('cursor');
          break;
        }
        expect(typeof page.cursor).toBe('string');
        expect(page.cursor).not.toBe('');
        cursor = page.cursor;
      }
      expect(pages.map((page) => page.length)).toEqual([10, 10, 5]);
      expect(pages.flat()).toEqual(inside);
    });

    it('a page of exactly the limit is complete when nothing follows', async () => {
      await putAll(['a', 'b', 'c']);
      expect(await kv.list(ns, { limit: 3 })).toEqual({ keys: [{ name: 'a' }, { name: 'b' }, { name: 'c' }], list_complete: true, cacheStatus: null });
      const first = await kv.list(ns, { limit: 2 });
      expect(first.list_complete).toBe(false);
      expect(await kv.list(ns, { limit: 2, cursor: first.cursor })).toEqual({ keys: [{ name: 'c' }], list_complete: true, cacheStatus: null });
    });

    it('the limit may change from page to page', async () => {
      await putAll(['key1', 'key2', 'key3']);
      const first = await kv.list(ns, { limit: 1 });
      expect(names(first)).toEqual(['key1']);
      expect(names(await kv.list(ns, { limit: 2, cursor: first.cursor }))).toEqual(['key2', 'key3']);
    });

    it('a page after the cursor sees keys written after it, not before it', async () => {
      await putAll(['key1', 'key3', 'key5']);
      const first = await kv.list(ns, { limit: 2 });
      expect(names(first)).toEqual(['key1', 'key3']);
      await putAll(['key2', 'key4']);
      const second = await kv.list(ns, { limit: 2, cursor: first.cursor });
      expect(names(second)).toEqual(['key4', 'key5']);
      expect(second.list_complete).toBe(true);
    });

    it('a page after a deleted cursor key still starts after it', async () => {
      await putAll(['a', 'b', 'c', 'd']);
      const first = await kv.list(ns, { limit: 2 });
      await kv.delete(ns, 'b');
      expect(names(await kv.list(ns, { cursor: first.cursor }))).toEqual(['c', 'd']);
    });

    it('skips expired keys without short pages or a wrong list_complete', async () => {
      for (let i = 0; i < 12; i++) {
        await kv.put(ns, `k${String(i).padStart(2, '0')}`, Buffer.from('v'), i % 2 === 0 ? { expirationTtl: 60 } : {});
      }
      advance(60_000);
      const first = await kv.list(ns, { limit: 3 });
      expect(names(first)).toEqual(['k01', 'k03', 'k05']);
      expect(first.list_complete).toBe(false);
      const second = await kv.list(ns, { limit: 3, cursor: first.cursor });
      expect(names(second)).toEqual(['k07', 'k09', 'k11']);
      expect(second.list_complete).toBe(true);
    });

    it('returns at most 1000 keys by default and for limits of 0 or less', async () => {
      for (let i = 0; i < 1001; i++) await kv.put(ns, `k${String(i).padStart(4, '0')}`, Buffer.alloc(0), {});
      for (const limit of [undefined, 0, -1]) {
        const first = await kv.list(ns, { limit });
        expect(first.keys.length).toBe(1000);
        expect(first.list_complete).toBe(false);
        const rest = await kv.list(ns, { cursor: first.cursor });
        expect(names(rest)).toEqual(['k1000']);
        expect(rest.list_complete).toBe(true);
      }
    });

    it('an empty cursor starts at the beginning', async () => {
      await putAll(['a', 'b']);
      expect(names(await kv.list(ns, { cursor: '' }))).toEqual(['a', 'b']);
    });
  });

  describe('validation is the same on every backend', () => {
    it.each([
      ['get ""', (kv: KvService, ns: string) => kv.get(ns, ''), 'TypeError', 'Key name cannot be empty.'],
      ['delete "."', (kv: KvService, ns: string) => kv.delete(ns, '.'), 'TypeError', '"." is not allowed as a key name.'],
      ['put ".."', (kv: KvService, ns: string) => kv.put(ns, '..', Buffer.from('v'), {}), 'TypeError', '".." is not allowed as a key name.'],
      ['get of 513 bytes', (kv: KvService, ns: string) => kv.get(ns, 'x'.repeat(513)), 'Error', 'KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.'],
      ['put of 513 bytes', (kv: KvService, ns: string) => kv.put(ns, 'x'.repeat(513), Buffer.from('v'), {}), 'Error', 'KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.'],
      ['delete of 513 bytes', (kv: KvService, ns: string) => kv.delete(ns, 'x'.repeat(513)), 'Error', 'KV DELETE failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.'],
      ['expirationTtl 30', (kv: KvService, ns: string) => kv.put(ns, 'k', Buffer.from('v'), { expirationTtl: 30 }), 'Error', 'KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at least 60.'],
      ['expirationTtl 0', (kv: KvService, ns: string) => kv.put(ns, 'k', Buffer.from('v'), { expirationTtl: 0 }), 'Error', 'KV PUT failed: 400 Invalid expiration_ttl of 0. Please specify integer greater than 0.'],
      ['list limit 1001', (kv: KvService, ns: string) => kv.list(ns, { limit: 1001 }), 'Error', 'KV GET failed: 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000.'],
      ['list prefix of 513 bytes', (kv: KvService, ns: string) => kv.list(ns, { prefix: 'p'.repeat(513) }), 'Error', 'KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.'],
    ] as const)('%s', async (_, call, errorName, message) => {
      const error = await rejection(call(kv, ns));
      expect({ code: error.code, errorName: error.errorName, message: error.message }).toEqual({ code: 'ERR_KV_INVALID', errorName, message });
    });

    it('an invalid put writes nothing', async () => {
      await rejection(kv.put(ns, 'k', Buffer.from('v'), { expiration: 1 }));
      expect(await kv.get(ns, 'k')).toBeNull();
    });
  });

  describe('close', () => {
    it('is idempotent, and a call after it fails with ERR_KV_STORAGE', async () => {
      await kv.close();
      await kv.close();
      const error = await rejection(kv.get(ns, 'key'));
      expect(error.code).toBe('ERR_KV_STORAGE');
      expect(error.message).toBe(`KV GET failed: the KV store ${kv.location} is closed (the daemon is shutting down)`);
    });
  });
});

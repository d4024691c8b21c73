// What only the SQLite backend promises: a file under --persist-to that outlives the daemon, that
// two daemons may share, that purges expired rows, and that fails with a message naming the file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openKvService } from '../../../src/bindings/kv/kv-service.js';
import type { KvService } from '../../../src/bindings/kv/types.js';
import { rejection } from '../../helpers/kv-rejection.js';

const root = mkdtempSync(join(tmpdir(), 'edgeproc-kv-sqlite-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(root, `d${++dirs}`);

const open: KvService[] = [];
async function openSqlite(persistTo: string, nowMs?: () => number): Promise<KvService> {
  const kv = await openKvService({ persistTo, url: null, nowMs });
  open.push(kv);
  return kv;
}
afterEach(async () => {
  for (const kv of open.splice(0)) await kv.close();
});

describe('the SQLite KV store', () => {
  it('creates the directory (and its parents) and keeps DIR/kv.sqlite, named as its location', async () => {
    const dir = join(freshDir(), 'nested', '.edgeproc');
    const kv = await openSqlite(dir);
    expect(kv.backend).toBe('sqlite');
    expect(kv.location).toBe(join(dir, 'kv.sqlite'));
    await kv.put('ns', 'key', Buffer.from('v'), {});
    const db = new Database(kv.location, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.prepare('SELECT count(*) AS n FROM kv_entries').get()).toEqual({ n: 1 });
    } finally {
      db.close();
    }
  });

  it('keeps everything across a close and a reopen (a daemon restart)', async () => {
    const dir = freshDir();
    const nowMs = Date.now();
    const expiration = Math.floor(nowMs / 1000) + 3600;
    const before = await openSqlite(dir, () => nowMs);
    const binary = Buffer.from([0, 1, 2, 0xff, 0xfe]);
    await before.put('ns', 'text', Buffer.from('hello'), { metadata: { author: 'a' } });
    await before.put('ns', 'binary', binary, { expiration });
    await before.put('other', 'text', Buffer.from('elsewhere'), {});
    await before.put('ns', 'deleted', Buffer.from('x'), {});
    await before.delete('ns', 'deleted');
    await before.close();

    const after = await openSqlite(dir, () => nowMs);
    expect(await after.get('ns', 'text')).toEqual({ value: Buffer.from('hello'), metadata: { author: 'a' }, expiration: null });
    expect(await after.get('ns', 'binary')).toEqual({ value: binary, metadata: null, expiration });
    expect(await after.get('ns', 'deleted')).toBeNull();
    expect(await after.list('ns', {})).toEqual({
      keys: [{ name: 'binary', expiration }, { name: 'text', metadata: { author: 'a' } }],
      list_complete: true,
      cacheStatus: null,
    });
    expect((await after.get('other', 'text'))!.value.toString()).toBe('elsewhere');
  });

  it('two services on one directory (two daemons) see each other\'s writes and deletes', async () => {
    const dir = freshDir();
    const first = await openSqlite(dir);
    const second = await openSqlite(dir);
    await first.put('ns', 'from-first', Buffer.from('1'), {});
    expect((await second.get('ns', 'from-first'))!.value.toString()).toBe('1');
    await second.put('ns', 'from-second', Buffer.from('2'), {});
    expect((await first.list('ns', {})).keys.map((key) => key.name)).toEqual(['from-first', 'from-second']);
    await second.delete('ns', 'from-first');
    expect(await first.get('ns', 'from-first')).toBeNull();
  });

  it('deletes expired rows on a later put, besides never returning them', async () => {
    const dir = freshDir();
    let clockMs = Date.now();
    const kv = await openSqlite(dir, () => clockMs);
    await kv.put('ns', 'expires', Buffer.from('v'), { expirationTtl: 60 });
    await kv.put('ns', 'stays', Buffer.from('v'), {});
    const rows = () => {
      const db = new Database(kv.location, { readonly: true });
      try {
        return (db.prepare('SELECT key FROM kv_entries ORDER BY key').all() as { key: Buffer }[]).map((row) => row.key.toString());
      } finally {
        db.close();
      }
    };
    expect(rows()).toEqual(['expires', 'stays']);
    clockMs += 61_000; // past the expiration and past the purge interval
    expect(await kv.get('ns', 'expires')).toBeNull();
    expect(rows()).toEqual(['expires', 'stays']); // reads never write
    await kv.put('ns', 'another', Buffer.from('v'), {});
    expect(rows()).toEqual(['another', 'stays']);
  });

  it('a directory it cannot create fails with ERR_KV_STORAGE naming the file and --persist-to', async () => {
    const blocker = join(freshDir() + '-file');
    writeFileSync(blocker, 'not a directory');
    const error = await rejection(openKvService({ persistTo: join(blocker, 'kv'), url: null }));
    expect(error.code).toBe('ERR_KV_STORAGE');
    expect(error.errorClass).toBe('system');
    expect(error.message).toMatch(new RegExp(`^cannot open the KV store ${join(blocker, 'kv', 'kv.sqlite')}: .*ENOTDIR.*; make the directory writable or choose another with --persist-to$`));
  });

  it('a file that is not a database fails with ERR_KV_STORAGE saying so', async () => {
    const dir = freshDir();
    const kv = await openSqlite(dir);
    await kv.close();
    writeFileSync(join(dir, 'kv.sqlite'), 'x'.repeat(4096));
    rmSync(join(dir, 'kv.sqlite-wal'), { force: true });
    rmSync(join(dir, 'kv.sqlite-shm'), { force: true });
    const error = await rejection(openKvService({ persistTo: dir, url: null }));
    expect(error.code).toBe('ERR_KV_STORAGE');
    expect(error.message).toMatch(/^cannot open the KV store .*kv\.sqlite: .*not a database/);
  });

  it('refuses a file written by a newer schema rather than misreading it', async () => {
    const dir = freshDir();
    const kv = await openSqlite(dir);
    await kv.close();
    const db = new Database(join(dir, 'kv.sqlite'));
    db.pragma('user_version = 99');
    db.close();
    const error = await rejection(openKvService({ persistTo: dir, url: null }));
    expect(error.message).toMatch(/written by a newer edgeproc \(schema 99, this one knows 1\)/);
  });

  it('a write blocked by another process past busy_timeout fails with ERR_KV_STORAGE, not a hang', async () => {
    const dir = freshDir();
    const kv = await openSqlite(dir);
    await kv.put('ns', 'key', Buffer.from('v'), {});
    // Another connection holds the write lock; the put waits busy_timeout (1 s), then fails.
    const holder = new Database(kv.location);
    holder.pragma('busy_timeout = 0');
    holder.exec('BEGIN IMMEDIATE');
    try {
      const started = Date.now();
      const error = await rejection(kv.put('ns', 'key', Buffer.from('w'), {}));
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(error.code).toBe('ERR_KV_STORAGE');
      expect(error.message).toMatch(/^KV PUT failed: SQLite store .*kv\.sqlite: SQLITE_BUSY: .*another process held a write lock on the file for over 1000 ms/);
      // Readers are not blocked by a writer in WAL mode.
      expect((await kv.get('ns', 'key'))!.value.toString()).toBe('v');
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
  });
});

/**
 * The default KV store: one SQLite file, DIR/kv.sqlite under --persist-to, so
 * data outlives the daemon. better-sqlite3 is synchronous: a call blocks the
 * daemon's event loop for its duration (microseconds for a small key, tens of
 * milliseconds for a 25 MiB value), which is cheaper than a thread hop per call.
 *
 * Keys are stored as BLOBs of their UTF-8 bytes, so ORDER BY and the range
 * bounds compare with memcmp: Workers' list order, and a prefix scan on the
 * primary key. Two daemons may open the same file: WAL lets readers run beside
 * one writer, and busy_timeout makes a writer wait for the other instead of
 * failing at once.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import Database from 'better-sqlite3';
import { KvError } from './errors.js';
import { prefixUpperBound, type KvStore, type StoredEntry, type StoreListPage, type StoreListQuery } from './store.js';

export const SQLITE_FILE_NAME = 'kv.sqlite';

/**
 * How long a write waits for another process's write transaction before failing with SQLITE_BUSY.
 * The wait blocks this daemon's event loop (the driver is synchronous), so it is kept short: the
 * other daemon's transactions last microseconds to milliseconds, and a lock held longer than this
 * is better reported to one tenant than paid for by every request in flight.
 */
const BUSY_TIMEOUT_MS = 1000;
/** Expired rows are deleted at most this often (on a put), besides once when the file is opened. */
const PURGE_INTERVAL_MS = 60_000;
/** Bumped when the schema changes, so a newer daemon can migrate an older file. */
const SCHEMA_VERSION = 1;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS kv_entries (
    namespace  TEXT    NOT NULL,
    key        BLOB    NOT NULL,
    value      BLOB    NOT NULL,
    metadata   TEXT,
    expiration INTEGER,
    PRIMARY KEY (namespace, key)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS kv_entries_expiration ON kv_entries (expiration) WHERE expiration IS NOT NULL;
`;

interface EntryRow {
  value: Buffer;
  metadata: string | null;
  expiration: number | null;
}

interface KeyRow {
  key: Buffer;
  metadata: string | null;
  expiration: number | null;
}

export function openSqliteStore(persistTo: string): KvStore {
  return new SqliteStore(resolve(persistTo));
}

class SqliteStore implements KvStore {
  readonly backend = 'sqlite';
  readonly location: string;
  #db: Database.Database | null;
  readonly #statements: ReturnType<typeof prepare>;
  #nextPurgeMs = 0;

  constructor(directory: string) {
    this.location = resolve(directory, SQLITE_FILE_NAME);
    let db: Database.Database | null = null;
    try {
      mkdirSync(directory, { recursive: true });
      db = new Database(this.location);
      // WAL: readers and one writer at once, across processes. NORMAL: in WAL mode a commit is
      // durable against a crash of the daemon (not of the machine) without an fsync per put.
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new Error(`it was written by a newer edgeproc (schema ${version}, this one knows ${SCHEMA_VERSION})`);
      }
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      this.#statements = prepare(db);
    } catch (error) {
      db?.close();
      throw new KvError(
        'ERR_KV_STORAGE',
        `cannot open the KV store ${this.location}: ${describe(error)}; make the directory writable or choose another with --persist-to`,
        { cause: error },
      );
    }
    this.#db = db;
  }

  async get(namespace: string, key: string, nowMs: number): Promise<StoredEntry | null> {
    const row = this.#run('GET', () => this.#statements.get.get(namespace, utf8(key), nowMs / 1000)) as EntryRow | undefined;
    return row ? { value: row.value, metadataJson: row.metadata, expiration: row.expiration } : null;
  }

  async put(namespace: string, key: string, entry: StoredEntry, nowMs: number): Promise<void> {
    this.#run('PUT', () => this.#statements.put.run(namespace, utf8(key), entry.value, entry.metadataJson, entry.expiration));
    if (nowMs >= this.#nextPurgeMs) this.#purge(nowMs);
  }

  async delete(namespace: string, key: string): Promise<void> {
    this.#run('DELETE', () => this.#statements.delete.run(namespace, utf8(key)));
  }

  /** One query: the prefix range, after the cursor, live keys only, one row more than asked to know whether more remain. */
  async list(namespace: string, query: StoreListQuery, nowMs: number): Promise<StoreListPage> {
    const prefix = utf8(query.prefix);
    const rows = this.#run('GET', () =>
      this.#statements.list.all(namespace, query.startAfter ?? EMPTY, prefix, prefixUpperBound(prefix), nowMs / 1000, query.limit + 1),
    ) as KeyRow[];
    const more = rows.length > query.limit;
    const keys = (more ? rows.slice(0, query.limit) : rows).map((row) => ({
      name: row.key.toString('utf8'),
      metadataJson: row.metadata,
      expiration: row.expiration,
    }));
    return { keys, more };
  }

  async close(): Promise<void> {
    const db = this.#db;
    this.#db = null;
    db?.close();
  }

  /**
   * Expired rows are never returned (every read filters them); this only reclaims their space,
   * so a failure (another daemon holding the write lock) is left for the next turn rather than
   * failing the put that already succeeded.
   */
  #purge(nowMs: number): void {
    this.#nextPurgeMs = nowMs + PURGE_INTERVAL_MS;
    try {
      this.#statements.purge.run(nowMs / 1000);
    } catch {
      // Retried after PURGE_INTERVAL_MS.
    }
  }

  #run<T>(method: string, operation: () => T): T {
    if (!this.#db) {
      throw new KvError('ERR_KV_STORAGE', `KV ${method} failed: the KV store ${this.location} is closed (the daemon is shutting down)`);
    }
    try {
      return operation();
    } catch (error) {
      throw new KvError('ERR_KV_STORAGE', `KV ${method} failed: SQLite store ${this.location}: ${describe(error)}; ${advice(error)}`, {
        cause: error,
      });
    }
  }
}

const EMPTY = Buffer.alloc(0);

function prepare(db: Database.Database) {
  return {
    get: db.prepare('SELECT value, metadata, expiration FROM kv_entries WHERE namespace = ? AND key = ? AND (expiration IS NULL OR expiration > ?)'),
    put: db.prepare(
      `INSERT INTO kv_entries (namespace, key, value, metadata, expiration) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, metadata = excluded.metadata, expiration = excluded.expiration`,
    ),
    delete: db.prepare('DELETE FROM kv_entries WHERE namespace = ? AND key = ?'),
    list: db.prepare(
      `SELECT key, metadata, expiration FROM kv_entries
       WHERE namespace = ? AND key > ? AND key >= ? AND key < ? AND (expiration IS NULL OR expiration > ?)
       ORDER BY key LIMIT ?`,
    ),
    purge: db.prepare('DELETE FROM kv_entries WHERE expiration IS NOT NULL AND expiration <= ?'),
  };
}

function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

function describe(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}

function advice(error: unknown): string {
  switch ((error as { code?: unknown })?.code) {
    case 'SQLITE_BUSY':
      return `another process held a write lock on the file for over ${BUSY_TIMEOUT_MS} ms; retry, or give each daemon its own --persist-to`;
    case 'SQLITE_FULL':
      return 'free space on that disk or choose another --persist-to';
    case 'SQLITE_READONLY':
    case 'SQLITE_CANTOPEN':
    case 'SQLITE_PERM':
      return "check the file's and its directory's permissions, or choose another --persist-to";
    case 'SQLITE_CORRUPT':
    case 'SQLITE_NOTADB':
      return 'the file is damaged: move it aside (the daemon creates a new one) or restore it from a copy';
    default:
      return 'check the disk and the file, or choose another --persist-to';
  }
}

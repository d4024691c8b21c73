/**
 * The daemon's KvService: every call is validated here, the same way whichever
 * backend holds the data, then carried out by the store (SQLite under
 * --persist-to by default, Redis with --kv-url). This is where expirationTtl
 * becomes an absolute expiration, metadata becomes JSON and back, and a page of
 * keys gets its cursor.
 */
import { EdgeprocError } from '../../errors.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { KvError } from './errors.js';
import { openRedisStore } from './redis-store.js';
import { openSqliteStore } from './sqlite-store.js';
import type { KvStore, StoredKey } from './store.js';
import type { KvEntry, KvListKey, KvListOptions, KvListResult, KvPutOptions, KvService } from './types.js';
import { validateKey, validateList, validatePut } from './validate.js';

export interface KvServiceOptions {
  /** Directory of the SQLite file (created when missing); unused with `url`. */
  persistTo: string;
  /** redis:// or rediss:// URL to keep KV in Redis instead; null for SQLite. */
  url: string | null;
  /** The clock expirations are judged by, in ms since the epoch (tests move it forward). */
  nowMs?: () => number;
  /** Redis only: how long opening waits for the server (default 3000 ms). */
  connectTimeoutMs?: number;
  /** Redis only: how long one command waits for its reply (default 5000 ms). */
  commandTimeoutMs?: number;
}

export async function openKvService(options: KvServiceOptions): Promise<KvService> {
  const store =
    options.url === null
      ? openSqliteStore(options.persistTo)
      : await openRedisStore({ url: checkUrl(options.url), connectTimeoutMs: options.connectTimeoutMs, commandTimeoutMs: options.commandTimeoutMs });
  return new ValidatingKvService(store, options.nowMs ?? Date.now);
}

function checkUrl(url: string): string {
  if (!/^rediss?:\/\//i.test(url)) {
    throw new EdgeprocError('ERR_CONFIG', `--kv-url must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), got ${JSON.stringify(url)}`);
  }
  return url;
}

class ValidatingKvService implements KvService {
  readonly #store: KvStore;
  readonly #nowMs: () => number;

  constructor(store: KvStore, nowMs: () => number) {
    this.#store = store;
    this.#nowMs = nowMs;
  }

  get backend(): 'sqlite' | 'redis' {
    return this.#store.backend;
  }

  get location(): string {
    return this.#store.location;
  }

  async get(namespace: string, key: string): Promise<KvEntry | null> {
    validateKey('GET', key);
    const entry = await this.#store.get(namespace, key, this.#nowMs());
    if (!entry) return null;
    return { value: entry.value, metadata: parseMetadata(entry.metadataJson), expiration: entry.expiration };
  }

  async put(namespace: string, key: string, value: Buffer, options: KvPutOptions): Promise<void> {
    const nowMs = this.#nowMs();
    const put = validatePut(key, value, options, nowMs);
    await this.#store.put(namespace, key, put, nowMs);
  }

  async delete(namespace: string, key: string): Promise<void> {
    validateKey('DELETE', key);
    await this.#store.delete(namespace, key);
  }

  async list(namespace: string, options: KvListOptions): Promise<KvListResult> {
    const { prefix, limit, cursor } = validateList(options);
    const page = await this.#store.list(namespace, { prefix, limit, startAfter: decodeCursor(cursor) }, this.#nowMs());
    const keys = page.keys.map(listKey);
    const last = page.keys[page.keys.length - 1];
    // Workers omits the cursor on the last page and sets it (non-empty) on every other.
    if (page.more && last) return { keys, list_complete: false, cursor: encodeCursor(last.name), cacheStatus: null };
    return { keys, list_complete: true, cacheStatus: null };
  }

  close(): Promise<void> {
    return this.#store.close();
  }
}

/** As Workers lists a key: `expiration` and `metadata` only when the key has them. */
function listKey(key: StoredKey): KvListKey {
  const listed: KvListKey = { name: key.name };
  if (key.expiration !== null) listed.expiration = key.expiration;
  if (key.metadataJson !== null) listed.metadata = parseMetadata(key.metadataJson);
  return listed;
}

function parseMetadata(json: string | null): unknown {
  if (json === null) return null;
  try {
    return JSON.parse(json);
  } catch (error) {
    throw new KvError('ERR_KV_STORAGE', `KV GET failed: the store holds metadata that is not JSON (${(error as Error).message}); the entry was written by something other than edgeproc`, { cause: error });
  }
}

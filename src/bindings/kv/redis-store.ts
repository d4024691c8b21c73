/**
 * KV in Redis (--kv-url redis://…), so several daemons share one store.
 *
 * Layout, per namespace N (URI-encoded, so it holds no ':' and cannot run into
 * another namespace's keys; in braces, a hash tag keeping one namespace in one
 * cluster slot):
 *   edgeproc:kv:{N}:keys    sorted set of every key name, all scores 0, so
 *                           ZRANGEBYLEX walks them in byte order: a prefix is
 *                           a lex range, a cursor an exclusive lower bound;
 *   edgeproc:kv:{N}:e:KEY   hash  v = value bytes, m = metadata JSON (absent
 *                           when none), x = expiration in seconds (0: never),
 *                           expired by Redis itself (PEXPIREAT).
 * A put or delete changes both in one MULTI. When Redis expires a hash its name
 * stays in the set until a list() walks past it and removes it (lazily, in a
 * script that checks the hash is still gone, so a concurrent put is not undone).
 *
 * A tenant call never waits for a connection: commands fail at once while the
 * client is not connected (no offline queue), a command in flight when the link
 * drops fails at once (no retries), and a stalled server fails a command after
 * commandTimeoutMs. The client reconnects in the background meanwhile.
 */
import { Redis } from 'ioredis';
import { KvError } from './errors.js';
import { prefixUpperBound, type KvStore, type StoredEntry, type StoredKey, type StoreListPage, type StoreListQuery } from './store.js';

export interface RedisStoreOptions {
  /** redis:// or rediss:// URL, as given to --kv-url. */
  url: string;
  /** How long opening the store waits for the server. */
  connectTimeoutMs?: number;
  /** How long one command may wait for its reply. */
  commandTimeoutMs?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
const DEFAULT_COMMAND_TIMEOUT_MS = 5000;
const KEY_ROOT = 'edgeproc:kv:';
/** Index names fetched per round trip while skipping expired ones in list(). */
const LIST_BATCH_MIN = 16;

/** Removes from the index (KEYS[1]) each name ARGV[i] whose hash KEYS[i + 1] no longer exists. */
const PRUNE_SCRIPT = `
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i - 1])
  end
end
return removed`;

/** The URL without its password, for banners, logs and error messages. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '';
    return parsed.toString();
  } catch {
    return '(unparseable --kv-url)';
  }
}

export async function openRedisStore(options: RedisStoreOptions): Promise<KvStore> {
  const location = redactRedisUrl(options.url);
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  let lastError: Error | null = null;
  const client = new Redis(options.url, {
    lazyConnect: true,
    connectTimeout: connectTimeoutMs,
    commandTimeout: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Reconnect in the background after a loss, every 100 ms rising to 2 s; calls fail meanwhile.
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
  // Without a listener an 'error' event would throw; the last one explains the next failure.
  client.on('error', (error: Error) => {
    lastError = error;
  });
  try {
    await raceTimeout(client.connect(), connectTimeoutMs + 500);
  } catch (error) {
    client.disconnect();
    const reason = describe(lastError ?? error);
    throw new KvError(
      'ERR_KV_STORAGE',
      `cannot reach the KV store at ${location} (${reason}) within ${connectTimeoutMs} ms: start redis-server there, correct --kv-url, or leave --kv-url out to keep KV in SQLite under --persist-to`,
      { cause: lastError ?? error },
    );
  }
  return new RedisStore(client, location, () => lastError);
}

class RedisStore implements KvStore {
  readonly backend = 'redis';
  readonly location: string;
  readonly #client: Redis;
  readonly #lastError: () => Error | null;
  #closed = false;

  constructor(client: Redis, location: string, lastError: () => Error | null) {
    this.#client = client;
    this.location = location;
    this.#lastError = lastError;
  }

  async get(namespace: string, key: string, nowMs: number): Promise<StoredEntry | null> {
    const [value, metadata, expiration] = await this.#run('GET', () => this.#client.hmgetBuffer(entryKey(namespace, key), 'v', 'm', 'x'));
    if (!value) return null;
    const expiresAt = parseExpiration(expiration);
    if (isExpired(expiresAt, nowMs)) return null;
    return { value, metadataJson: metadata ? metadata.toString('utf8') : null, expiration: expiresAt };
  }

  async put(namespace: string, key: string, entry: StoredEntry): Promise<void> {
    const hash = entryKey(namespace, key);
    const fields: Record<string, Buffer | string> = { v: entry.value, x: String(entry.expiration ?? 0) };
    if (entry.metadataJson !== null) fields.m = entry.metadataJson;
    const transaction = this.#client.multi().del(hash).hset(hash, fields);
    if (entry.expiration !== null) transaction.pexpireat(hash, entry.expiration * 1000);
    transaction.zadd(indexKey(namespace), 0, key);
    await this.#run('PUT', () => transaction.exec().then(checkTransaction));
  }

  async delete(namespace: string, key: string): Promise<void> {
    const transaction = this.#client.multi().del(entryKey(namespace, key)).zrem(indexKey(namespace), key);
    await this.#run('DELETE', () => transaction.exec().then(checkTransaction));
  }

  /**
   * Walks the index from the later of the cursor and the prefix, reading each name's metadata and
   * expiration, until limit + 1 live keys are found (the extra one says whether more remain) or
   * the prefix range ends. Expired names cost another round trip, never a wrong page.
   */
  async list(namespace: string, query: StoreListQuery, nowMs: number): Promise<StoreListPage> {
    const index = indexKey(namespace);
    const prefix = Buffer.from(query.prefix, 'utf8');
    let lower = query.startAfter !== null && Buffer.compare(query.startAfter, prefix) >= 0 ? lexBound('(', query.startAfter) : lexBound('[', prefix);
    const upper = query.prefix === '' ? '+' : lexBound('(', prefixUpperBound(prefix));
    const live: StoredKey[] = [];
    const stale: string[] = [];
    while (live.length <= query.limit) {
      const wanted = Math.max(query.limit + 1 - live.length, LIST_BATCH_MIN);
      const names = await this.#run('GET', () => this.#client.zrangebylex(index, lower, upper, 'LIMIT', 0, wanted));
      if (names.length === 0) break;
      const pipeline = this.#client.pipeline();
      for (const name of names) pipeline.hmgetBuffer(entryKey(namespace, name), 'm', 'x');
      const replies = await this.#run('GET', () => pipeline.exec().then(checkTransaction));
      for (let i = 0; i < names.length && live.length <= query.limit; i++) {
        const [metadata, expiration] = replies[i] as [Buffer | null, Buffer | null];
        // x is always written: no x means Redis expired (or a delete removed) the hash.
        if (!expiration) {
          stale.push(names[i]!);
          continue;
        }
        const expiresAt = parseExpiration(expiration);
        if (isExpired(expiresAt, nowMs)) continue;
        live.push({ name: names[i]!, metadataJson: metadata ? metadata.toString('utf8') : null, expiration: expiresAt });
      }
      if (names.length < wanted) break;
      lower = lexBound('(', Buffer.from(names[names.length - 1]!, 'utf8'));
    }
    if (stale.length > 0) await this.#prune(namespace, stale);
    const more = live.length > query.limit;
    return { keys: more ? live.slice(0, query.limit) : live, more };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#client.status === 'ready') {
      try {
        await raceTimeout(this.#client.quit(), 1000);
        return;
      } catch {
        // Fall through: drop the connection without waiting for the server.
      }
    }
    this.#client.disconnect();
  }

  /** Best effort: a failure leaves the names for the next list() to remove. */
  async #prune(namespace: string, names: string[]): Promise<void> {
    try {
      await this.#client.eval(PRUNE_SCRIPT, names.length + 1, indexKey(namespace), ...names.map((name) => entryKey(namespace, name)), ...names);
    } catch {
      // Harmless: every reader skips a name whose hash is gone.
    }
  }

  async #run<T>(method: string, operation: () => Promise<T>): Promise<T> {
    if (this.#closed) {
      throw new KvError('ERR_KV_STORAGE', `KV ${method} failed: the KV store ${this.location} is closed (the daemon is shutting down)`);
    }
    try {
      return await operation();
    } catch (error) {
      throw this.#storageError(method, error);
    }
  }

  #storageError(method: string, error: unknown): KvError {
    const connected = this.#client.status === 'ready';
    if (!connected || isConnectionError(error)) {
      const reason = describe(connected ? error : (this.#lastError() ?? error));
      return new KvError(
        'ERR_KV_STORAGE',
        `KV ${method} failed: cannot reach Redis at ${this.location} (${reason}); check that redis-server is running and reachable there (the daemon keeps reconnecting), or correct --kv-url`,
        { cause: error },
      );
    }
    return new KvError(
      'ERR_KV_STORAGE',
      `KV ${method} failed: Redis at ${this.location} refused the command: ${describe(error)}; check the server's log and settings (maxmemory, ACLs)`,
      { cause: error },
    );
  }
}

function indexKey(namespace: string): string {
  return `${KEY_ROOT}{${encodeURIComponent(namespace)}}:keys`;
}

function entryKey(namespace: string, key: string): string {
  return `${KEY_ROOT}{${encodeURIComponent(namespace)}}:e:${key}`;
}

/** A ZRANGEBYLEX bound: '[' inclusive or '(' exclusive, then the raw bytes. */
function lexBound(kind: '[' | '(', bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from(kind), bytes]);
}

function parseExpiration(raw: Buffer | null | undefined): number | null {
  const seconds = raw ? Number(raw.toString('latin1')) : 0;
  return seconds > 0 ? seconds : null;
}

function isExpired(expiration: number | null, nowMs: number): boolean {
  return expiration !== null && expiration * 1000 <= nowMs;
}

/** MULTI/EXEC and pipelines report errors per command; the first one fails the call. */
function checkTransaction(results: [Error | null, unknown][] | null): unknown[] {
  if (results === null) throw new Error('the transaction was discarded');
  return results.map(([error, reply]) => {
    if (error) throw error;
    return reply;
  });
}

function isConnectionError(error: unknown): boolean {
  const text = `${(error as { name?: string })?.name ?? ''} ${(error as Error)?.message ?? ''}`;
  return /Stream isn't writeable|Connection is closed|MaxRetriesPerRequest|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE/.test(text);
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  return error instanceof Error ? error.message || error.name : String(error);
}

function raceTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

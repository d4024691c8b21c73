/**
 * The daemon's KV storage as the binding dispatcher sees it: one KvService per
 * daemon, whichever backend holds the data (SQLite on disk by default, Redis
 * with --kv-url). A namespace is the `id` of a wrangler `kv_namespaces` entry,
 * so two workers naming the same id share data, as on Cloudflare.
 */

export interface KvEntry {
  value: Buffer;
  /** The metadata given to put, parsed back from JSON; null when none. */
  metadata: unknown;
  /** Seconds since the epoch, or null when the key never expires. */
  expiration: number | null;
}

export interface KvListKey {
  name: string;
  expiration?: number;
  metadata?: unknown;
}

/** As Workers' `list()` returns it. */
export interface KvListResult {
  keys: KvListKey[];
  list_complete: boolean;
  /** Present (non-empty) only when list_complete is false. */
  cursor?: string;
  cacheStatus: null;
}

export interface KvPutOptions {
  /** Seconds since the epoch. */
  expiration?: number;
  /** Seconds from now; at least KV_LIMITS.minExpirationTtlSeconds. */
  expirationTtl?: number;
  metadata?: unknown;
}

export interface KvListOptions {
  prefix?: string;
  /** 1..KV_LIMITS.listLimit, default KV_LIMITS.listLimit. */
  limit?: number;
  cursor?: string;
}

/**
 * Every method validates its arguments as Workers does and throws KvError (a message the
 * tenant sees, e.g. `KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit
 * of 512.`) when they are wrong; a storage failure throws KvError with code
 * ERR_KV_STORAGE and a message that names the backend and what to do.
 */
export interface KvService {
  readonly backend: 'sqlite' | 'redis';
  /** Where the data lives, for the serve banner: a file path or a redis URL without its password. */
  readonly location: string;
  get(namespace: string, key: string): Promise<KvEntry | null>;
  put(namespace: string, key: string, value: Buffer, options: KvPutOptions): Promise<void>;
  delete(namespace: string, key: string): Promise<void>;
  list(namespace: string, options: KvListOptions): Promise<KvListResult>;
  close(): Promise<void>;
}

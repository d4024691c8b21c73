/**
 * What kv-service.ts asks of a backend (SQLite, Redis). Arguments arrive
 * validated and normalised: a store never checks a limit, never parses
 * metadata and never sees expirationTtl; it keeps bytes, filters out expired
 * keys and lists in the byte order of the keys' UTF-8 encoding, as Workers does.
 */

export interface StoredEntry {
  value: Buffer;
  /** JSON text as given to put, or null. */
  metadataJson: string | null;
  /** Seconds since the epoch, or null when the key never expires. */
  expiration: number | null;
}

export interface StoredKey {
  name: string;
  metadataJson: string | null;
  expiration: number | null;
}

export interface StoreListQuery {
  /** Empty for every key. */
  prefix: string;
  limit: number;
  /** UTF-8 bytes of the last key of the previous page; the page starts after it. */
  startAfter: Buffer | null;
}

export interface StoreListPage {
  keys: StoredKey[];
  /** Whether live keys matching the prefix come after the last one returned. */
  more: boolean;
}

export interface KvStore {
  readonly backend: 'sqlite' | 'redis';
  readonly location: string;
  /** `nowMs`: a key whose expiration (in seconds) is at or before it is gone. */
  get(namespace: string, key: string, nowMs: number): Promise<StoredEntry | null>;
  put(namespace: string, key: string, entry: StoredEntry, nowMs: number): Promise<void>;
  delete(namespace: string, key: string): Promise<void>;
  list(namespace: string, query: StoreListQuery, nowMs: number): Promise<StoreListPage>;
  close(): Promise<void>;
}

/**
 * The smallest byte string greater than every key that starts with `prefix`:
 * the prefix followed by 0xFF, a byte that never occurs in UTF-8, so no key
 * can reach it. Used as the exclusive upper bound of a prefix scan.
 */
export function prefixUpperBound(prefix: Buffer): Buffer {
  return Buffer.concat([prefix, Buffer.from([0xff])]);
}

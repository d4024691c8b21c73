/**
 * Workers KV's argument checks, with the messages a tenant sees on Cloudflare,
 * in the order they are made there. Two layers produce them, and both are
 * reproduced here:
 *  - workerd's binding (src/workerd/api/kv.c++): converts numeric options to a
 *    32-bit int, rejects an empty key, "." and ".." with a TypeError, and a key
 *    over 512 UTF-8 bytes with `KV <METHOD> failed: 414 …`;
 *  - the KV service behind it (as miniflare's KV validator models it): expiry,
 *    metadata, value and list-limit errors, reported by workerd as
 *    `KV <METHOD> failed: <status> <text>`. list() is a GET to that service.
 * https://developers.cloudflare.com/kv/platform/limits/
 */
import { KV_LIMITS } from '../../limits.js';
import { kvStatusError, kvTypeError } from './errors.js';
import type { KvListOptions, KvPutOptions } from './types.js';

export type KvMethod = 'GET' | 'PUT' | 'DELETE';

/** A put that passed every check: what a store writes. */
export interface ValidPut {
  value: Buffer;
  /** Seconds since the epoch, or null when the key never expires. */
  expiration: number | null;
  /** The metadata as JSON text, or null when none was given. */
  metadataJson: string | null;
}

/** A list that passed every check. */
export interface ValidList {
  /** Empty when the tenant gave none. */
  prefix: string;
  limit: number;
  /** The opaque cursor as the tenant gave it; empty when none. */
  cursor: string;
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * A numeric option as workerd's `int` conversion reads it (jsg::Optional<int>):
 * NaN and ±Infinity become 0, fractions are truncated, and a value outside
 * int32 is a TypeError. So `expirationTtl: "nan"` is reported as `of 0`.
 */
export function toWorkersInt(value: unknown): number {
  const number = Number(value);
  if (!Number.isFinite(number)) return 0;
  const integer = Math.trunc(number);
  if (integer < INT32_MIN || integer > INT32_MAX) {
    throw kvTypeError(`Value out of range. Must be between ${INT32_MIN} and ${INT32_MAX} (inclusive).`);
  }
  return integer;
}

/** workerd's validateKeyName(): the same three TypeErrors and one 414 for get, put and delete. */
export function validateKey(method: KvMethod, key: string): void {
  if (key === '') throw kvTypeError('Key name cannot be empty.');
  if (key === '.' || key === '..') throw kvTypeError(`"${key}" is not allowed as a key name.`);
  checkKeyLength(method, key);
}

function checkKeyLength(method: KvMethod, key: string): void {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > KV_LIMITS.keyBytes) {
    throw kvStatusError(method, 414, `UTF-8 encoded length of ${bytes} exceeds key length limit of ${KV_LIMITS.keyBytes}.`);
  }
}

/**
 * put(key, value, { expiration, expirationTtl, metadata }). Steps, in the order
 * the tenant would meet the errors:
 *  1. the key (workerd, before the request);
 *  2. expirationTtl wins over expiration when both are given: > 0, then ≥ 60;
 *  3. otherwise expiration: after now, then at least 60 s after now;
 *  4. metadata: at most 1024 bytes of JSON;
 *  5. the value: at most 25 MiB.
 * `nowMs` is the daemon's clock; whole seconds count, as on Workers.
 */
export function validatePut(key: string, value: Buffer | Uint8Array, options: KvPutOptions, nowMs: number): ValidPut {
  validateKey('PUT', key);
  const nowSeconds = Math.floor(nowMs / 1000);
  const minTtl = KV_LIMITS.minExpirationTtlSeconds;

  let expiration: number | null = null;
  if (options.expirationTtl !== undefined) {
    const ttl = toWorkersInt(options.expirationTtl);
    if (ttl <= 0) throw kvStatusError('PUT', 400, `Invalid expiration_ttl of ${ttl}. Please specify integer greater than 0.`);
    if (ttl < minTtl) throw kvStatusError('PUT', 400, `Invalid expiration_ttl of ${ttl}. Expiration TTL must be at least ${minTtl}.`);
    expiration = nowSeconds + ttl;
  } else if (options.expiration !== undefined) {
    const at = toWorkersInt(options.expiration);
    if (at <= nowSeconds) {
      throw kvStatusError('PUT', 400, `Invalid expiration of ${at}. Please specify integer greater than the current number of seconds since the UNIX epoch.`);
    }
    if (at < nowSeconds + minTtl) {
      throw kvStatusError('PUT', 400, `Invalid expiration of ${at}. Expiration times must be at least ${minTtl} seconds in the future.`);
    }
    expiration = at;
  }

  const metadataJson = serialiseMetadata(options.metadata);
  if (metadataJson !== null) {
    const bytes = Buffer.byteLength(metadataJson, 'utf8');
    if (bytes > KV_LIMITS.metadataBytes) {
      throw kvStatusError('PUT', 413, `Metadata length of ${bytes} exceeds limit of ${KV_LIMITS.metadataBytes}.`);
    }
  }

  const bytes = asBuffer(value);
  if (bytes.byteLength > KV_LIMITS.valueBytes) {
    throw kvStatusError('PUT', 413, `Value length of ${bytes.byteLength} exceeds limit of ${KV_LIMITS.valueBytes}.`);
  }
  return { value: bytes, expiration, metadataJson };
}

/** null and undefined mean "no metadata" (workerd sends no CF-KV-Metadata header for either). */
function serialiseMetadata(metadata: unknown): string | null {
  if (metadata === undefined || metadata === null) return null;
  let json: string | undefined;
  try {
    json = JSON.stringify(metadata);
  } catch (error) {
    throw kvTypeError(`KV put() metadata cannot be serialised as JSON: ${(error as Error).message}`);
  }
  // A function or a symbol stringifies to nothing: there is no metadata to keep.
  return json === undefined ? null : json;
}

function asBuffer(value: Buffer | Uint8Array): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw kvTypeError('KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.');
}

/**
 * list({ prefix, limit, cursor }). workerd sends key_count_limit only when it is
 * above 0, so 0 and negative limits mean the default (1000); above 1000 is the
 * service's 400, whose text says "less than 1000" although 1000 itself is allowed.
 * A prefix is held to the key length limit (414).
 */
export function validateList(options: KvListOptions): ValidList {
  let limit: number = KV_LIMITS.listLimit;
  if (options.limit !== undefined) {
    const given = toWorkersInt(options.limit);
    if (given > KV_LIMITS.listLimit) {
      throw kvStatusError('GET', 400, `Invalid key_count_limit of ${given}. Please specify an integer less than ${KV_LIMITS.listLimit}.`);
    }
    if (given > 0) limit = given;
  }
  const prefix = options.prefix ?? '';
  checkKeyLength('GET', prefix);
  return { prefix, limit, cursor: options.cursor ?? '' };
}

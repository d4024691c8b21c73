/**
 * `env.MY_KV`: Workers KV's API (https://developers.cloudflare.com/kv/api/).
 * The object holds only its binding's name; every operation is a binding call
 * the daemon validates, counts against the request and carries out on its
 * store (SQLite or Redis). Values travel as bytes; this side converts them to
 * the type the tenant asked for.
 */
import type { BindingCaller } from './binding-call.js';
import { Response } from './web.js';

type ValueType = 'text' | 'json' | 'arrayBuffer' | 'stream';
const VALUE_TYPES: readonly string[] = ['text', 'json', 'arrayBuffer', 'stream'];
/** Workers' bulk get takes at most 100 keys, and only text or json. */
const MAX_BULK_KEYS = 100;
/** workerd's minimum (miniflare agrees); older docs said 60. */
const MIN_CACHE_TTL_SECONDS = 30;

interface GetOptions {
  type: ValueType;
}

/** Set in the class's static block: private names can be tested only from inside the class. */
let isNamespace: (value: object) => boolean;

/** A method called on anything but a real namespace (`env.KV.get.call({})`) throws. */
function brand(value: unknown, method: string): KVNamespace {
  if (typeof value !== 'object' || value === null || !isNamespace(value)) {
    throw new TypeError(`KVNamespace.${method}: called on an object that is not a KV namespace`);
  }
  return value as KVNamespace;
}

export class KVNamespace {
  readonly #binding: string;
  readonly #call: BindingCaller;

  constructor(binding: string, call: BindingCaller) {
    this.#binding = binding;
    this.#call = call;
  }

  async get(key: unknown, options?: unknown): Promise<unknown> {
    const self = brand(this, 'get');
    const { type } = getOptions(options, 'GET');
    if (Array.isArray(key)) return self.#bulkGet(key, type, false);
    const entry = await self.#get(String(key));
    return entry ? decode(entry.body, type) : null;
  }

  async getWithMetadata(key: unknown, options?: unknown): Promise<unknown> {
    const self = brand(this, 'getWithMetadata');
    const { type } = getOptions(options, 'GET');
    if (Array.isArray(key)) return self.#bulkGet(key, type, true);
    const entry = await self.#get(String(key));
    if (!entry) return { value: null, metadata: null, cacheStatus: null };
    return { value: await decode(entry.body, type), metadata: entry.metadata, cacheStatus: null };
  }

  async put(key: unknown, value: unknown, options?: unknown): Promise<void> {
    const self = brand(this, 'put');
    const args: Record<string, unknown> = { key: String(key) };
    if (options !== undefined && options !== null) {
      if (typeof options !== 'object') throw new TypeError('KV put(): the options must be an object');
      const { expiration, expirationTtl, metadata } = options as Record<string, unknown>;
      if (expiration !== undefined) args.expiration = Number(expiration);
      if (expirationTtl !== undefined) args.expirationTtl = Number(expirationTtl);
      // JSON now, in the tenant's realm: a value JSON cannot carry fails here, with the tenant's own error.
      if (metadata !== undefined && metadata !== null) args.metadata = JSON.parse(JSON.stringify(metadata));
    }
    await self.#call({ kind: 'kv', binding: self.#binding }, 'put', args, valueStream(value));
  }

  async delete(key: unknown): Promise<void> {
    const self = brand(this, 'delete');
    await self.#call({ kind: 'kv', binding: self.#binding }, 'delete', { key: String(key) });
  }

  async list(options?: unknown): Promise<unknown> {
    const self = brand(this, 'list');
    const args: Record<string, unknown> = {};
    if (options !== undefined && options !== null) {
      if (typeof options !== 'object') throw new TypeError('KV list(): the options must be an object');
      const { prefix, limit, cursor } = options as Record<string, unknown>;
      if (prefix !== undefined && prefix !== null) args.prefix = String(prefix);
      if (limit !== undefined && limit !== null) args.limit = Number(limit);
      if (cursor !== undefined && cursor !== null) args.cursor = String(cursor);
    }
    const { value } = await self.#call({ kind: 'kv', binding: self.#binding }, 'list', args);
    return value;
  }

  static {
    isNamespace = (value) => #binding in value;
  }

  async #get(key: string): Promise<{ body: ReadableStream<Uint8Array> | null; metadata: unknown } | null> {
    const { value, body } = await this.#call({ kind: 'kv', binding: this.#binding }, 'get', { key });
    if (value === null) return null;
    return { body, metadata: (value as { metadata: unknown }).metadata ?? null };
  }

  /** `get([keys])`: a Map of key → value (or null), as Workers' bulk get returns it. */
  async #bulkGet(keys: unknown[], type: ValueType, withMetadata: boolean): Promise<Map<string, unknown>> {
    if (keys.length === 0 || keys.length > MAX_BULK_KEYS) {
      throw new TypeError(`KV GET_BULK failed: 400 You can request a minimum of 1 key and a maximum of ${MAX_BULK_KEYS} keys`);
    }
    if (type !== 'text' && type !== 'json') {
      throw new TypeError(`KV GET_BULK failed: 400 "${type}" is not a valid type. Use "json" or "text"`);
    }
    const names = keys.map(String);
    const entries = await Promise.all(names.map((key) => this.#get(key)));
    const result = new Map<string, unknown>();
    for (let i = 0; i < names.length; i++) {
      const entry = entries[i];
      const value = entry ? await decode(entry.body, type) : null;
      result.set(names[i]!, withMetadata ? { value, metadata: entry?.metadata ?? null } : value);
    }
    return result;
  }
}

/** `get(key, "json")` or `get(key, { type: "json", cacheTtl: 60 })`. */
function getOptions(options: unknown, op: string): GetOptions {
  if (options === undefined || options === null) return { type: 'text' };
  if (typeof options === 'string') return { type: checkType(options, op) };
  if (typeof options !== 'object') throw new TypeError(`KV ${op.toLowerCase()}(): the second argument must be a type ("text", "json", "arrayBuffer", "stream") or { type, cacheTtl }`);
  const { type, cacheTtl } = options as Record<string, unknown>;
  if (cacheTtl !== undefined) {
    // Accepted as on Workers, where it sets how long an edge location caches the value; one daemon has no edge to cache at.
    const ttl = Number(cacheTtl);
    if (!Number.isFinite(ttl) || ttl < MIN_CACHE_TTL_SECONDS) {
      throw new Error(`KV ${op} failed: 400 Invalid cache_ttl of ${String(cacheTtl)}. Cache TTL must be at least ${MIN_CACHE_TTL_SECONDS}.`);
    }
  }
  return { type: type === undefined ? 'text' : checkType(type, op) };
}

function checkType(type: unknown, op: string): ValueType {
  if (typeof type !== 'string' || !VALUE_TYPES.includes(type)) {
    throw new TypeError(`KV ${op} failed: Unknown response type "${String(type)}"; use "text", "json", "arrayBuffer" or "stream"`);
  }
  return type as ValueType;
}

async function decode(body: ReadableStream<Uint8Array> | null, type: ValueType): Promise<unknown> {
  if (type === 'stream') return body ?? new Response('').body;
  const response = new Response(body);
  if (type === 'arrayBuffer') return response.arrayBuffer();
  const text = await response.text();
  return type === 'json' ? JSON.parse(text) : text;
}

const encoder = new TextEncoder();

/** A put() value as a byte stream; Workers takes these four kinds and nothing else. */
function valueStream(value: unknown): ReadableStream<Uint8Array> {
  let bytes: Uint8Array;
  if (typeof value === 'string') bytes = encoder.encode(value);
  else if (value instanceof ArrayBuffer) bytes = new Uint8Array(value.slice(0));
  else if (ArrayBuffer.isView(value)) bytes = new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  else if (value instanceof ReadableStream) return value as ReadableStream<Uint8Array>;
  else throw new TypeError('KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.');
  return new ReadableStream({
    start(controller) {
      if (bytes.byteLength > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
}

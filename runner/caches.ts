/**
 * `caches`: the Cache API as Workers has it
 * (https://developers.cloudflare.com/workers/runtime-apis/cache/). Entries are
 * kept by the daemon, per worker, shared by every instance of it; each call
 * here is a binding call, and the daemon decides what is stored, for how long
 * (Cache-Control) and what a match returns (Range, conditional requests).
 */
import type { BindingTarget } from '../protocol/messages.js';
import type { BindingCaller } from './binding-call.js';
import { Request, Response, asResponse, responseParts } from './web.js';

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);

/** Set in Cache's static block: private names can be tested only from inside the class. */
let isCache: (value: object) => boolean;

function brand(value: unknown, method: string): Cache {
  if (typeof value !== 'object' || value === null || !isCache(value)) {
    throw new TypeError(`Cache.${method}: called on an object that is not a Cache`);
  }
  return value as Cache;
}

function toRequest(request: unknown, method: string): Request {
  if (request instanceof Request) return request;
  if (typeof request === 'string' || request instanceof URL) return new Request(request);
  throw new TypeError(`Cache.${method}: the request must be a Request, URL or string`);
}

function ignoreMethodOf(options: unknown): boolean {
  if (options === undefined || options === null) return false;
  if (typeof options !== 'object') throw new TypeError('Cache: the options must be an object');
  const { ignoreMethod } = options as { ignoreMethod?: unknown };
  return Boolean(ignoreMethod);
}

export class Cache {
  readonly #target: BindingTarget;
  readonly #call: BindingCaller;

  static {
    isCache = (value) => #target in value;
  }

  constructor(name: string, call: BindingCaller) {
    this.#target = { kind: 'cache', cache: name };
    this.#call = call;
  }

  async match(request: unknown, options?: unknown): Promise<Response | undefined> {
    const self = brand(this, 'match');
    const req = toRequest(request, 'match');
    const { value, body } = await self.#call(self.#target, 'match', {
      url: req.url,
      method: req.method,
      headers: [...req.headers],
      ignoreMethod: ignoreMethodOf(options),
    });
    if (value === null) return undefined;
    const { status, headers } = value as { status: number; headers: Array<[string, string]> };
    return new Response(NULL_BODY_STATUS.has(status) ? null : body, { status, headers });
  }

  async put(request: unknown, response: unknown): Promise<void> {
    const self = brand(this, 'put');
    const req = toRequest(request, 'put');
    const res = asResponse(response);
    if (!res) throw new TypeError('Cache.put: the response must be a Response');
    if (res.bodyUsed || res.body?.locked) throw new TypeError('Cache.put: the response body has already been used');
    const { status, headers } = responseParts(res);
    // As on Workers, put consumes the response's body: the caller sees it used afterwards.
    await self.#call(
      self.#target,
      'put',
      { url: req.url, method: req.method, requestHeaders: [...req.headers], status, headers },
      res.body,
    );
  }

  async delete(request: unknown, options?: unknown): Promise<boolean> {
    const self = brand(this, 'delete');
    const req = toRequest(request, 'delete');
    const { value } = await self.#call(self.#target, 'delete', {
      url: req.url,
      method: req.method,
      ignoreMethod: ignoreMethodOf(options),
    });
    return value === true;
  }
}

// Every Cache handed to a tenant is frozen, like the rest of the global API.
export class CacheStorage {
  readonly #call: BindingCaller;
  readonly #default: Readonly<Cache>;
  readonly #named = new Map<string, Readonly<Cache>>();

  constructor(call: BindingCaller) {
    this.#call = call;
    this.#default = Object.freeze(new Cache('default', call));
  }

  get default(): Readonly<Cache> {
    return this.#default;
  }

  async open(name: string): Promise<Readonly<Cache>> {
    const key = String(name);
    let cache = this.#named.get(key);
    if (!cache) this.#named.set(key, (cache = Object.freeze(new Cache(key, this.#call))));
    return cache;
  }
}

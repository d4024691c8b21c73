/**
 * `caches` as Workers has it on a workers.dev host: the API is present and
 * well-typed, but nothing is stored and nothing ever matches. The real Cache
 * API (kept by the daemon per worker) replaces this later.
 */
import { Request, Response } from './web.js';

function checkRequest(request: unknown, method: string): void {
  if (!(request instanceof Request) && typeof request !== 'string' && !(request instanceof URL)) {
    throw new TypeError(`Cache.${method}: the request must be a Request, URL or string`);
  }
}

export class Cache {
  async match(request: unknown): Promise<Response | undefined> {
    checkRequest(request, 'match');
    return undefined;
  }

  async put(request: unknown, response: unknown): Promise<void> {
    checkRequest(request, 'put');
    if (!(response instanceof Response)) throw new TypeError('Cache.put: the response must be a Response');
    // Consume the body as Workers does, so the caller sees the same "body used" state.
    await response.body?.cancel();
  }

  async delete(request: unknown): Promise<boolean> {
    checkRequest(request, 'delete');
    return false;
  }
}

// Every Cache handed to a tenant is frozen, like the rest of the global API.
export class CacheStorage {
  readonly #default = Object.freeze(new Cache());
  readonly #named = new Map<string, Cache>();

  get default(): Cache {
    return this.#default;
  }

  async open(name: string): Promise<Cache> {
    const key = String(name);
    let cache = this.#named.get(key);
    if (!cache) this.#named.set(key, (cache = Object.freeze(new Cache())));
    return cache;
  }
}

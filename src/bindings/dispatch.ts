/**
 * Carries out the binding calls tenants make (KV, Cache API): checks that the
 * call belongs to a request in flight and stays within that request's limits,
 * finds what the binding names, reads the call's body, asks the store and
 * sends the result back on the call's stream. The child never touches a store.
 */
import { SendWindow } from '../../protocol/flow.js';
import {
  FrameType,
  type BindingCallMessage,
  type BindingResultMessage,
  type HeaderList,
} from '../../protocol/messages.js';
import { collectBody, DROPPED_STREAM, FrameSource, pumpBytes, streamSink } from '../broker/body.js';
import { EdgeprocError } from '../errors.js';
import { KV_LIMITS, type Limits } from '../limits.js';
import type { Logger } from '../log.js';
import type { Exchange, Instance, SubrequestSink } from '../pool/instance.js';
import type { WorkerRegistry } from '../workers/registry.js';
import type { CacheService } from './cache/types.js';
import { KvError } from './kv/errors.js';
import type { KvService } from './kv/types.js';

type ErrorName = NonNullable<BindingResultMessage['error']>['name'];

/** A call's failure as the tenant sees it: the error its promise rejects with. */
class CallError extends Error {
  constructor(
    readonly errorName: ErrorName,
    message: string,
  ) {
    super(message);
  }
}

interface Reply {
  value: unknown;
  body: Uint8Array | null;
}

export interface BindingStores {
  /** Null when no worker declares a KV namespace (nothing was opened). */
  kv: KvService | null;
  cache: CacheService;
}

export class BindingDispatcher {
  readonly #registry: WorkerRegistry;
  readonly #stores: BindingStores;
  readonly #limits: Limits;
  readonly #log: Logger;

  constructor(registry: WorkerRegistry, stores: BindingStores, limits: Limits, log: Logger) {
    this.#registry = registry;
    this.#stores = stores;
    this.#limits = limits;
    this.#log = log;
  }

  call(instance: Instance, id: number, call: BindingCallMessage): SubrequestSink {
    const parent = instance.exchange(call.parent);
    if (!parent) {
      // The runner makes no call outside a request; one naming no request comes from a subverted runner.
      this.#fail(instance, id, call, new CallError('Error', 'binding call denied: it names no request in flight'));
      return DROPPED_STREAM;
    }
    const upload = call.hasBody ? new FrameSource(instance, id) : null;
    const window = new SendWindow();
    let aborted = false;
    void this.#run(instance, id, call, parent, upload, window, () => aborted);
    return streamSink(upload, window, () => (aborted = true));
  }

  async #run(
    instance: Instance,
    id: number,
    call: BindingCallMessage,
    parent: Exchange,
    upload: FrameSource | null,
    window: SendWindow,
    aborted: () => boolean,
  ): Promise<void> {
    let reply: Reply;
    try {
      reply = call.target.kind === 'kv' ? await this.#kv(instance, call, parent, upload) : await this.#cache(instance, id, call, upload);
    } catch (error) {
      if (!aborted()) this.#fail(instance, id, call, this.#asCallError(error, instance, parent, call));
      else instance.endSubrequest(id);
      return;
    }
    if (aborted()) {
      instance.endSubrequest(id);
      return;
    }
    const result: BindingResultMessage = { error: null, value: reply.value, hasBody: reply.body !== null };
    instance.sendJson(FrameType.BindingResult, id, result);
    try {
      if (reply.body) await pumpBytes(reply.body, instance, id, window);
    } catch {
      // Cancelled by the tenant, or its request ended: nothing failed.
    } finally {
      instance.endSubrequest(id);
    }
  }

  async #kv(instance: Instance, call: BindingCallMessage, parent: Exchange, upload: FrameSource | null): Promise<Reply> {
    const kv = this.#stores.kv;
    const binding = call.target.kind === 'kv' ? call.target.binding : '';
    const bindings = instance.worker ? this.#registry.get(instance.worker)?.kv : undefined;
    // Own properties only: a forged name such as "constructor" must not find Object.prototype's.
    const namespace = bindings && Object.hasOwn(bindings, binding) ? bindings[binding] : undefined;
    if (!kv || namespace === undefined) {
      throw new CallError('Error', `env.${binding} is not a KV namespace of worker "${instance.worker}": declare it in kv_namespaces of its wrangler config`);
    }
    const max = (instance.limits ?? this.#limits).kvOperations;
    if (++parent.kvOperations > max) {
      this.#log.warn('limit exceeded', { worker: instance.worker ?? undefined, requestId: parent.requestId, limit: 'kvOperations', value: parent.kvOperations, max });
      throw new CallError('Error', `Too many KV operations: this request already made ${max}; the limit is ${max} per request (--kv-operations).`);
    }
    const args = call.args;
    const key = String(args.key ?? '');
    switch (call.op) {
      case 'get': {
        const entry = await kv.get(namespace, key);
        return entry ? { value: { metadata: entry.metadata, expiration: entry.expiration }, body: entry.value } : { value: null, body: null };
      }
      case 'put': {
        const { bytes: value, length } = upload ? await collectBody(upload, KV_LIMITS.valueBytes) : { bytes: Buffer.alloc(0), length: 0 };
        if (value === null) {
          throw new CallError('Error', `KV PUT failed: 413 Value length of ${length} exceeds limit of ${KV_LIMITS.valueBytes}.`);
        }
        await kv.put(namespace, key, value, {
          expiration: optionalNumber(args.expiration),
          expirationTtl: optionalNumber(args.expirationTtl),
          metadata: args.metadata ?? undefined,
        });
        return { value: null, body: null };
      }
      case 'delete':
        await kv.delete(namespace, key);
        return { value: null, body: null };
      case 'list':
        return {
          value: await kv.list(namespace, {
            prefix: args.prefix === undefined ? undefined : String(args.prefix),
            limit: optionalNumber(args.limit),
            cursor: args.cursor === undefined ? undefined : String(args.cursor),
          }),
          body: null,
        };
      default:
        throw new CallError('TypeError', `KV has no operation "${call.op}"`);
    }
  }

  async #cache(instance: Instance, id: number, call: BindingCallMessage, upload: FrameSource | null): Promise<Reply> {
    const cache = this.#stores.cache;
    const worker = instance.worker ?? '';
    const name = call.target.kind === 'cache' ? call.target.cache : 'default';
    const args = call.args as { url: string; method: string; headers?: HeaderList; requestHeaders?: HeaderList; status?: number; ignoreMethod?: boolean };
    const key = { worker, cache: name, url: String(args.url) };
    switch (call.op) {
      case 'match': {
        const hit = cache.match(key, { method: String(args.method), headers: args.headers ?? [], ignoreMethod: Boolean(args.ignoreMethod) });
        return hit ? { value: { status: hit.status, headers: hit.headers }, body: hit.body } : { value: null, body: null };
      }
      case 'put': {
        const max = (instance.limits ?? this.#limits).cacheBytes;
        const { bytes: body, length } = upload ? await collectBody(upload, max) : { bytes: Buffer.alloc(0), length: 0 };
        if (body === null) {
          // As on Workers, where the cache answers 413 and put still resolves: nothing is stored.
          this.#log.info('cache put not stored', { worker, cache: name, url: key.url, reason: `the body (${length} bytes) is larger than the worker's whole cache (${max} bytes; --cache-mb)` });
          return { value: null, body: null };
        }
        const outcome = cache.put(key, args.requestHeaders ?? [], { status: Number(args.status), headers: args.headers ?? [], body }, String(args.method));
        if (!outcome.stored) this.#log.debug('cache put not stored', { worker, cache: name, url: key.url, reason: outcome.reason });
        return { value: null, body: null };
      }
      case 'delete':
        return { value: cache.delete(key, String(args.method), Boolean(args.ignoreMethod)), body: null };
      default:
        throw new CallError('TypeError', `Cache has no operation "${call.op}"`);
    }
  }

  #asCallError(error: unknown, instance: Instance, parent: Exchange, call: BindingCallMessage): CallError {
    if (error instanceof CallError) return error;
    if (error instanceof EdgeprocError) {
      if (error.code === 'ERR_KV_STORAGE') {
        // The detail names the daemon's file or Redis server: for the operator's log, not the tenant.
        this.#log.error('KV storage failed', { worker: instance.worker ?? undefined, requestId: parent.requestId, op: call.op, error: error.message });
        return new CallError('Error', `KV ${call.op.toUpperCase()} failed: the KV store is unavailable (request ${parent.requestId}; the daemon's log says why)`);
      }
      const name = error instanceof KvError ? error.errorName : error.code === 'ERR_CACHE_INVALID' ? 'TypeError' : 'Error';
      return new CallError(name, error.message);
    }
    // Ours, not the tenant's: the tenant gets a short error with the request id to quote, the log the detail.
    this.#log.error('binding call failed', { worker: instance.worker ?? undefined, requestId: parent.requestId, op: call.op, error: (error as Error)?.stack ?? String(error) });
    return new CallError('Error', `${call.target.kind === 'kv' ? 'KV' : 'Cache'} ${call.op} failed inside edgeproc (request ${parent.requestId}); see the daemon's log`);
  }

  /** Rejects the tenant's call, stopping the upload of its body first if one is still coming. */
  #fail(instance: Instance, id: number, call: BindingCallMessage, error: CallError): void {
    if (call.hasBody) instance.sendAbort(id, error.message);
    const result: BindingResultMessage = { error: { name: error.errorName, message: error.message }, value: null, hasBody: false };
    instance.sendJson(FrameType.BindingResult, id, result);
    instance.endSubrequest(id);
  }
}

function optionalNumber(value: unknown): number | undefined {
  return value === undefined || value === null ? undefined : Number(value);
}

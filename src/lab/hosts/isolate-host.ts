/**
 * The `isolate` model's host: every tenant in one Node process, each in its own
 * V8 isolate (npm `isolated-vm`), as Cloudflare Workers do. An isolate has its
 * own heap with its own limit and runs on its own thread, so a runaway is cut
 * by a timeout and a memory bomb disposes of its isolate only: the host and the
 * neighbours go on, and the bombed tenant is rebuilt from its source on its
 * next request.
 *
 * An isolate is bare V8: no Web APIs. Each gets the shim below, just what the
 * workloads use (Response, URL); the request comes in as plain data.
 *
 * Needs `--no-node-snapshot` on Node 20 (isolated-vm's README). Started by
 * src/lab/models/isolate.ts.
 */
import { createRequire } from 'node:module';
import type { LabLimits } from '../models/types.js';
import { limitsFromArgv, serveRuntime, type LabRequest, type LabResponse, type TenantRuntime } from './host-server.js';

/**
 * The part of isolated-vm this host uses. Declared here rather than imported so
 * that the project still compiles when the optional dependency is absent (its
 * native build can fail); the host then exits with the reason at startup.
 */
interface Ivm {
  Isolate: new (options: { memoryLimit: number }) => Isolate;
}
interface Isolate {
  readonly isDisposed: boolean;
  createContext(): Promise<Context>;
  compileModule(code: string, options: { filename: string }): Promise<IvmModule>;
  dispose(): void;
}
interface Context {
  evalClosure(code: string, args: unknown[], options: { result: { reference: true } }): Promise<Reference>;
}
interface IvmModule {
  readonly namespace: Reference;
  instantiate(context: Context, resolve: (specifier: string) => never): Promise<void>;
  evaluate(options: { timeout: number }): Promise<unknown>;
}
interface Reference {
  apply(receiver: undefined, args: unknown[], options: { timeout?: number; arguments?: { copy: true }; result: { reference: true } | { promise: true; copy: true } }): Promise<unknown>;
  derefInto(): unknown;
}

function loadIsolatedVm(): Ivm {
  try {
    return createRequire(import.meta.url)('isolated-vm') as Ivm;
  } catch (error) {
    process.stderr.write(
      `isolate host: cannot load isolated-vm (${(error as Error).message.split('\n')[0]}). ` +
        'It is an optional dependency with a native build: run `npm install` with a C++ toolchain, and check `npm install-scripts ls`.\n',
    );
    process.exit(1);
  }
}

const ivm = loadIsolatedVm();

/**
 * Runs in each new isolate before the tenant's module. Defines the shim globals,
 * then returns `bind(namespace)`, which makes the per-request call. The call
 * captures the shim's Response, so a tenant that replaces the global cannot
 * pass off another object as an answer.
 */
const SHIM = String.raw`
class Response {
  constructor(body = null, init = {}) {
    this.status = init.status ?? 200;
    this.statusText = init.statusText ?? '';
    this.headers = {};
    for (const [name, value] of Object.entries(init.headers ?? {})) this.headers[name.toLowerCase()] = String(value);
    this.body = body == null ? '' : String(body);
  }
  get ok() { return this.status >= 200 && this.status < 300; }
  async text() { return this.body; }
}
class URL {
  constructor(input) {
    const m = /^(https?:)\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(String(input));
    if (!m) throw new TypeError('Invalid URL: ' + input + ' (the lab shim parses absolute http(s) URLs only)');
    this.protocol = m[1].toLowerCase();
    const [, hostname, port = ''] = /^(.*?)(?::(\d*))?$/.exec(m[2].toLowerCase());
    this.hostname = hostname;
    this.port = port === (this.protocol === 'https:' ? '443' : '80') ? '' : port;
    this.host = this.port ? hostname + ':' + this.port : hostname;
    this.pathname = m[3] || '/';
    this.search = m[4] && m[4].length > 1 ? m[4] : '';
    this.hash = m[5] && m[5].length > 1 ? m[5] : '';
  }
  get origin() { return this.protocol + '//' + this.host; }
  get href() { return this.origin + this.pathname + this.search + this.hash; }
  toString() { return this.href; }
}
for (const [name, value] of Object.entries({ Response, URL })) {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}
return function bind(namespace) {
  const handler = namespace.default;
  if (typeof handler?.fetch !== 'function') throw new TypeError('the script has no \`export default { fetch(request) { … } }\`');
  return async function call(data) {
    const request = Object.freeze({ method: data.method, url: data.url, headers: Object.freeze(data.headers) });
    const response = await handler.fetch(request);
    if (!(response instanceof Response)) throw new TypeError('fetch returned ' + typeof response + ', not a Response');
    return { status: response.status, headers: { ...response.headers }, body: response.body };
  };
};
`;

interface Tenant {
  source: string;
  isolate: Isolate;
  /** Reference to the shim's `call(data)` for this tenant. */
  call: Reference;
  /** Set when a deploy replaced it, so its in-flight requests are not blamed on the memory limit. */
  replaced: boolean;
}

class IsolateRuntime implements TenantRuntime {
  readonly #limits: LabLimits;
  readonly #tenants = new Map<string, Tenant>();
  /** One rebuild per tenant at a time, however many requests find its isolate disposed. */
  readonly #rebuilds = new Map<string, Promise<Tenant>>();

  constructor(limits: LabLimits) {
    this.#limits = limits;
  }

  has(name: string): boolean {
    return this.#tenants.has(name);
  }

  async deploy(name: string, source: string): Promise<void> {
    const tenant = await this.#load(name, source);
    const previous = this.#tenants.get(name);
    this.#tenants.set(name, tenant);
    if (previous && !previous.isolate.isDisposed) {
      previous.replaced = true;
      previous.isolate.dispose();
    }
  }

  async handle(name: string, request: LabRequest): Promise<LabResponse> {
    let tenant = this.#tenants.get(name);
    if (!tenant) return text(404, `isolate: no tenant "${name}"`);
    if (tenant.isolate.isDisposed) {
      try {
        tenant = await this.#rebuild(name, tenant);
      } catch (error) {
        return text(503, `isolate: tenant "${name}" could not be rebuilt after it passed its memory limit: ${(error as Error).message}`);
      }
    }
    const wallMs = Math.max(1000, this.#limits.cpuMs * 20);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), wallMs);
    });
    try {
      const answer = tenant.call.apply(undefined, [request], {
        timeout: this.#limits.cpuMs,
        arguments: { copy: true },
        result: { promise: true, copy: true },
      }) as Promise<LabResponse>;
      // The timeout covers running code, not a promise the tenant never settles.
      const settled = await Promise.race([answer, late]);
      if (settled === 'late') return text(504, `isolate: tenant "${name}" did not answer within ${wallMs} ms (its promise never settled)`);
      return settled;
    } catch (error) {
      return this.#failure(name, tenant, error as Error);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A tenant whose isolate passed its memory limit gets a fresh one from its source. */
  #rebuild(name: string, disposed: Tenant): Promise<Tenant> {
    let pending = this.#rebuilds.get(name);
    if (!pending) {
      pending = this.#load(name, disposed.source)
        .then((fresh) => {
          // A deploy may have replaced the tenant meanwhile: that one wins.
          if (this.#tenants.get(name) !== disposed) {
            fresh.isolate.dispose();
            return this.#tenants.get(name) ?? Promise.reject(new Error('it was removed'));
          }
          this.#tenants.set(name, fresh);
          return fresh;
        })
        .finally(() => this.#rebuilds.delete(name));
      this.#rebuilds.set(name, pending);
    }
    return pending;
  }

  /** A fresh isolate and context, the shim, then the tenant's module: one tenant's whole state. */
  async #load(name: string, source: string): Promise<Tenant> {
    const isolate = new ivm.Isolate({ memoryLimit: this.#limits.memoryMb });
    try {
      const context = await isolate.createContext();
      const bind = await context.evalClosure(SHIM, [], { result: { reference: true } });
      const module = await isolate.compileModule(source, { filename: `tenant:${name}` });
      await module.instantiate(context, (specifier) => {
        throw new Error(`the script imports "${specifier}"; lab tenants are single modules with no imports`);
      });
      try {
        await module.evaluate({ timeout: this.#limits.cpuMs });
      } catch (error) {
        if (isolate.isDisposed) throw new Error(`its top level passed limits.memoryMb (${this.#limits.memoryMb} MiB)`);
        if (isTimeout(error as Error)) throw new Error(`its top level ran past limits.cpuMs (${this.#limits.cpuMs} ms); move the work into fetch`);
        throw error;
      }
      const call = (await bind.apply(undefined, [module.namespace.derefInto()], { result: { reference: true } })) as Reference;
      return { source, isolate, call, replaced: false };
    } catch (error) {
      if (!isolate.isDisposed) isolate.dispose();
      throw error;
    }
  }

  #failure(name: string, tenant: Tenant, error: Error): LabResponse {
    if (tenant.replaced) return text(503, `isolate: tenant "${name}" was redeployed while this request ran; retry`);
    if (tenant.isolate.isDisposed) {
      return text(503, `isolate: tenant "${name}" passed its memory limit of ${this.#limits.memoryMb} MiB (limits.memoryMb); its isolate was disposed and is rebuilt on the next request`);
    }
    if (isTimeout(error)) {
      return text(503, `isolate: tenant "${name}" was stopped after ${this.#limits.cpuMs} ms (isolate timeout, limits.cpuMs)`);
    }
    return text(500, `isolate: tenant "${name}" threw: ${error.message}`);
  }
}

/** isolated-vm says so only in the message. */
function isTimeout(error: Error): boolean {
  return error.message === 'Script execution timed out.';
}

function text(status: number, message: string): LabResponse {
  return { status, headers: { 'content-type': 'text/plain' }, body: `${message}\n` };
}

serveRuntime(new IsolateRuntime(limitsFromArgv()));

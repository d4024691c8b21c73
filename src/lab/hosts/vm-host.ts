/**
 * The `vm` model's host: every tenant in one Node process, each in its own
 * `node:vm` context. A context is a separate global scope, not a separate heap
 * or thread: tenants share the event loop, the heap and the host's Web classes
 * (Response, Request… are passed in, not copied), so the only limit node:vm can
 * enforce is a timeout on synchronous code. A tenant that exhausts the heap
 * takes the whole process, and every neighbour, with it; that is the model's
 * blast radius, and this host does not hide it.
 *
 * Needs `--experimental-vm-modules` (vm.SourceTextModule). Started by
 * src/lab/models/vm.ts.
 */
import vm from 'node:vm';
import type { LabLimits } from '../models/types.js';
import { limitsFromArgv, serveRuntime, type LabRequest, type LabResponse, type TenantRuntime } from './host-server.js';

interface Tenant {
  context: vm.Context;
  /** The module's default export: `{ fetch(request) }`. */
  handler: { fetch: (request: Request) => unknown };
}

/**
 * The name under which one call's handler and request are put on the tenant's
 * global for the length of the call. The call has to be a script run in the
 * context, because runInContext's timeout is the only thing that can interrupt
 * a synchronous `for (;;) {}`; the property is removed as soon as the call returns.
 */
const CALL_SLOT = '__edgeprocLabCall';
const CALL = new vm.Script(`${CALL_SLOT}.handler.fetch(${CALL_SLOT}.request)`, { filename: 'edgeproc-lab:call' });

class VmRuntime implements TenantRuntime {
  readonly #limits: LabLimits;
  readonly #tenants = new Map<string, Tenant>();

  constructor(limits: LabLimits) {
    this.#limits = limits;
  }

  has(name: string): boolean {
    return this.#tenants.has(name);
  }

  async deploy(name: string, source: string): Promise<void> {
    const context = vm.createContext(tenantGlobals(), {
      name: `tenant ${name}`,
      // As in edge-runtime: no eval or new Function inside a tenant.
      codeGeneration: { strings: false, wasm: false },
    });
    const module = new vm.SourceTextModule(source, { context, identifier: `tenant:${name}` });
    await module.link((specifier) => {
      throw new Error(`the script imports "${specifier}"; lab tenants are single modules with no imports`);
    });
    // The module's top level runs under the same limit as a request.
    try {
      await module.evaluate({ timeout: this.#limits.cpuMs });
    } catch (error) {
      if (isTimeout(error)) throw new Error(`its top level ran past limits.cpuMs (${this.#limits.cpuMs} ms); move the work into fetch`);
      throw error;
    }
    const handler = (module.namespace as { default?: { fetch?: unknown } }).default;
    if (typeof handler?.fetch !== 'function') {
      throw new Error('the script has no `export default { fetch(request) { … } }`');
    }
    this.#tenants.set(name, { context, handler: handler as Tenant['handler'] });
  }

  async handle(name: string, request: LabRequest): Promise<LabResponse> {
    const tenant = this.#tenants.get(name);
    if (!tenant) return text(404, `vm: no tenant "${name}"`);
    let returned: unknown;
    const slot = { handler: tenant.handler, request: new Request(request.url, { method: request.method, headers: request.headers }) };
    Object.defineProperty(tenant.context, CALL_SLOT, { value: slot, configurable: true, enumerable: false });
    try {
      returned = CALL.runInContext(tenant.context, { timeout: this.#limits.cpuMs });
    } catch (error) {
      if (isTimeout(error)) {
        return text(503, `vm: tenant "${name}" was stopped after ${this.#limits.cpuMs} ms (vm timeout, limits.cpuMs)`);
      }
      return text(500, `vm: tenant "${name}" threw: ${describe(error)}`);
    } finally {
      delete (tenant.context as Record<string, unknown>)[CALL_SLOT];
    }
    return toLabResponse(name, returned, this.#limits);
  }
}

/**
 * The minimum the workloads need, taken from the host. They are the host's own
 * objects, so a tenant that patches `Response.prototype` patches it for every
 * tenant and for the host: the vm boundary separates names, not objects.
 */
function tenantGlobals(): Record<string, unknown> {
  return { Response, Request, Headers, URL, TextEncoder, TextDecoder, console };
}

/**
 * The handler's answer, once settled. Only the synchronous part of a handler is
 * under the vm timeout: a promise that never settles would hold the request
 * forever, so awaiting it is bounded by a wall-clock limit instead.
 */
async function toLabResponse(name: string, returned: unknown, limits: LabLimits): Promise<LabResponse> {
  const wallMs = Math.max(1000, limits.cpuMs * 20);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), wallMs);
  });
  try {
    const response = await Promise.race([Promise.resolve(returned), late]);
    if (response === 'late') return text(504, `vm: tenant "${name}" did not answer within ${wallMs} ms (its promise never settled)`);
    if (!(response instanceof Response)) {
      return text(500, `vm: tenant "${name}" returned ${typeof response}, not a Response`);
    }
    const body = await Promise.race([response.text(), late]);
    if (body === 'late') return text(504, `vm: tenant "${name}" did not finish its body within ${wallMs} ms`);
    return { status: response.status, headers: Object.fromEntries(response.headers), body };
  } catch (error) {
    return text(500, `vm: tenant "${name}" threw: ${describe(error)}`);
  } finally {
    clearTimeout(timer);
  }
}

function isTimeout(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT';
}

function text(status: number, message: string): LabResponse {
  return { status, headers: { 'content-type': 'text/plain' }, body: `${message}\n` };
}

/** Errors from a context are not `instanceof Error` here (another realm's Error). */
function describe(error: unknown): string {
  return typeof error === 'object' && error !== null && 'message' in error ? String((error as { message: unknown }).message) : String(error);
}

serveRuntime(new VmRuntime(limitsFromArgv()));

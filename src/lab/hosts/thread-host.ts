/**
 * The thread model's host: one Node process, each tenant on its own
 * `worker_threads` Worker (its own V8 isolate and heap, capped by
 * `resourceLimits`), running thread-tenant.js.
 *
 * A thread's CPU time cannot be read from outside cheaply, so the per-request
 * limit is wall time: a request with no answer after `limits.cpuMs` has the
 * thread terminated, every request in flight on it answered 503, and the next
 * request gets a new thread from the same source. A thread that dies (out of
 * memory, or of its own error) is replaced the same way; the host survives.
 */
import { Worker } from 'node:worker_threads';
import type { LabLimits } from '../models/types.js';
import { limitsFromArgv, serveRuntime, type LabRequest, type LabResponse, type TenantRuntime } from './host-server.js';
import type { ThreadData, ThreadMessage, ThreadRequest } from './thread-tenant.js';

const TENANT_SCRIPT = new URL('./thread-tenant.js', import.meta.url);
/** Booting a thread and loading a module takes tens of ms; this only keeps a stuck top level from hanging a deploy. */
const LOAD_TIMEOUT_MS = 10_000;
/** Small, so that the heap is bounded by `limits.memoryMb` plus a little. */
const YOUNG_GENERATION_MB = 8;

let nextRequestId = 1;

interface Pending {
  resolve(response: LabResponse): void;
  timer: NodeJS.Timeout;
}

/** The host's handle on one worker thread running one tenant's module. */
class TenantThread {
  /** Resolves once the module loaded; rejects with why it could not, or why the thread ended first. */
  readonly loaded: Promise<void>;
  readonly #name: string;
  readonly #limits: LabLimits;
  readonly #worker: Worker;
  readonly #inflight = new Map<number, Pending>();
  #settleLoad: ((error?: Error) => void) | null = null;
  #ended: string | null = null;

  constructor(name: string, source: string, limits: LabLimits) {
    this.#name = name;
    this.#limits = limits;
    this.loaded = new Promise<void>((resolve, reject) => {
      this.#settleLoad = (error) => (error ? reject(error) : resolve());
    });
    // Nobody may be waiting when a thread that loaded long ago ends; that rejection is not an error.
    this.loaded.catch(() => {});
    const loadTimer = setTimeout(() => this.end(`thread: tenant "${name}" did not load within ${LOAD_TIMEOUT_MS} ms`), LOAD_TIMEOUT_MS);
    this.#worker = new Worker(TENANT_SCRIPT, {
      workerData: { source } satisfies ThreadData,
      resourceLimits: { maxOldGenerationSizeMb: limits.memoryMb, maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    this.#worker.on('message', (message: ThreadMessage) => {
      if (message.type === 'response') {
        this.#answer(message.id, { status: message.status, headers: message.headers, body: message.body });
      } else {
        clearTimeout(loadTimer);
        if (message.type === 'loaded') this.#settleLoad?.();
        else this.end(message.message);
      }
    });
    this.#worker.on('error', (error: Error & { code?: string }) => {
      clearTimeout(loadTimer);
      this.end(
        error.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? `thread: tenant "${name}" ran out of memory: its heap reached the limit of ${limits.memoryMb} MB (limits.memoryMb) and its thread was terminated`
          : `thread: tenant "${name}" died: ${error.message}`,
      );
    });
    this.#worker.on('exit', (code) => {
      clearTimeout(loadTimer);
      this.end(`thread: tenant "${name}" exited with code ${code}`);
    });
  }

  get ended(): boolean {
    return this.#ended !== null;
  }

  /** Posts `request` to the thread; resolves with its answer, or with a 503 if the thread is ended first. Hot path. */
  request(request: LabRequest): Promise<LabResponse> {
    if (this.#ended !== null) return Promise.resolve(unavailable(this.#ended));
    const id = nextRequestId++;
    return new Promise<LabResponse>((resolve) => {
      // The answer may already be queued when the timer fires (timers run before
      // messages in an event-loop turn, and a busy host fires them late), so look
      // once more after that turn's messages before calling it a runaway.
      const timer = setTimeout(() => {
        setImmediate(() => {
          if (this.#inflight.has(id)) {
            this.end(`thread: tenant "${this.#name}" was terminated after ${this.#limits.cpuMs} ms without an answer (limits.cpuMs, enforced as wall time)`);
          }
        });
      }, this.#limits.cpuMs);
      this.#inflight.set(id, { resolve, timer });
      this.#worker.postMessage({ id, ...request } satisfies ThreadRequest);
    });
  }

  /** Terminates the thread; every request in flight on it is answered 503 with `reason`. Idempotent. */
  end(reason: string): void {
    if (this.#ended !== null) return;
    this.#ended = reason;
    this.#settleLoad?.(new Error(reason));
    for (const pending of this.#inflight.values()) {
      clearTimeout(pending.timer);
      pending.resolve(unavailable(reason));
    }
    this.#inflight.clear();
    void this.#worker.terminate().catch(() => {});
  }

  #answer(id: number, response: LabResponse): void {
    const pending = this.#inflight.get(id);
    if (!pending) return; // Answered 503 already: the thread was ended while this was on its way.
    this.#inflight.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(response);
  }
}

/** A deployed tenant: its source, and the thread currently running it (replaced when it ends). */
class Tenant {
  readonly #name: string;
  readonly #source: string;
  readonly #limits: LabLimits;
  #thread: TenantThread;

  constructor(name: string, source: string, limits: LabLimits, thread: TenantThread) {
    this.#name = name;
    this.#source = source;
    this.#limits = limits;
    this.#thread = thread;
  }

  async handle(request: LabRequest): Promise<LabResponse> {
    if (this.#thread.ended) this.#thread = new TenantThread(this.#name, this.#source, this.#limits);
    const thread = this.#thread;
    try {
      await thread.loaded;
    } catch (error) {
      return unavailable((error as Error).message);
    }
    return thread.request(request);
  }

  stop(reason: string): void {
    this.#thread.end(reason);
  }
}

class ThreadRuntime implements TenantRuntime {
  readonly #limits: LabLimits;
  readonly #tenants = new Map<string, Tenant>();

  constructor(limits: LabLimits) {
    this.#limits = limits;
  }

  async deploy(name: string, source: string): Promise<void> {
    const thread = new TenantThread(name, source, this.#limits);
    await thread.loaded;
    const previous = this.#tenants.get(name);
    this.#tenants.set(name, new Tenant(name, source, this.#limits, thread));
    previous?.stop(`thread: tenant "${name}" was replaced by a new deploy while this request was in flight`);
  }

  handle(name: string, request: LabRequest): Promise<LabResponse> {
    return this.#tenants.get(name)!.handle(request);
  }

  has(name: string): boolean {
    return this.#tenants.has(name);
  }
}

function unavailable(reason: string): LabResponse {
  return { status: 503, headers: { 'content-type': 'text/plain' }, body: `${reason}\n` };
}

serveRuntime(new ThreadRuntime(limitsFromArgv()));

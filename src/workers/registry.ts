/**
 * The workers the daemon serves: name → current script version. Deploying a
 * new script bumps the version; the broker notices and drains old instances.
 */
import { EdgeprocError } from '../errors.js';
import type { Limits } from '../limits.js';

export interface WorkerScript {
  name: string;
  version: number;
  /** Shown in stack traces and load errors. */
  filename: string;
  source: string;
  env: Record<string, unknown>;
  /** Its KV bindings: the name in env → the namespace (a wrangler `kv_namespaces` id) whose data it sees. */
  kv: Readonly<Record<string, string>>;
  /** The daemon's limits with this worker's own overrides on top. */
  limits: Limits;
  deployedAt: string;
}

/** Worker names become Host labels: lower-case letters, digits and dashes. */
export const WORKER_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkWorkerName(name: string): string {
  if (!WORKER_NAME.test(name)) {
    throw new EdgeprocError(
      'ERR_WORKER_NAME',
      `invalid worker name "${name}": use 1–63 lower-case letters, digits and dashes (it becomes a host label)`,
    );
  }
  return name;
}

export class WorkerRegistry {
  readonly #workers = new Map<string, WorkerScript>();
  #versions = 0;

  get(name: string): WorkerScript | undefined {
    return this.#workers.get(name);
  }

  has(name: string): boolean {
    return this.#workers.has(name);
  }

  list(): WorkerScript[] {
    return [...this.#workers.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get size(): number {
    return this.#workers.size;
  }

  /** Prepares the next version of a worker without publishing it. */
  prepare(
    name: string,
    source: string,
    filename: string,
    env: Record<string, unknown>,
    limits: Limits,
    kv: Readonly<Record<string, string>> = {},
  ): WorkerScript {
    return {
      name: checkWorkerName(name),
      version: ++this.#versions,
      filename,
      source,
      env,
      kv,
      limits,
      deployedAt: new Date().toISOString(),
    };
  }

  publish(script: WorkerScript): void {
    this.#workers.set(script.name, script);
  }

  remove(name: string): boolean {
    return this.#workers.delete(name);
  }
}

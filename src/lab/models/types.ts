/**
 * One isolation model of the lab: a way to run Workers-style tenants. Every
 * model is driven the same way (deploy a script as a tenant, send it HTTP
 * requests on loopback, read the memory of its processes, dispose), so the
 * numbers differ only by the model.
 */
export type ModelName = 'process-pool' | 'process-fresh' | 'thread' | 'vm' | 'isolate' | 'workerd';

export interface Model {
  readonly name: ModelName;
  /** The boundary between tenants, in one line (shown in the table). */
  readonly boundary: string;
  /** What the model lacks or was given to run the workloads, if anything (shown in the table). */
  readonly notes: string;
  /** Starts the model with no tenant. Throws ModelUnavailableError when it cannot run here. */
  start(limits: LabLimits): Promise<RunningModel>;
}

/** The limits the lab asks every model to enforce, where it can. */
export interface LabLimits {
  /** CPU (or, where CPU cannot be measured, wall) time per request. */
  cpuMs: number;
  /** Heap per tenant. */
  memoryMb: number;
}

export interface RunningModel {
  /**
   * Makes `source` (Workers module syntax) the tenant `name`. Resolves when the
   * model accepts requests for it; the lab times deploy plus the first request
   * as the cold start.
   */
  deploy(name: string, source: string): Promise<void>;
  /** Where to send HTTP requests for tenant `name`. */
  target(name: string): { url: string; headers: Record<string, string> };
  /** The processes whose memory counts as this model's (host, children). */
  pids(): number[];
  /**
   * Optional: resolves once the model is back at rest after a deploy (edgeproc's warm
   * pool refilled), so that every cold-start sample starts from the same state.
   */
  settle?(): Promise<void>;
  /** Stops everything the model started; no process may outlive it. */
  dispose(): Promise<void>;
}

export class ModelUnavailableError extends Error {
  readonly code = 'ERR_MODEL_UNAVAILABLE';
}

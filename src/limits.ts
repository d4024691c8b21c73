/**
 * Every limit and default of the daemon, in one frozen object built and
 * validated here. Callers pass overrides; a wrong value fails with a message
 * naming the key, what was expected and what was received.
 */
import { EdgeprocError } from './errors.js';

export interface Limits {
  /** Generic children kept booted and waiting for a script. */
  warmPoolSize: number;
  /** Most live instances (children) one worker may have. */
  maxInstancesPerWorker: number;
  /** In-flight requests on every instance of a worker before another instance is started. */
  scaleOutConcurrency: number;
  /** An instance with nothing in flight for this long is drained and stopped. */
  idleTimeoutMs: number;
  /** How long draining (SIGTERM, redeploy, eviction) waits for in-flight work before killing. */
  drainTimeoutMs: number;
  /** How long a child may take to boot before it counts as failed. */
  bootTimeoutMs: number;
  /** Largest script accepted by deploy or from disk. */
  scriptBytes: number;
  /** Largest request body the daemon accepts (413 above). */
  requestBodyBytes: number;
  /**
   * Largest response head a worker may return: status line and headers, each header counted as
   * name, value and 4 bytes of ": " and CRLF. Workers' limit is 128 KB; past it the client gets
   * 500 instead of a head its HTTP parser may refuse mid-stream.
   */
  responseHeaderBytes: number;
  /** Child boots that fail in a row before the pool stops respawning for a while. */
  bootFailuresBeforeBackoff: number;
  /** CPU time one request may use, its waitUntil work included (Workers: 10 ms free, 30 s paid). */
  cpuMs: number;
  /** CPU time a script's global scope may use while it loads. */
  startupCpuMs: number;
  /** Memory of one instance: its V8 heap limit, and the resident anonymous memory the watchdog allows. */
  memoryMb: number;
  /** fetch() calls one request may make; the next one rejects inside the tenant. */
  subrequests: number;
  /** KV operations (get, put, delete, list) one request may make, as on Workers; the next one rejects inside the tenant. */
  kvOperations: number;
  /** Bytes of Cache API entries kept for one worker, all its caches together; least recently used entries go first. */
  cacheBytes: number;
  /** How long a request may wait for its response before it gets 504. */
  wallMs: number;
  /** How long waitUntil work may run after its response; then it is abandoned (and logged). */
  waitUntilMs: number;
  /** Requests in flight for one worker, all instances together; past it, 503 with Retry-After at once. */
  maxInflightPerWorker: number;
  /**
   * WebSockets open for one worker (answered with a 101), all instances together; past it, an
   * upgrade gets 503 with Retry-After at once. An open socket is not work waiting: it counts here,
   * not against maxInflightPerWorker, so a chat's idle sockets do not shed its plain requests.
   */
  maxWebSocketsPerWorker: number;
  /** Requests an instance serves before it is recycled gracefully (0: never). */
  recycleAfterRequests: number;
  /** Resident anonymous memory at which a busy instance is recycled gracefully, before the hard memory limit (0: never). */
  recycleRssMb: number;
  /** How often the watchdog samples the CPU time and memory of children serving requests. */
  watchdogIntervalMs: number;
}

/**
 * CPU an instance with nothing in flight may use beyond the per-request limit before the
 * watchdog stops it (src/pool/watchdog.ts): the runtime's own housekeeping. 8-12 s after
 * a burst of requests, V8's memory reducer collects the heap to give memory back, up to
 * three GCs: 50-70 ms of a hello worker's child here, which the bare limit of 50 ms had
 * the watchdog stop as an idle runaway (four times in one night's bench logs). Turning
 * the reducer off would keep a burst's garbage resident until eviction (PSS +0.02-0.05 MiB
 * per tenant in bench/memory, past its target). A timer left running flat out still
 * passes this within the first idle sample.
 */
export const IDLE_HOUSEKEEPING_MS = 200;

export const DEFAULT_LIMITS: Limits = Object.freeze({
  warmPoolSize: 2,
  maxInstancesPerWorker: 4,
  scaleOutConcurrency: 64,
  idleTimeoutMs: 60_000,
  drainTimeoutMs: 30_000,
  bootTimeoutMs: 10_000,
  scriptBytes: 10 * 1024 * 1024,
  requestBodyBytes: 100 * 1024 * 1024,
  responseHeaderBytes: 128 * 1024,
  bootFailuresBeforeBackoff: 3,
  cpuMs: 50,
  startupCpuMs: 1000,
  memoryMb: 128,
  subrequests: 50,
  kvOperations: 1000,
  cacheBytes: 64 * 1024 * 1024,
  wallMs: 60_000,
  waitUntilMs: 30_000,
  maxInflightPerWorker: 1024,
  maxWebSocketsPerWorker: 10_000,
  watchdogIntervalMs: 5,
  // A busy instance serves ~17k req/s here: 100k recycled it every 6 s under load, a cold start each time.
  recycleAfterRequests: 1_000_000,
  recycleRssMb: 96, // three quarters of memoryMb
});

const MINIMUM: Partial<Record<keyof Limits, number>> = {
  warmPoolSize: 0,
  maxInstancesPerWorker: 1,
  scaleOutConcurrency: 1,
  bootFailuresBeforeBackoff: 1,
  subrequests: 0,
  kvOperations: 0,
  recycleAfterRequests: 0,
  recycleRssMb: 0,
};

export function buildLimits(overrides: Partial<Record<keyof Limits, unknown>> = {}): Limits {
  const limits: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) {
      throw new EdgeprocError('ERR_CONFIG', `unknown limit "${key}"; known limits: ${Object.keys(DEFAULT_LIMITS).join(', ')}`);
    }
    const min = MINIMUM[key as keyof Limits] ?? 1;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw new EdgeprocError(
        'ERR_CONFIG',
        `limits.${key} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`,
      );
    }
    limits[key] = value;
  }
  // Recycle gracefully at three quarters of the memory limit unless told otherwise.
  if (overrides.recycleRssMb === undefined && overrides.memoryMb !== undefined) {
    limits.recycleRssMb = Math.floor(limits.memoryMb! * 0.75);
  }
  return Object.freeze(limits) as unknown as Limits;
}

/** The limits a single worker may set for itself (admin API deploy, later its config). */
export const PER_WORKER_LIMITS = [
  'cpuMs',
  'startupCpuMs',
  'memoryMb',
  'subrequests',
  'kvOperations',
  'cacheBytes',
  'wallMs',
  'waitUntilMs',
  'maxInflightPerWorker',
  'maxWebSocketsPerWorker',
  'recycleAfterRequests',
  'recycleRssMb',
] as const satisfies ReadonlyArray<keyof Limits>;

/** A worker's limits: the daemon's, with the worker's own overrides validated on top. */
export function workerLimits(global: Limits, overrides: Record<string, unknown>): Limits {
  const merged: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(overrides)) {
    if (!(PER_WORKER_LIMITS as readonly string[]).includes(key)) {
      throw new EdgeprocError(
        'ERR_CONFIG',
        `"${key}" is not a limit a worker can set; per-worker limits: ${PER_WORKER_LIMITS.join(', ')}`,
      );
    }
    merged[key] = value;
  }
  const base: Record<string, unknown> = { ...global };
  // Without its own recycle threshold, a worker with its own memory limit recycles at three quarters of it.
  if (merged.memoryMb !== undefined && merged.recycleRssMb === undefined) delete base.recycleRssMb;
  return buildLimits({ ...base, ...merged } as Partial<Record<keyof Limits, unknown>>);
}

/**
 * Workers KV's own limits: part of the API a tenant codes against, not a knob.
 * https://developers.cloudflare.com/kv/platform/limits/
 */
export const KV_LIMITS = Object.freeze({
  keyBytes: 512,
  valueBytes: 25 * 1024 * 1024,
  metadataBytes: 1024,
  minExpirationTtlSeconds: 60,
  listLimit: 1000,
});

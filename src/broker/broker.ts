/**
 * The broker: for a worker name, finds a live instance (or specialises a warm
 * child), dispatches the request on it, and keeps each worker's set of
 * instances in shape — scale out when busy, drain old versions after a
 * deploy, evict idle instances.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { IdTable } from '../../protocol/id-table.js';
import type { UpgradeRequest } from './websocket-bridge.js';
import { EdgeprocError, ScriptLoadError, type ScriptLoadFailure } from '../errors.js';
import { IDLE_HOUSEKEEPING_MS, type Limits } from '../limits.js';
import type { Logger } from '../log.js';
import { childCpuWorth, type Exchange, type Instance, type LoadResult } from '../pool/instance.js';
import { Watchdog, type Breach } from '../pool/watchdog.js';
import { BREACH_PENALTY_MS } from '../pool/priority.js';
import type { WarmPool } from '../pool/pool.js';
import { CodeCaches } from '../workers/code-cache.js';
import type { WorkerRegistry, WorkerScript } from '../workers/registry.js';
import type { LoadMessage } from '../../protocol/messages.js';
import { findSyntaxError } from '../workers/syntax.js';
import { NO_METRICS, type BreachKind, type BrokerMetrics } from '../observability/metrics.js';
import { HttpExchange } from './exchange.js';
import { ScheduledExchange, type ScheduledOutcome } from '../scheduled/exchange.js';
import { bodyTooLargeReason, memoryReason, sendErrorResponse } from './outcome.js';

/** The instances serving one worker. */
class WorkerGroup {
  readonly instances: Instance[] = [];
  /** A specialisation under way, shared by every request that arrives meanwhile. */
  pending: Promise<Instance> | null = null;
  /** The last load failure of the current version, and when to try loading it again. */
  failure: { version: number; error: ScriptLoadError; retryAt: number; attempts: number } | null = null;
  requests = 0;
  errors = 0;
  coldStarts = 0;
  /** Client requests of this worker not yet answered (bounded by maxInflightPerWorker). */
  inflight = 0;
  /** Its requests answered with a WebSocket still open (bounded by maxWebSocketsPerWorker, not counted in inflight). */
  webSockets = 0;
  /** CPU of its settled requests and scheduled runs (requestCpuMs). */
  cpuMs = 0;
  limitBreaches = 0;
  /** When one of its instances was last stopped for a limit (performance.now()). */
  lastBreachAt = -Infinity;

  constructor(readonly name: string) {}
}

/**
 * Whether a worker's instances are in their penalty after a limit stopped one of them
 * (priority.ts, BREACH_PENALTY_MS): children booted for it, and each of its requests, run
 * at background priority. Per request: one comparison for a worker that never breached.
 */
function penalised(group: WorkerGroup): boolean {
  return group.limitBreaches > 0 && performance.now() - group.lastBreachAt < BREACH_PENALTY_MS;
}

export interface WorkerStats {
  name: string;
  version: number;
  instances: number;
  /** Process ids of those instances, to watch them from outside (top, /proc). */
  pids: number[];
  inflight: number;
  /** WebSockets open (not counted in inflight). */
  webSockets: number;
  requests: number;
  errors: number;
  coldStarts: number;
  /** Bytes of the V8 code cache its instances compile the script from (0: none; src/workers/code-cache.ts). */
  codeCacheBytes: number;
  /** CPU of this worker's requests, in total, each counted once settled as requestCpuMs says. */
  cpuMs: number;
  limitBreaches: number;
}

let requestCounter = 0;
const requestPrefix = Math.floor(Math.random() * 0xffffffff)
  .toString(16)
  .padStart(8, '0');

export function nextRequestId(): string {
  return `${requestPrefix}${(++requestCounter).toString(16).padStart(8, '0')}`;
}

export interface BrokerOptions {
  /** Maps a bundled worker's stack frames back to its sources (projects/source-maps.ts). */
  rewriteStack?: (text: string) => string;
  /** Counts requests, cold starts and breaches where they are accounted (observability/metrics.ts). */
  metrics?: BrokerMetrics;
  /** `--cf`: the fields every incoming request's `request.cf` starts from. */
  cf?: Readonly<Record<string, unknown>> | null;
  /** `--no-code-cache`: false, and every instance compiles its script from scratch. */
  codeCache?: boolean;
}

export class Broker {
  readonly #pool: WarmPool;
  readonly #registry: WorkerRegistry;
  readonly #limits: Limits;
  readonly #log: Logger;
  readonly #metrics: BrokerMetrics;
  readonly #groups = new Map<string, WorkerGroup>();
  /** By HttpExchange.serial; not a Set, see IdTable. */
  readonly #inflight = new IdTable<HttpExchange>();
  readonly #draining = new Set<Promise<void>>();
  readonly #idleTimer: NodeJS.Timeout;
  #idleWaiters: Array<() => void> = [];

  readonly #watchdog: Watchdog;
  /** Why a limit stopped an instance while it loaded its script, for the load failure it becomes. */
  readonly #loadBreaches = new WeakMap<Instance, string>();

  readonly #rewriteStack: ((text: string) => string) | undefined;
  readonly #cf: Readonly<Record<string, unknown>> | null;
  readonly #codeCaches: CodeCaches;

  constructor(pool: WarmPool, registry: WorkerRegistry, limits: Limits, log: Logger, options: BrokerOptions = {}) {
    this.#rewriteStack = options.rewriteStack;
    this.#cf = options.cf ?? null;
    this.#codeCaches = new CodeCaches(options.codeCache ?? true);
    this.#watchdog = new Watchdog(limits, (instance, breach) => this.#onBreach(instance, breach));
    this.#pool = pool;
    pool.onWarm((instance) => this.#watchdog.prepare(instance));
    this.#registry = registry;
    this.#limits = limits;
    this.#log = log;
    this.#metrics = options.metrics ?? NO_METRICS;
    this.#idleTimer = setInterval(() => this.#evictIdle(), Math.min(1000, limits.idleTimeoutMs));
    this.#idleTimer.unref();
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  // Hot path: one call per request.
  handle(req: IncomingMessage, res: ServerResponse, workerName: string, url: string, upgrade?: UpgradeRequest): void {
    const requestId = nextRequestId();
    const script = this.#registry.get(workerName);
    if (!script) {
      sendErrorResponse(res, 404, `No worker named "${workerName}".`, requestId);
      return;
    }
    const group = this.#group(workerName);
    group.requests++;
    const limits = script.limits;
    if (group.inflight >= limits.maxInflightPerWorker) {
      // Shed at once: the bound is what keeps a flood from growing the daemon's memory.
      this.#shed(group, req, res, requestId, 'maxInflightPerWorker', group.inflight, limits.maxInflightPerWorker,
        `is overloaded: ${group.inflight} requests are already in flight (limit ${limits.maxInflightPerWorker}, --max-inflight)`);
      return;
    }
    if (upgrade && group.webSockets >= limits.maxWebSocketsPerWorker) {
      this.#shed(group, req, res, requestId, 'maxWebSocketsPerWorker', group.webSockets, limits.maxWebSocketsPerWorker,
        `has ${group.webSockets} WebSockets open already (limit ${limits.maxWebSocketsPerWorker}, --max-websockets)`);
      return;
    }
    group.inflight++;
    const exchange = new HttpExchange(req, res, upgrade ?? null, {
      worker: workerName,
      requestId,
      log: this.#log,
      limits,
      rewriteStack: this.#rewriteStack,
      // Open, it is no longer work waiting: it leaves the in-flight count for the sockets' own.
      onWebSocket: () => {
        group.inflight--;
        group.webSockets++;
      },
      onDone: (done) => {
        this.#inflight.delete(done.serial);
        if (done.isWebSocket) group.webSockets--;
        else group.inflight--;
        if (done.status >= 500) group.errors++;
        // A fresh instance's first requests are not checked when dispatched (others may be waiting
        // for the same instance): with --recycle-after 1 it would serve two.
        if (done.instance) this.#recycleIfDue(done.instance, limits);
        // A WebSocket's latency is its handshake's: the socket's whole life is in the log line.
        this.#metrics.request(workerName, done.status, done.isWebSocket ? done.handshakeMs : done.wallMs);
        if (this.#inflight.size === 0) this.#notifyIdle();
      },
      // The accounting line, one per request, once its waitUntil work is over too (as Workers
      // reports an invocation's CPU): the watchdog's CPU from outside beside the child's own count.
      onAccount: (done, childCpuMs) => {
        if (done.instance) this.#watchdog.release(done.instance);
        const cpuMs = requestCpuMs(done.cpuMs, childCpuMs, limits.cpuMs);
        group.cpuMs += cpuMs;
        this.#metrics.requestCpu(workerName, cpuMs);
        this.#log.request({
          worker: workerName,
          requestId,
          instance: done.instanceId,
          status: done.status,
          wallMs: Math.round(done.wallMs * 100) / 100,
          cpuMs: Math.round(done.cpuMs * 100) / 100,
          childCpuMs: childCpuMs === null ? null : Math.round(childCpuMs * 100) / 100,
        });
      },
      // The abandoned handler stays in flight in the child, where nothing can take it back:
      // it would count as busy forever and make every drain wait. Replace the instance;
      // the other requests on it finish first.
      onWallTimeout: (instance) => {
        this.#metrics.breach(workerName, 'wall');
        this.#recycle(instance, `a request on it did not respond within ${limits.wallMs} ms (wallMs); its handler may still be running`);
      },
    });
    this.#inflight.set(exchange.serial, exchange);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > this.#limits.requestBodyBytes) {
      exchange.fail(413, bodyTooLargeReason(this.#limits.requestBodyBytes));
      req.resume();
      return;
    }
    // An upgrade's connection carries the new protocol after the head, never a body.
    const hasBody = !upgrade && (req.headers['transfer-encoding'] !== undefined || declared > 0);
    const instance = this.#pick(group, script);
    if (instance) {
      // Watched first: the watchdog looks at what the child is doing before the request reaches it.
      this.#watchdog.watch(instance, penalised(group));
      exchange.start(instance, url, hasBody);
      this.#recycleIfDue(instance, limits);
      return;
    }
    this.#specialise(group, script).then(
      (fresh) => {
        exchange.start(fresh, url, hasBody);
        this.#watchdog.watch(fresh, penalised(group));
      },
      (error: Error) => {
        if (error instanceof ScriptLoadError) {
          exchange.fail(loadFailureStatus(error), loadFailureReason(error, script));
        } else {
          exchange.fail(503, `No instance is available for worker "${workerName}": ${error.message}`);
        }
      },
    );
  }

  /** A request turned away at once because its worker is at a bound: 503 with Retry-After, logged and counted. */
  #shed(group: WorkerGroup, req: IncomingMessage, res: ServerResponse, requestId: string, limit: string, value: number, max: number, what: string): void {
    group.errors++;
    sendErrorResponse(res, 503, `Worker "${group.name}" ${what}. Retry shortly.`, requestId, { 'retry-after': '1' });
    this.#log.warn('limit exceeded', { worker: group.name, requestId, limit, value, max });
    this.#metrics.request(group.name, 503, 0);
    this.#metrics.requestCpu(group.name, 0);
    this.#metrics.breach(group.name, 'overload');
    req.resume();
  }

  /**
   * Runs a worker's scheduled handler once, on a live instance or a fresh one (pool hit or
   * miss) as a request would be, under the same limits. Resolves with the outcome, never
   * rejects; writes one accounting line per run, and a warn line when it failed.
   */
  runScheduled(workerName: string, cron: string, scheduledTime: number): Promise<ScheduledOutcome> {
    const requestId = nextRequestId();
    return new Promise((resolve) => {
      const script = this.#registry.get(workerName);
      const limits = script?.limits ?? this.#limits;
      const exchange = new ScheduledExchange({
        worker: workerName,
        cron,
        scheduledTime,
        requestId,
        limits,
        rewriteStack: this.#rewriteStack,
        onDone: (outcome) => {
          const group = this.#groups.get(workerName);
          if (group) {
            group.cpuMs += requestCpuMs(outcome.cpuMs, outcome.childCpuMs, limits.cpuMs);
            if (!outcome.ok) group.errors++;
          }
          // The accounting line: one per scheduled run, as `request` is one per request.
          this.#log.info('scheduled', {
            worker: workerName,
            cron,
            requestId,
            instance: exchange.instanceId,
            outcome: outcome.ok ? 'ok' : 'error',
            wallMs: Math.round(outcome.wallMs * 100) / 100,
            cpuMs: Math.round(outcome.cpuMs * 100) / 100,
            childCpuMs: outcome.childCpuMs === null ? null : Math.round(outcome.childCpuMs * 100) / 100,
          });
          if (!outcome.ok) {
            this.#log.warn('scheduled event failed', {
              worker: workerName,
              cron,
              requestId,
              error: outcome.error ?? undefined,
              stack: exchange.stack ?? undefined,
            });
          }
          resolve(outcome);
        },
        onWallTimeout: (instance) => {
          this.#recycle(instance, `a scheduled event on it did not finish within ${limits.wallMs} ms (wallMs); its handler may still be running`);
        },
      });
      if (!script) {
        exchange.fail(404, `No worker named "${workerName}".`);
        return;
      }
      const group = this.#group(workerName);
      const instance = this.#pick(group, script);
      if (instance) {
        this.#watchdog.watch(instance, penalised(group));
        exchange.start(instance);
        return;
      }
      this.#specialise(group, script).then(
        (fresh) => {
          exchange.start(fresh);
          this.#watchdog.watch(fresh, penalised(group));
        },
        (error: Error) =>
          exchange.fail(503, error instanceof ScriptLoadError ? loadFailureReason(error, script) : `No instance is available for worker "${workerName}": ${error.message}`),
      );
    });
  }

  /**
   * Loads `script` into a warm child and waits for the verdict. On success the
   * child becomes the worker's first instance of the new version; on failure it
   * is discarded and nothing else changes.
   */
  async deploy(script: WorkerScript): Promise<{ loadMs: number; syntax: string }> {
    const instance = await this.#pool.acquire(script.limits.memoryMb);
    instance.limits = script.limits;
    try {
      const loading = this.#load(instance, script);
      this.#watchdog.watch(instance);
      const loaded = await loading;
      if ((this.#registry.get(script.name)?.version ?? 0) > script.version) {
        // A later deploy of this worker finished loading first: it stays live; this one is already out of date.
        instance.dispose();
        return loaded;
      }
      this.#registry.publish(script);
      const group = this.#group(script.name);
      this.#retire(group, (i) => i.version !== script.version, `version ${script.version} was deployed`);
      group.instances.push(instance);
      this.#watch(group, instance);
      return loaded;
    } catch (error) {
      instance.dispose();
      const failure = (error as { failure?: ScriptLoadFailure }).failure;
      if (failure) throw this.#limitFailure(instance, new ScriptLoadError(script.name, script.filename, locate(failure, script)));
      throw error;
    }
  }

  /** Removes a worker: no new requests; its instances drain. */
  remove(name: string): boolean {
    const existed = this.#registry.remove(name);
    const group = this.#groups.get(name);
    if (group) {
      this.#retire(group, () => true, 'the worker was removed');
      this.#groups.delete(name);
    }
    return existed;
  }

  stats(): WorkerStats[] {
    return this.#registry.list().map((script) => this.#statsOf(script));
  }

  /** One worker's figures, or undefined if no such worker is deployed (without building everyone's). */
  statsOf(name: string): WorkerStats | undefined {
    const script = this.#registry.get(name);
    return script && this.#statsOf(script);
  }

  #statsOf(script: WorkerScript): WorkerStats {
    const group = this.#groups.get(script.name);
    const live = group?.instances ?? [];
    return {
      name: script.name,
      version: script.version,
      instances: live.length,
      pids: live.flatMap((i) => (i.pid ? [i.pid] : [])),
      inflight: live.reduce((n, i) => n + i.inflight, 0),
      webSockets: group?.webSockets ?? 0,
      requests: group?.requests ?? 0,
      errors: group?.errors ?? 0,
      coldStarts: group?.coldStarts ?? 0,
      codeCacheBytes: this.#codeCaches.bytes(script),
      cpuMs: Math.round(group?.cpuMs ?? 0),
      limitBreaches: group?.limitBreaches ?? 0,
    };
  }

  /** Every instance serving a worker now. */
  instances(): Instance[] {
    return [...this.#groups.values()].flatMap((g) => g.instances);
  }

  /** Resolves when no client request is in flight (or after `timeoutMs`). */
  async idle(timeoutMs: number): Promise<void> {
    if (this.#inflight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Closes every WebSocket open through the daemon with 1001 (going away): a drain cannot wait
   * for sockets that live as long as their clients do. Their requests then end as usual (the
   * workers' close handlers and waitUntil work run within the drain).
   */
  closeWebSockets(reason: string): void {
    for (const exchange of this.#inflight.values()) exchange.goAway(reason);
  }

  /** Ends every request still in flight with `status` (a drain that ran out of time). */
  abortInflight(status: number, reason: string): void {
    for (const exchange of this.#inflight.values()) exchange.fail(status, reason);
  }

  /** Drains every instance (waitUntil work gets its grace period), bounded by drainTimeoutMs. */
  async close(): Promise<void> {
    clearInterval(this.#idleTimer);
    this.#watchdog.stop();
    for (const group of this.#groups.values()) this.#retire(group, () => true, 'the daemon is shutting down');
    await Promise.all(this.#draining);
  }

  // Hot path: choose the least-loaded live instance; start another in the background when all are busy.
  #pick(group: WorkerGroup, script: WorkerScript): Instance | null {
    let best: Instance | null = null;
    for (const instance of group.instances) {
      if (instance.state !== 'specialised' || instance.version !== script.version) continue;
      if (!best || instance.inflight < best.inflight) best = instance;
    }
    if (
      best &&
      best.inflight >= this.#limits.scaleOutConcurrency &&
      group.instances.length < this.#limits.maxInstancesPerWorker &&
      !group.pending
    ) {
      this.#specialise(group, script).catch(() => {});
    }
    return best;
  }

  #specialise(group: WorkerGroup, script: WorkerScript): Promise<Instance> {
    if (group.pending) return group.pending;
    const failed = group.failure;
    if (failed && failed.version === script.version && Date.now() < failed.retryAt) {
      // Do not burn a warm child per request on a script that just failed to load.
      return Promise.reject(failed.error);
    }
    const pending = (async () => {
      const instance = await this.#pool.acquire(script.limits.memoryMb, penalised(group));
      instance.limits = script.limits;
      group.coldStarts++;
      this.#metrics.coldStart(script.name, this.#pool.handedOutWarm(instance) ? 'pool_hit' : 'pool_miss');
      // Requests are dispatched right behind the Load frame, without waiting for Loaded: the
      // child handles frames in order, so a cold start costs no extra round trip (on this
      // machine a round trip to an idle child is ~1 ms, half the cold-start budget).
      const loaded = this.#load(instance, script);
      this.#watchdog.watch(instance);
      group.instances.push(instance);
      this.#watch(group, instance);
      loaded.then(
        () => {
          if (group.failure?.version === script.version) group.failure = null;
        },
        (error: unknown) => {
          this.#drop(group, instance);
          const loadError = this.#loadFailed(group, script, error, instance);
          const reason =
            loadError instanceof ScriptLoadError
              ? loadFailureReason(loadError, script)
              : `Worker "${script.name}" could not be started: ${loadError.message}`;
          instance.failExchanges(loadError instanceof ScriptLoadError ? loadFailureStatus(loadError) : 503, reason);
          instance.dispose();
        },
      );
      return instance;
    })();
    group.pending = pending;
    const clear = () => {
      if (group.pending === pending) group.pending = null;
    };
    pending.then(clear, clear);
    return pending;
  }

  #loadFailed(group: WorkerGroup, script: WorkerScript, error: unknown, instance: Instance): Error {
    const failure = (error as { failure?: ScriptLoadFailure }).failure;
    if (!failure) return error as Error;
    const loadError = this.#limitFailure(instance, new ScriptLoadError(script.name, script.filename, locate(failure, script)));
    // A script that does not parse never will; one that threw may depend on something transient.
    // A child that died while loading may have been killed from outside: the next request
    // tries again at once, and only a second death in a row starts the back-off.
    const attempts = group.failure?.version === script.version ? group.failure.attempts + 1 : 1;
    const retryAt =
      failure.kind === 'SyntaxError'
        ? Infinity
        : failure.kind === 'Died' && attempts === 1
          ? 0
          : Date.now() + Math.min(60_000, 1000 * 2 ** (attempts - (failure.kind === 'Died' ? 2 : 1)));
    group.failure = { version: script.version, error: loadError, retryAt, attempts };
    this.#log.error('worker failed to load', {
      worker: script.name,
      error: failure.message,
      line: loadError.failure.line,
      column: loadError.failure.column,
    });
    return loadError;
  }

  #load(instance: Instance, script: WorkerScript): Promise<LoadResult> {
    const { cache, make } = this.#codeCaches.forLoad(script);
    const loaded = instance.load(this.#loadMessage(script, make), cache);
    loaded.then(
      (result) => {
        this.#codeCaches.loaded(script, result);
        this.#log.debug('script loaded', {
          worker: script.name,
          version: script.version,
          instance: instance.id,
          loadMs: Math.round(result.loadMs * 100) / 100,
          codeCache: result.madeCodeCache ? 'made' : result.codeCache,
        });
      },
      () => {},
    );
    return loaded;
  }

  #loadMessage(script: WorkerScript, makeCodeCache: boolean): LoadMessage {
    return {
      worker: script.name,
      version: script.version,
      filename: script.filename,
      source: script.source,
      env: script.env,
      bindings: Object.keys(script.kv).map((name) => ({ name, kind: 'kv' as const })),
      waitUntilMs: script.limits.waitUntilMs,
      cf: this.#cf,
      makeCodeCache,
    };
  }

  #watch(group: WorkerGroup, instance: Instance): void {
    instance.exited.then((outcome) => {
      this.#drop(group, instance);
      // Exit code 0 is a drained child leaving as asked (a tenant cannot exit on its own): not worth a warning.
      if (!outcome.killed && instance.worker && outcome.exitCode !== 0) {
        this.#log.warn('instance exited', { worker: instance.worker, instance: instance.id, ...outcome });
      }
    });
  }

  #drop(group: WorkerGroup, instance: Instance): void {
    const at = group.instances.indexOf(instance);
    if (at >= 0) group.instances.splice(at, 1);
  }

  /** Retires an instance that served its --recycle-after share (no new requests; in-flight ones finish). */
  #recycleIfDue(instance: Instance, limits: Limits): void {
    const { recycleAfterRequests } = limits;
    if (recycleAfterRequests > 0 && instance.served >= recycleAfterRequests) {
      this.#recycle(instance, `it served ${instance.served} requests (recycleAfterRequests)`);
    }
  }

  /**
   * Replaces an instance gracefully: no new requests go to it; its in-flight
   * requests and their waitUntil work finish (bounded by drainTimeoutMs); then it exits.
   */
  #recycle(instance: Instance, why: string): void {
    const group = instance.worker ? this.#groups.get(instance.worker) : undefined;
    if (!group || !group.instances.includes(instance)) return;
    this.#log.info('recycling instance', { worker: instance.worker ?? undefined, instance: instance.id, reason: why });
    this.#retire(group, (i) => i === instance, why);
  }

  /**
   * Takes matching instances out of service and drains them in the background. `why`
   * completes "Worker W's instance was being replaced (…)" for a request the drain
   * timeout cuts short.
   */
  #retire(group: WorkerGroup, which: (instance: Instance) => boolean, why: string): void {
    const timeoutMs = this.#limits.drainTimeoutMs;
    const outOfTime = (): [number, string] => [
      503,
      `Worker "${group.name}"'s instance was being replaced (${why}) and this request did not finish within the drain timeout of ${timeoutMs} ms (--drain-timeout). Retry; a new instance will serve it.`,
    ];
    for (const instance of group.instances.filter(which)) {
      this.#drop(group, instance);
      const drained = instance.drain(timeoutMs, outOfTime);
      this.#draining.add(drained);
      drained.finally(() => this.#draining.delete(drained));
    }
  }

  /**
   * A limit breach stops the instance: in-flight requests cannot be pulled out of a
   * child that does not yield. Every request on it gets 503 naming the limit and the
   * measured value; the next request gets a fresh instance.
   */
  #onBreach(instance: Instance, breach: Breach): void {
    if (instance.disposed) return;
    if (breach.limit === 'recycleRssMb') {
      this.#recycle(instance, `its memory reached ${Math.round(breach.valueMb)} MiB (recycleRssMb ${(instance.limits ?? this.#limits).recycleRssMb})`);
      return;
    }
    if (breach.limit === 'lateCpuMs') {
      // The requests go on: logged, so that a charge taken back is never silent; a warning when
      // the request would have been stopped with it (the limit not applied), else a debug line:
      // a daemon held up for a moment waives small charges of every busy child.
      const wouldStop = breach.valueMs > (instance.limits ?? this.#limits).cpuMs;
      this.#log[wouldStop ? 'warn' : 'debug']('CPU charge waived: seen late', {
        worker: instance.worker,
        instance: instance.id,
        requestId: breach.exchange.requestId,
        value: Math.ceil(breach.valueMs),
        waived: Math.round(breach.waivedMs),
        reason:
          breach.cause === 'late'
            ? 'found by one sample after the daemon had not run for a while; the child then stopped without using more'
            : "found at once by one sample, more than the wall time since the last (a stall of the child's CPU booked to it); the child then stopped without using more",
      });
      return;
    }
    const worker = instance.worker ?? 'unknown';
    const group = this.#groups.get(worker);
    if (group) {
      group.limitBreaches++;
      group.lastBreachAt = performance.now();
      this.#drop(group, instance);
    }
    const limits = instance.limits ?? this.#limits;
    let fields: Record<string, unknown>;
    let reasonFor: (exchange: Exchange) => [number, string];
    switch (breach.limit) {
      case 'cpuMs': {
        const used = Math.ceil(breach.valueMs); // over the limit, so never rounded down to it
        // The last events of the instance's CPU accounting (src/pool/cpu-trace.ts): a breach that
        // should not have been explains itself from the log.
        fields = { limit: 'cpuMs', value: used, max: limits.cpuMs, requestId: breach.exchange.requestId, trace: instance.cpuTrace.lines() };
        reasonFor = (exchange) =>
          exchange === breach.exchange
            ? [503, `Worker "${worker}" exceeded its CPU time limit: this request used ${used} ms of CPU; the limit is ${limits.cpuMs} ms per request (--cpu-ms).`]
            : [503, `Worker "${worker}" was stopped because another request on the same instance exceeded the CPU time limit (${used} ms used; the limit is ${limits.cpuMs} ms per request). Retry.`];
        break;
      }
      case 'startupCpuMs': {
        const used = Math.ceil(breach.valueMs); // over the limit, so never rounded down to it
        fields = { limit: 'startupCpuMs', value: used, max: limits.startupCpuMs };
        if (instance.loading) {
          this.#loadBreaches.set(instance, `its global scope used ${used} ms of CPU, past the startup CPU limit of ${limits.startupCpuMs} ms (--startup-cpu-ms)`);
          reasonFor = () => [503, `Worker "${worker}" exceeded its startup CPU limit: its global scope used ${used} ms of CPU while loading; the limit is ${limits.startupCpuMs} ms (--startup-cpu-ms).`];
        } else {
          // The runtime's set-up for APIs on their first use counts as startup (runner/runtime-work.ts).
          reasonFor = () => [
            503,
            `Worker "${worker}" exceeded its startup CPU limit: its global scope and the runtime's set-up of the APIs it used first (crypto, compression, ...) used ${used} ms of CPU on this instance; the limit is ${limits.startupCpuMs} ms (--startup-cpu-ms). Retry.`,
          ];
        }
        break;
      }
      case 'idleCpuMs': {
        // Nothing was in flight: no request is answered with this, unless one arrives before the child is gone.
        const used = Math.ceil(breach.valueMs);
        fields = { limit: 'idleCpuMs', value: used, max: limits.cpuMs, allowanceMs: IDLE_HOUSEKEEPING_MS };
        reasonFor = () => [
          503,
          `Worker "${worker}"'s instance was stopped: it used ${used} ms of CPU with no request in flight (a timer or interval left running after a response?), past the CPU limit of ${limits.cpuMs} ms (--cpu-ms) and the ${IDLE_HOUSEKEEPING_MS} ms allowed for garbage collection. Retry.`,
        ];
        break;
      }
      case 'memoryMb': {
        const used = Math.round(breach.valueMb);
        fields = { limit: 'memoryMb', value: used, max: limits.memoryMb };
        if (instance.loading) {
          this.#loadBreaches.set(instance, `its global scope grew the instance to ${used} MiB, past the memory limit of ${limits.memoryMb} MiB (--memory-mb)`);
        }
        reasonFor = () => [503, memoryReason(worker, `the instance used ${used} MiB`, limits.memoryMb)];
        break;
      }
    }
    this.#log.warn('limit exceeded', { worker, instance: instance.id, ...fields });
    this.#metrics.breach(worker, BREACH_KINDS[breach.limit]);
    instance.terminate(reasonFor);
  }

  /**
   * A load that a limit ended failed because of the limit, not because "the instance was killed by
   * SIGKILL": the requests answered from the remembered failure during the back-off say which limit,
   * with 503 like the first one (test/hostile/global-scope-loop.test.ts).
   */
  #limitFailure(instance: Instance, error: ScriptLoadError): ScriptLoadError {
    const breach = this.#loadBreaches.get(instance);
    if (!breach) return error;
    const failed = new ScriptLoadError(error.worker, '', { ...error.failure, message: breach, line: null, column: null });
    LIMIT_FAILURES.add(failed);
    return failed;
  }

  #evictIdle(): void {
    const now = performance.now();
    for (const group of this.#groups.values()) {
      this.#retire(group, (i) => i.inflight === 0 && now - i.lastActiveAt > this.#limits.idleTimeoutMs, 'it was idle');
    }
  }

  #group(name: string): WorkerGroup {
    let group = this.#groups.get(name);
    if (!group) this.#groups.set(name, (group = new WorkerGroup(name)));
    return group;
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** A watchdog breach as the metrics' `kind` label names it. */
const BREACH_KINDS: Record<Exclude<Breach['limit'], 'recycleRssMb' | 'lateCpuMs'>, BreachKind> = {
  cpuMs: 'cpu',
  idleCpuMs: 'idle_cpu',
  startupCpuMs: 'startup',
  memoryMb: 'memory',
};

/** V8 reports no position for a module's SyntaxError; esbuild's parser finds it. */
function locate(failure: ScriptLoadFailure, script: WorkerScript): ScriptLoadFailure {
  if (failure.kind !== 'SyntaxError' || failure.line !== null) return failure;
  const at = findSyntaxError(script.source, script.filename);
  return at ? { ...failure, line: at.line, column: at.column } : failure;
}

/** A script's own failure is a 500; a child that died under it is transient, as any lost instance. */
/** Load failures that were a limit's doing (see Broker.#limitFailure). */
const LIMIT_FAILURES = new WeakSet<ScriptLoadError>();

function loadFailureStatus(error: ScriptLoadError): number {
  return error.failure.kind === 'Died' || LIMIT_FAILURES.has(error) ? 503 : 500;
}

function loadFailureReason(error: ScriptLoadError, script: WorkerScript): string {
  const { failure } = error;
  const at = failure.line !== null ? ` (at ${script.filename}:${failure.line}:${failure.column ?? 1})` : '';
  const retry = failure.kind === 'Died' ? ' while loading. Retry; a new instance will load it.' : '';
  return `Worker "${script.name}" failed to load: ${failure.message}${at}${retry}`;
}

export { EdgeprocError };

/**
 * The CPU a request is accounted in the per-worker totals and the metrics: the larger of the
 * watchdog's charge and the child's own count, the latter worth at most the CPU limit. The
 * watchdog samples a busy child every few ms, so a request shorter than a sample is charged
 * 0 ms (the limit is enforced on this charge, which catches every runaway); summed, those
 * charges were 28 ms for 19 382 hello requests whose children counted 466 ms. The child's
 * count is exact but its own word: capped, so a forged one adds no more than a runaway could
 * use, and never below the watchdog's, so a forged low one hides nothing the watchdog saw.
 */
export function requestCpuMs(watchdogMs: number, childCpuMs: number | null, limitMs: number): number {
  return Math.max(watchdogMs, childCpuWorth(childCpuMs, limitMs));
}


/**
 * Assembles a running daemon from a ServeConfig: registry ← target, warm
 * pool, broker, front door and admin API; and takes it apart again, draining
 * in order (stop accepting → finish in-flight → drain instances → stop pool).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { BindingDispatcher } from './bindings/dispatch.js';
import { createCacheService } from './bindings/cache/cache-service.js';
import { Broker } from './broker/broker.js';
import { EgressPolicy } from './broker/egress.js';
import { Outbound } from './broker/outbound.js';
import { tenantLogSink } from './broker/tenant-log.js';
import type { ServeConfig } from './config.js';
import { EdgeprocError } from './errors.js';
import { Logger } from './log.js';
import { LogTail } from './observability/log-tail.js';
import { DaemonMetrics } from './observability/metrics.js';
import { WarmPool } from './pool/pool.js';
import { createAdminServer } from './server/admin.js';
import { createFrontDoor } from './server/http.js';
import { Projects } from './projects/projects.js';
import type { Layer } from './pool/sandbox.js';
import { childSandbox, stopForkServerIfIdle } from './pool/spawn.js';
import { Router } from './server/router.js';
import { WorkerRegistry } from './workers/registry.js';
import { checkSyntax } from './workers/check.js';
import { readWorkerLimits } from './workers/limits-file.js';
import { readTarget, type Target } from './workers/target.js';
import { CronScheduler, type SchedulerClock } from './scheduled/scheduler.js';

export interface Daemon {
  readonly url: string;
  readonly adminUrl: string;
  readonly port: number;
  readonly adminPort: number;
  readonly target: Target;
  readonly pool: WarmPool;
  readonly broker: Broker;
  readonly registry: WorkerRegistry;
  /** The operating-system layers around every child, as found on this machine. */
  readonly sandbox: readonly Layer[];
  /** Where KV data lives (null when no worker has a KV namespace, and nothing was opened). */
  readonly kvStore: { backend: 'sqlite' | 'redis'; location: string } | null;
  /** Its Prometheus metrics (GET /metrics on the admin API). */
  readonly metrics: DaemonMetrics;
  readonly log: Logger;
  /** The followers of its log (GET /logs on the admin API, `edgeproc tail`). */
  readonly tail: LogTail;
  /** Stops accepting, finishes in-flight requests and waitUntil work (bounded), stops every child. */
  close(): Promise<void>;
}

export interface DaemonOptions {
  /** The cron scheduler's clock (tests move it; src/scheduled/scheduler.ts). */
  clock?: SchedulerClock;
}

export async function startDaemon(config: ServeConfig, log = new Logger(), options: DaemonOptions = {}): Promise<Daemon> {
  const target = readTarget(config.target, config.limits.scriptBytes, { env: config.env });
  // Workers projects: bundled here (esbuild, in the daemon), their source maps kept to map tenant stacks back.
  const projects = new Projects(target, log);
  await projects.bundle(config.limits.scriptBytes);
  const routes = projects.routes();
  checkSyntax(target.workers);
  const limits = readWorkerLimits(target, config.limits, (name) => projects.limits(name, config.limits));
  const registry = new WorkerRegistry();
  for (const worker of target.workers) {
    registry.publish(
      registry.prepare(worker.name, worker.source, worker.path, projects.env(worker.name), limits.get(worker.name)!, projects.kv(worker.name)),
    );
  }
  // Opened only when a worker has a KV namespace: serving plain scripts writes nothing to disk, and
  // loads neither SQLite's native addon nor the Redis client.
  const kv = registry.list().some((script) => Object.keys(script.kv).length > 0)
    ? await (await import('./bindings/kv/kv-service.js')).openKvService({ persistTo: resolve(config.persistTo), url: config.kvUrl })
    : null;
  const cache = createCacheService({ cacheBytes: (worker) => (registry.get(worker)?.limits ?? config.limits).cacheBytes });
  const bindings = new BindingDispatcher(registry, { kv, cache }, config.limits, log);

  // Probed before the first child starts: every child is wrapped in what is found here.
  const sandbox = childSandbox().layers;
  const egress = new EgressPolicy(config.egressAllow, { host: config.host, port: config.port, adminPort: config.adminPort });
  const outbound = new Outbound(log, config.limits, egress);
  const metrics = new DaemonMetrics(config.limits);
  const pool = new WarmPool(
    config.limits,
    {
      log: tenantLogSink(log, projects.maps.rewrite),
      subrequest: (instance, id, head) => {
        const sink = outbound.perform(instance, id, head);
        metrics.subrequest(instance, head.parent);
        return sink;
      },
      bindingCall: (instance, id, call) => {
        const sink = bindings.call(instance, id, call);
        metrics.bindingCall(instance, call);
        return sink;
      },
      stderr: (instance, line) =>
        log.warn(line, { source: 'child-stderr', worker: instance.worker ?? undefined, instance: instance.id }),
      exit: () => {},
    },
    log,
  );
  const broker = new Broker(pool, registry, config.limits, log, { rewriteStack: projects.maps.rewrite, metrics, cf: config.cf, codeCache: config.codeCache });
  metrics.watch(broker, pool);
  const tail = new LogTail(log);
  pool.start();

  const router = new Router(target.kind === 'directory' ? null : target.workers[0]!.name, routes);
  const front = createFrontDoor({ broker, registry, router, testScheduled: config.testScheduled ? (name) => projects.cronsOf(name) : undefined });
  const admin = createAdminServer({ sandbox, broker, registry, pool, limits: config.limits, log, token: config.adminToken, metrics, tail, cache });
  try {
    await listen(front, config.port, config.host, '--port');
    await listen(admin, config.adminPort, config.adminHost, '--admin-port');
  } catch (error) {
    front.close();
    await kv?.close();
    await pool.close();
    await stopForkServerIfIdle();
    throw error;
  }
  const port = (front.address() as AddressInfo).port;
  const adminPort = (admin.address() as AddressInfo).port;
  egress.listening(port, adminPort);
  const outboundWarm = outbound.warmUp().catch((error: unknown) => log.debug('outbound warm-up failed', { error: String(error) }));
  if (config.watch) {
    // A rebuilt project is deployed exactly as an admin PUT is: new requests go to it, in-flight ones finish on the old version.
    await projects.watch(async (name, bundle) => {
      const script = registry.prepare(name, bundle.source, bundle.filename, projects.env(name), limits.get(name)!, projects.kv(name));
      const loaded = await broker.deploy(script);
      log.info('worker rebuilt and deployed', { worker: name, version: script.version, syntax: loaded.syntax, loadMs: loaded.loadMs });
    });
  }

  // Every project worker served fires its triggers.crons; a worker with no instance gets one, as for a request.
  const scheduler = new CronScheduler(projects.crons(), (worker, cron, scheduledTime) => broker.runScheduled(worker, cron, scheduledTime), options.clock);
  scheduler.start();

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      scheduler.stop();
      front.close();
      await projects.close();
      admin.close();
      front.closeIdleConnections();
      broker.closeWebSockets('the server is shutting down');
      await broker.idle(config.limits.drainTimeoutMs);
      // Whatever is still running gets a clear answer with its request id, not a cut connection.
      broker.abortInflight(
        503,
        `The daemon is shutting down and this request did not finish within the drain timeout (${config.limits.drainTimeoutMs} ms). Retry.`,
      );
      front.closeAllConnections();
      tail.close();
      admin.closeAllConnections();
      await broker.close();
      metrics.close();
      await pool.close();
      await pool.allExited();
      await stopForkServerIfIdle();
      await outboundWarm;
      await outbound.close();
      await kv?.close();
    })());

  return {
    url: `http://${hostForUrl(config.host)}:${port}`,
    adminUrl: `http://${hostForUrl(config.adminHost)}:${adminPort}`,
    port,
    adminPort,
    target,
    pool,
    broker,
    registry,
    sandbox,
    kvStore: kv ? { backend: kv.backend, location: kv.location } : null,
    metrics,
    log,
    tail,
    close,
  };
}

function listen(server: Server, port: number, host: string, flag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        reject(new EdgeprocError('ERR_PORT_IN_USE', `${host}:${port} is already in use: pick another ${flag} or stop what listens there`));
      } else {
        reject(new EdgeprocError('ERR_CONFIG', `cannot listen on ${host}:${port} (${flag}): ${error.message}`));
      }
    });
    server.listen(port, host, () => resolve());
  });
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

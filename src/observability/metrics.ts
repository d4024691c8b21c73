/**
 * Prometheus metrics for GET /metrics on the admin port. One Registry per
 * daemon (several run in one test process; prom-client's global one would mix
 * them). Counters and histograms are fed at the source — the broker calls
 * request() where it writes a request's accounting line — and everything that
 * is a state rather than an event (pool size, live instances, memory) is read
 * at scrape time in collect(), so the request path pays for none of it.
 *
 * Label values are worker names the daemon serves, never anything a client
 * sends: a request for an unknown worker is not counted by worker (its Host
 * header would be an unbounded label).
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Broker, WorkerStats } from '../broker/broker.js';
import type { Limits } from '../limits.js';
import type { Instance } from '../pool/instance.js';
import type { WarmPool } from '../pool/pool.js';
import { readMemoryMb } from '../pool/watchdog.js';
import type { BindingCallMessage } from '../../protocol/messages.js';
import { LoopDelay, loopDelayMetricNames } from './loop-delay.js';
import { WorkerGauge, WorkerHistogram, WorkerStatusCounter, type HistogramSeries } from './worker-series.js';

export const METRIC_PREFIX = 'edgeproc_';
/**
 * Period of prom-client's own event-loop delay sampler, which collectDefaultMetrics always
 * starts: the longest a libuv timer takes (~25 days), so that it never wakes the daemon.
 * LoopDelay replaces the gauges it fed with ones sampled only while requests are served.
 */
const DEFAULT_LOOP_SAMPLER_MS = 2 ** 31 - 1;

/** Which limit a breach was of, as the `kind` label says it. */
export type BreachKind = 'cpu' | 'idle_cpu' | 'memory' | 'wall' | 'subrequests' | 'kv_operations' | 'overload' | 'startup';

/** Whether a cold start found a warm child in the pool or had to spawn one. */
export type ColdStartKind = 'pool_hit' | 'pool_miss';

/** What the broker reports; a no-op unless the daemon wires DaemonMetrics in. */
export interface BrokerMetrics {
  /** A client's response is over. */
  request(worker: string, status: number, wallMs: number): void;
  /** A request is over for its child too, with the CPU it is accounted (see Broker, requestCpuMs). */
  requestCpu(worker: string, cpuMs: number): void;
  coldStart(worker: string, kind: ColdStartKind): void;
  breach(worker: string, kind: BreachKind): void;
}

export const NO_METRICS: BrokerMetrics = { request() {}, requestCpu() {}, coldStart() {}, breach() {} };

/** 1 ms to 60 s: a request's CPU (limit 50 ms by default, up to 30 s) and wall time (limit 60 s). */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The series of one worker, looked up once per request (worker-series.ts). */
interface WorkerSeries {
  byStatus: Map<number, number>;
  cpu: HistogramSeries;
  wall: HistogramSeries;
}

export class DaemonMetrics implements BrokerMetrics {
  readonly registry = new Registry();
  readonly #requests: WorkerStatusCounter;
  readonly #cpuSeconds: WorkerHistogram;
  readonly #wallSeconds: WorkerHistogram;
  readonly #coldStarts: Counter<'worker' | 'kind'>;
  readonly #breaches: Counter<'worker' | 'kind'>;
  readonly #loopDelay: LoopDelay;
  readonly #subrequests: Counter<'worker'>;
  readonly #bindingCalls: Counter<'worker' | 'binding' | 'op'>;
  readonly #series = new Map<string, WorkerSeries>();
  readonly #limits: Limits;
  #broker: Broker | null = null;
  /** The workers' figures while a scrape runs (see scrape()). */
  #listing: WorkerStats[] | null = null;
  #pool: WarmPool | null = null;

  constructor(limits: Limits) {
    this.#limits = limits;
    const registers = [this.registry];
    const p = METRIC_PREFIX;
    this.#requests = new WorkerStatusCounter({
      name: `${p}requests_total`,
      help: 'Requests answered, by worker and HTTP status (limit errors included).',
      registers,
    });
    this.#cpuSeconds = new WorkerHistogram({
      name: `${p}request_cpu_seconds`,
      help: "CPU time of a request once its child settled it: the larger of the watchdog's charge (every thread, sampled) and the child's own count.",
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.#wallSeconds = new WorkerHistogram({
      name: `${p}request_duration_seconds`,
      help: 'Wall time of a request in the daemon, from arrival to the end of its response.',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.#coldStarts = new Counter({
      name: `${p}cold_starts_total`,
      help: 'Instances started for requests of a worker, by whether a warm child was ready (pool_hit) or one was spawned (pool_miss).',
      labelNames: ['worker', 'kind'],
      registers,
    });
    this.#breaches = new Counter({
      name: `${p}limit_breaches_total`,
      help: 'Limit breaches by worker and kind: cpu, idle_cpu (CPU with no request in flight), memory, wall, subrequests, kv_operations, overload (max in flight), startup (CPU while loading).',
      labelNames: ['worker', 'kind'],
      registers,
    });
    this.#subrequests = new Counter({
      name: `${p}subrequests_total`,
      help: 'fetch() calls made by tenants, by worker (refused ones included).',
      labelNames: ['worker'],
      registers,
    });
    this.#bindingCalls = new Counter({
      name: `${p}binding_calls_total`,
      help: 'KV and Cache API calls made by tenants, by worker, binding kind (kv, cache) and operation (refused ones included).',
      labelNames: ['worker', 'binding', 'op'],
      registers,
    });
    this.#stateMetrics(registers);
    collectDefaultMetrics({ register: this.registry, prefix: p, eventLoopMonitoringPrecision: DEFAULT_LOOP_SAMPLER_MS });
    for (const name of loopDelayMetricNames(p)) this.registry.removeSingleMetric(name);
    this.#loopDelay = new LoopDelay(p, registers, () => (this.#broker?.inflight ?? 0) > 0);
  }

  /** The broker and pool whose state the scrape reads (they are built after the metrics they feed). */
  watch(broker: Broker, pool: WarmPool): void {
    this.#broker = broker;
    this.#pool = pool;
  }

  // Hot path: once per request, where the broker writes the accounting line.
  request(worker: string, status: number, wallMs: number): void {
    this.#loopDelay.served();
    const series = this.#of(worker);
    series.byStatus.set(status, (series.byStatus.get(status) ?? 0) + 1);
    series.wall.observe(wallMs / 1000);
  }

  requestCpu(worker: string, cpuMs: number): void {
    this.#of(worker).cpu.observe(cpuMs / 1000);
  }

  coldStart(worker: string, kind: ColdStartKind): void {
    this.#coldStarts.labels(worker, kind).inc();
  }

  breach(worker: string, kind: BreachKind): void {
    this.#breaches.labels(worker, kind).inc();
  }

  /**
   * A tenant fetch() reached the daemon. Called after Outbound.perform counted it against its
   * request, so a count past the limit is the refused one (Outbound answers it with an error).
   */
  subrequest(instance: Instance, parent: number): void {
    const worker = instance.worker;
    if (!worker) return;
    this.#subrequests.labels(worker).inc();
    const made = instance.exchange(parent)?.subrequests ?? 0;
    if (made > (instance.limits ?? this.#limits).subrequests) this.breach(worker, 'subrequests');
  }

  /** A KV or Cache API call reached the daemon; called after the dispatcher counted it against its request. */
  bindingCall(instance: Instance, call: BindingCallMessage): void {
    const worker = instance.worker;
    if (!worker) return;
    this.#bindingCalls.labels(worker, call.target.kind, call.op).inc();
    if (call.target.kind !== 'kv') return;
    const made = instance.exchange(call.parent)?.kvOperations ?? 0;
    if (made > (instance.limits ?? this.#limits).kvOperations) this.breach(worker, 'kv_operations');
  }

  /** Stops the event-loop sampler for good (the daemon is closing). */
  close(): void {
    this.#loopDelay.stop();
  }

  /** The text exposition format, and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    // One listing of the workers for every per-worker gauge of this scrape, not one each.
    this.#listing = this.#broker?.stats() ?? [];
    try {
      return { contentType: this.registry.contentType, text: await this.registry.metrics() };
    } finally {
      this.#listing = null;
    }
  }

  #of(worker: string): WorkerSeries {
    let series = this.#series.get(worker);
    if (!series) {
      series = { byStatus: this.#requests.series(worker), cpu: this.#cpuSeconds.series(worker), wall: this.#wallSeconds.series(worker) };
      this.#series.set(worker, series);
    }
    return series;
  }

  /** Gauges and pool counters read at scrape time. */
  #stateMetrics(registers: Registry[]): void {
    const p = METRIC_PREFIX;
    const metrics = this;
    new Gauge({
      name: `${p}pool_warm`,
      help: 'Warm children booted and waiting for a script.',
      registers,
      collect() {
        if (metrics.#pool) this.set(metrics.#pool.stats().warm);
      },
    });
    new Gauge({
      name: `${p}pool_booting`,
      help: 'Children booting (for the pool or for a request that missed it).',
      registers,
      collect() {
        if (metrics.#pool) this.set(metrics.#pool.stats().booting);
      },
    });
    for (const [key, name, help] of [
      ['hits', 'pool_hits_total', 'Warm children handed out (a script got a booted child).'],
      ['misses', 'pool_misses_total', 'Requests for a child that found the pool empty (or needed another heap size) and waited for a spawn.'],
      ['spawned', 'pool_spawned_total', 'Children spawned.'],
      ['bootFailures', 'pool_boot_failures_total', 'Children that failed to boot.'],
    ] as const) {
      new Counter({
        name: `${p}${name}`,
        help,
        registers,
        collect() {
          if (!metrics.#pool) return;
          this.reset();
          this.inc(metrics.#pool.stats()[key]);
        },
      });
    }
    const workers = () => metrics.#listing ?? metrics.#broker?.stats() ?? [];
    new WorkerGauge({
      name: `${p}instances`,
      help: 'Live instances (children running its script) of each worker.',
      registers,
      read: () => workers().map((w) => [w.name, w.instances] as const),
    });
    new WorkerGauge({
      name: `${p}inflight_requests`,
      help: 'Requests in flight on the instances of each worker.',
      registers,
      read: () => workers().map((w) => [w.name, w.inflight] as const),
    });
    new WorkerGauge({
      name: `${p}instance_memory_bytes`,
      help: "Resident anonymous memory of each worker's instances, summed (what the watchdog holds against --memory-mb).",
      registers,
      read: () =>
        workers().map((w) => {
          let mb = 0;
          for (const pid of w.pids) mb += readMemoryMb(pid) ?? 0;
          return [w.name, Math.round(mb * 1024 * 1024)] as const;
        }),
    });
  }
}

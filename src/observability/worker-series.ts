/**
 * The request path's counter and histograms, kept as plain numbers per worker
 * and handed to prom-client's registry at scrape time in the shape its own
 * metrics give (so GET /metrics reads the same). prom-client's labelled inc()
 * and observe() build a label object, validate it, hash it and look the
 * series up on every call, even through a child from labels(): three such
 * calls per request were ~4% of the daemon's CPU under wrk (perf). Here a
 * request costs a map lookup it shares with the others and a few additions.
 */
import type { Metric, Registry } from 'prom-client';

interface Exported {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface MetricSpec {
  name: string;
  help: string;
  registers: Registry[];
}

/** What prom-client's registry asks of a metric: its name, and get() for a scrape. */
abstract class ScrapedMetric {
  readonly name: string;
  readonly help: string;
  abstract readonly type: 'counter' | 'histogram' | 'gauge';
  readonly aggregator = 'sum';

  constructor({ name, help, registers }: MetricSpec) {
    this.name = name;
    this.help = help;
    for (const registry of registers) registry.registerMetric(this as unknown as Metric);
  }

  get(): { name: string; help: string; type: string; values: Exported[]; aggregator: string } {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator };
  }

  protected abstract values(): Exported[];
}

/** Requests by worker and status. */
export class WorkerStatusCounter extends ScrapedMetric {
  readonly type = 'counter';
  readonly #counts = new Map<string, Map<number, number>>();

  /** The per-status counts of one worker, to keep and increment on the hot path. */
  series(worker: string): Map<number, number> {
    let byStatus = this.#counts.get(worker);
    if (!byStatus) this.#counts.set(worker, (byStatus = new Map()));
    return byStatus;
  }

  protected values(): Exported[] {
    const out: Exported[] = [];
    for (const [worker, byStatus] of this.#counts) {
      for (const [status, value] of byStatus) out.push({ labels: { worker, status: String(status) }, value });
    }
    return out;
  }
}

/** One worker's observations: counts per bucket (not cumulative), their sum and count. */
export class HistogramSeries {
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.buckets = new Float64Array(bounds.length);
  }

  // Hot path: twice per request.
  observe(value: number): void {
    const { bounds } = this;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.buckets[i]!++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
}

/** A histogram by worker, exported as prom-client's: `_bucket` (cumulative, `le`), `_sum`, `_count`. */
export class WorkerHistogram extends ScrapedMetric {
  readonly type = 'histogram';
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, HistogramSeries>();

  constructor(spec: MetricSpec & { buckets: readonly number[] }) {
    super(spec);
    this.#bounds = [...spec.buckets].sort((a, b) => a - b);
  }

  series(worker: string): HistogramSeries {
    let series = this.#series.get(worker);
    if (!series) this.#series.set(worker, (series = new HistogramSeries(this.#bounds)));
    return series;
  }

  protected values(): Exported[] {
    const out: Exported[] = [];
    for (const [worker, series] of this.#series) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += series.buckets[i]!;
        out.push({ labels: { le: this.#bounds[i]!, worker }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      out.push({ labels: { le: '+Inf', worker }, value: series.count, metricName: `${this.name}_bucket` });
      out.push({ labels: { worker }, value: series.sum, metricName: `${this.name}_sum` });
      out.push({ labels: { worker }, value: series.count, metricName: `${this.name}_count` });
    }
    return out;
  }
}

/**
 * A state by worker, read at scrape time from `read` (each deployed worker and its value). The
 * same text as a prom-client Gauge that is reset and set per worker in collect(), without its
 * per-label validation, hashing and lookups: with 2000 workers, three such gauges were about a
 * fifth of a scrape's ~28 ms (profile, 2026-12-06).
 */
export class WorkerGauge extends ScrapedMetric {
  readonly type = 'gauge';
  readonly #read: () => Iterable<readonly [worker: string, value: number]>;

  constructor(spec: MetricSpec & { read: () => Iterable<readonly [worker: string, value: number]> }) {
    super(spec);
    this.#read = spec.read;
  }

  protected values(): Exported[] {
    const out: Exported[] = [];
    for (const [worker, value] of this.#read()) out.push({ labels: { worker }, value });
    return out;
  }
}

/**
 * The request path's own counter and histograms must read on GET /metrics exactly as
 * prom-client's would: same names, labels, cumulative buckets, sums and counts.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { WorkerHistogram, WorkerStatusCounter } from '../../src/observability/worker-series.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];

describe('worker series', () => {
  it('expose the text prom-client gives for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const help = 'h';
    const histogram = new WorkerHistogram({ name: 'x_seconds', help, buckets: BUCKETS, registers: [ours] });
    const counter = new WorkerStatusCounter({ name: 'x_total', help, registers: [ours] });
    const reference = new Histogram({ name: 'x_seconds', help, buckets: BUCKETS, labelNames: ['worker'], registers: [theirs] });
    const referenceCounter = new Counter({ name: 'x_total', help, labelNames: ['worker', 'status'], registers: [theirs] });

    const observations: Array<[string, number, number]> = [
      ['a', 0.0005, 200],
      ['a', 0.001, 200], // on a bound: counted in it, as le means
      ['a', 0.05, 503],
      ['b', 3, 200], // past the last bound: only +Inf
      ['a', 0.2, 200],
    ];
    for (const [worker, value, status] of observations) {
      histogram.series(worker).observe(value);
      const byStatus = counter.series(worker);
      byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
      reference.labels(worker).observe(value);
      referenceCounter.labels(worker, String(status)).inc();
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});

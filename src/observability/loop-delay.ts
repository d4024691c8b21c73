/**
 * The daemon's event-loop delay, as prom-client's default `nodejs_eventloop_lag_{min,max,
 * mean,stddev,p50,p90,p99}_seconds` gauges report it, but sampled only while the daemon
 * serves. `perf_hooks.monitorEventLoopDelay` samples with a libuv timer that wakes the
 * process every period whatever happens: at 50 ms, ~1.6 ms of CPU a second of an idle
 * daemon on these VMs (a bare process idles at 2.2 ms/s with it, 0.6 without), the largest
 * part of what an idle daemon costs. An idle loop has no delay worth a sample anyway; its
 * on-time wake-ups only thinned out the percentiles of the busy periods.
 *
 * On with the first request after a quiet spell (`served()`, once per request: a field read),
 * off once a check finds no request settled since the last one and none in flight.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/** Period of the sampler while on (prom-client's default is 10 ms: 100 wake-ups a second). */
const SAMPLE_MS = 50;
/** How often a running sampler checks whether the daemon went quiet. */
const QUIET_CHECK_MS = 2_000;

/** The gauges, by the names prom-client's default metrics give them, and what each reads. */
const READINGS: ReadonlyArray<readonly [string, string, (h: IntervalHistogram) => number]> = [
  ['min', 'The minimum recorded event loop delay.', (h) => h.min],
  ['max', 'The maximum recorded event loop delay.', (h) => h.max],
  ['mean', 'The mean of the recorded event loop delays.', (h) => h.mean],
  ['stddev', 'The standard deviation of the recorded event loop delays.', (h) => h.stddev],
  ['p50', 'The 50th percentile of the recorded event loop delays.', (h) => h.percentile(50)],
  ['p90', 'The 90th percentile of the recorded event loop delays.', (h) => h.percentile(90)],
  ['p99', 'The 99th percentile of the recorded event loop delays.', (h) => h.percentile(99)],
];

/** The gauge names this module owns, so that prom-client's own can be taken out of the registry. */
export function loopDelayMetricNames(prefix: string): string[] {
  return READINGS.map(([key]) => `${prefix}nodejs_eventloop_lag_${key}_seconds`);
}

export class LoopDelay {
  readonly #histogram = monitorEventLoopDelay({ resolution: SAMPLE_MS });
  /** Whether any request still runs: the quiet check keeps the sampler on through a long one. */
  readonly #busy: () => boolean;
  #served = 0;
  #servedAtCheck = 0;
  /** The quiet check, while the sampler is on. */
  #check: NodeJS.Timeout | null = null;

  constructor(prefix: string, registers: Registry[], busy: () => boolean) {
    this.#busy = busy;
    const histogram = this.#histogram;
    const gauges: Array<readonly [Gauge, (h: IntervalHistogram) => number]> = [];
    // The first gauge's collect sets them all, from one window, then starts the next window.
    const collect = () => {
      // An empty histogram reads min 2^63 and mean NaN: a window without samples reads 0.
      for (const [gauge, read] of gauges) gauge.set(histogram.count === 0 ? 0 : read(histogram) / 1e9);
      histogram.reset();
    };
    for (const [key, help, read] of READINGS) {
      const name = `${prefix}nodejs_eventloop_lag_${key}_seconds`;
      const gauge = new Gauge({ name, help: `${help} Seconds; sampled while requests are served.`, registers, ...(gauges.length === 0 ? { collect } : {}) });
      gauges.push([gauge, read]);
    }
  }

  /** Hot path: once per request. */
  served(): void {
    this.#served++;
    if (this.#check === null) this.#start();
  }

  #start(): void {
    this.#histogram.enable();
    this.#servedAtCheck = this.#served;
    this.#check = setInterval(() => {
      if (this.#served !== this.#servedAtCheck || this.#busy()) {
        this.#servedAtCheck = this.#served;
        return;
      }
      this.stop();
    }, QUIET_CHECK_MS);
    this.#check.unref();
  }

  /** Off until the next request (and for good when the daemon closes). */
  stop(): void {
    if (this.#check === null) return;
    this.#histogram.disable();
    clearInterval(this.#check);
    this.#check = null;
  }
}

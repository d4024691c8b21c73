/**
 * The limits watchdog: while a child has work in flight (a request, or its
 * script loading), samples its CPU time and memory from outside and charges
 * the CPU to what it was doing. A child stuck in `for (;;) {}` cannot police
 * itself; the daemon can.
 *
 * CPU comes from /proc/PID/schedstat (nanoseconds on the CPU for the main
 * thread, where all JavaScript runs; MEASURED.md: /proc/PID/stat and pidusage
 * count 10 ms ticks, too coarse for a 50 ms limit). Memory is the RSS from
 * /proc/PID/statm, sampled less often.
 */
import { readFileSync } from 'node:fs';
import type { Limits } from '../limits.js';
import type { Exchange, Instance } from './instance.js';

/** What a breach was about, for the error response and the log line. */
export type Breach =
  | { limit: 'cpuMs'; exchange: Exchange; valueMs: number }
  | { limit: 'startupCpuMs'; valueMs: number }
  | { limit: 'memoryMb'; valueMb: number }
  /** Not a breach: RSS passed recycleRssMb, so the instance should be replaced gracefully. */
  | { limit: 'recycleRssMb'; valueMb: number };

const RSS_EVERY_SAMPLES = 4;
const PAGE_BYTES = 4096;

interface Tracked {
  lastCpuNs: number | null;
  samples: number;
}

export class Watchdog {
  readonly #limits: Limits;
  readonly #onBreach: (instance: Instance, breach: Breach) => void;
  readonly #tracked = new Map<Instance, Tracked>();
  #timer: NodeJS.Timeout | null = null;

  constructor(limits: Limits, onBreach: (instance: Instance, breach: Breach) => void) {
    this.#limits = limits;
    this.#onBreach = onBreach;
  }

  /** Starts watching an instance that has just been given work; cheap to call per request. */
  watch(instance: Instance): void {
    if (!this.#tracked.has(instance)) {
      this.#tracked.set(instance, { lastCpuNs: readCpuNs(instance.pid), samples: 0 });
    }
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#tick(), this.#limits.watchdogIntervalMs);
      this.#timer.unref();
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#tracked.clear();
  }

  #tick(): void {
    for (const [instance, tracked] of this.#tracked) {
      if (instance.state === 'dead' || instance.disposed) {
        this.#tracked.delete(instance);
        continue;
      }
      const cpuNs = readCpuNs(instance.pid);
      if (cpuNs !== null && tracked.lastCpuNs !== null) {
        const ms = (cpuNs - tracked.lastCpuNs) / 1e6;
        if (ms > 0) this.#charge(instance, ms);
      }
      tracked.lastCpuNs = cpuNs;
      // A breach just now terminated it.
      if (instance.disposed) continue;
      if (++tracked.samples % RSS_EVERY_SAMPLES === 0) {
        const rssMb = readRssMb(instance.pid);
        const limits = instance.limits ?? this.#limits;
        if (rssMb !== null && rssMb > limits.memoryMb) {
          this.#onBreach(instance, { limit: 'memoryMb', valueMb: rssMb });
          continue;
        }
        if (rssMb !== null && limits.recycleRssMb > 0 && rssMb > limits.recycleRssMb) {
          this.#onBreach(instance, { limit: 'recycleRssMb', valueMb: rssMb });
        }
      }
      // Nothing in flight any more: stop sampling until the next request.
      if (!instance.loading && instance.inflight === 0) this.#tracked.delete(instance);
    }
    if (this.#tracked.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  #charge(instance: Instance, ms: number): void {
    const limits = instance.limits ?? this.#limits;
    const top = instance.chargeCpu(ms);
    if (instance.loading) {
      if (instance.startupCpuMs > limits.startupCpuMs) {
        this.#onBreach(instance, { limit: 'startupCpuMs', valueMs: instance.startupCpuMs });
      }
      return;
    }
    if (top && top.cpuMs > limits.cpuMs) {
      this.#onBreach(instance, { limit: 'cpuMs', exchange: top, valueMs: top.cpuMs });
    }
  }
}

/** Nanoseconds the process's main thread has spent on a CPU; null once it is gone. */
export function readCpuNs(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const text = readFileSync(`/proc/${pid}/schedstat`, 'latin1');
    return Number(text.slice(0, text.indexOf(' ')));
  } catch {
    return null;
  }
}

/** Resident memory in MiB; null once the process is gone. */
export function readRssMb(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
    return (Number(fields[1]) * PAGE_BYTES) / (1024 * 1024);
  } catch {
    return null;
  }
}

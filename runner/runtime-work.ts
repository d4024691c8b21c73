/**
 * A tenant does not pay for the runtime's own set-up. Node loads most of an
 * API's code on its first use: a child's first `crypto.subtle.digest` compiled
 * Node's crypto modules from source, 7-8 ms of CPU before any hashing (Node's
 * built-in code cache is rejected under the child's V8 flags; the heap limit
 * is one of them). On Workers that code is in every isolate's snapshot. Charged
 * to the request, it made the first request of such a worker 10-20 ms of CPU
 * against ~1 ms for the next, and under Workers' free-plan limit (10 ms) every
 * request a 503 on a fresh instance that paid again.
 *
 * So the first use of such an API runs in a window: the daemon hears when it
 * opens (CPU it samples meanwhile counts as the script's startup, under
 * --startup-cpu-ms, as the global scope's does) and what the child measured
 * when it closes; the child's own count of the request leaves it out. A child
 * that lies can only move CPU from its requests to its startup limit.
 */
import { FrameType } from '../protocol/messages.js';
import type { Channel } from './ipc.js';
import type { TurnMeter } from './turn-meter.js';

export class RuntimeWork {
  readonly #channel: Channel;
  readonly #meter: TurnMeter;
  /** Whether a request is being served (outside one, the CPU is the load's or nobody's anyway). */
  readonly #serving: () => boolean;
  /** The request the running code belongs to (0: none). */
  readonly #current: () => number;
  #open = false;

  constructor(channel: Channel, meter: TurnMeter, serving: () => boolean, current: () => number) {
    this.#channel = channel;
    this.#meter = meter;
    this.#serving = serving;
    this.#current = current;
  }

  /** Runs `work` (the runtime's own, synchronous) as the runtime's, not the request's. */
  run<T>(work: () => T): T {
    if (this.#open || !this.#serving()) return work();
    this.#open = true;
    this.#meter.pause();
    // Flushed now: a window the daemon heard of late would be charged to the request meanwhile.
    // It names the request whose turn this is: what the daemon charged it for the window is taken back.
    this.#channel.sendEmpty(FrameType.RuntimeWork, this.#current());
    this.#channel.flush();
    try {
      return work();
    } finally {
      this.#open = false;
      const usedUs = this.#meter.resume();
      this.#channel.sendJson(FrameType.RuntimeWorkDone, 0, { cpuMs: usedUs / 1000 });
      this.#channel.flush();
    }
  }
}

/**
 * The warm pool: generic children that have booted the runner and wait for a
 * script ("stem cells"). take() hands one out and the pool refills in the
 * background. Children that die while booting count as boot failures; after
 * a few in a row the pool backs off exponentially instead of spawning in a
 * loop (a crash-loop breaker, as piscina stops respawning a failing worker).
 */
import { EdgeprocError } from '../errors.js';
import type { Limits } from '../limits.js';
import type { Logger } from '../log.js';
import { Instance, type ExitOutcome, type InstanceEvents } from './instance.js';
import * as priority from './priority.js';

const MAX_BACKOFF_MS = 30_000;
/** Delay between handing out a warm child and spawning its replacement; see #refillSoon. */
const REFILL_DELAY_MS = 20;
/** The longest a refill waits for the request of a child handed out to finish, while a warm child is left. */
const REFILL_MAX_DELAY_MS = 200;

export interface PoolStats {
  warm: number;
  /** The warm children's process ids, as GET /workers lists each worker's. */
  warmPids: number[];
  booting: number;
  hits: number;
  misses: number;
  spawned: number;
  bootFailures: number;
}

export class WarmPool {
  readonly #limits: Limits;
  readonly #events: InstanceEvents;
  readonly #log: Logger;
  readonly #warm: Instance[] = [];
  readonly #booting = new Set<Instance>();
  /**
   * Of those, the ones that will join the pool. A child booting for a pool miss is
   * someone's already: counting it left the pool one short for good after every miss.
   */
  #bootingForPool = 0;
  readonly #all = new Set<Instance>();
  #failuresInRow = 0;
  #backoffUntil = 0;
  #backoffTimer: NodeJS.Timeout | null = null;
  #refillTimer: NodeJS.Timeout | null = null;
  /** Children handed out since the last refill: the refill waits for their first requests (#refillSoon). */
  readonly #takenSinceRefill = new Set<Instance>();
  #closed = false;
  readonly #stats = { hits: 0, misses: 0, spawned: 0, bootFailures: 0 };
  readonly #warmListeners: Array<(instance: Instance) => void> = [];
  /** Children take() handed out, so a cold start can be counted as a pool hit or miss. */
  readonly #handedOutWarm = new WeakSet<Instance>();

  constructor(limits: Limits, events: InstanceEvents, log: Logger) {
    this.#limits = limits;
    this.#events = events;
    this.#log = log;
  }

  start(): void {
    this.#refill();
  }

  /** Resolves once the pool holds its target number of warm children (for startup and tests). */
  async filled(): Promise<void> {
    while (!this.#closed && this.#warm.length < this.#limits.warmPoolSize) {
      const booting = [...this.#booting].map((i) => i.ready.catch(() => {}));
      if (booting.length === 0) {
        if (Date.now() < this.#backoffUntil) throw new EdgeprocError('ERR_SPAWN', 'children keep failing to boot');
        this.#refill();
        continue;
      }
      await Promise.race(booting);
    }
  }

  /** Calls `listener` with each child as it joins the warm pool: work done then is off every request's path. */
  onWarm(listener: (instance: Instance) => void): void {
    this.#warmListeners.push(listener);
  }

  /** A warm child now, or null (pool miss); refills either way, shortly after. */
  take(): Instance | null {
    const instance = this.#warm.shift() ?? null;
    if (instance) {
      this.#stats.hits++;
      this.#handedOutWarm.add(instance);
      this.#takenSinceRefill.add(instance);
    }
    this.#refillSoon();
    return instance;
  }

  /**
   * A warm child: from the pool if one is ready, else a freshly spawned one once it
   * has booted. Pool children have the daemon's heap limit; a worker with its own
   * memory limit gets a child spawned for it with that heap. With `background`, a
   * spawned child boots at background priority (spawn.ts).
   */
  async acquire(heapMb: number = this.#limits.memoryMb, background = false): Promise<Instance> {
    if (this.#closed) throw new EdgeprocError('ERR_POOL_CLOSED', 'the daemon is shutting down');
    const warm = heapMb === this.#limits.memoryMb ? this.take() : null;
    if (warm) return warm;
    this.#stats.misses++;
    if (Date.now() < this.#backoffUntil) {
      throw new EdgeprocError(
        'ERR_SPAWN',
        `children are failing to boot (${this.#failuresInRow} in a row); retrying in ${Math.ceil((this.#backoffUntil - Date.now()) / 1000)} s — see the daemon log for their output`,
      );
    }
    return this.#spawnForRequest(heapMb, background, false);
  }

  async #spawnForRequest(heapMb: number, background: boolean, retried: boolean): Promise<Instance> {
    const instance = this.#spawn(false, heapMb, background);
    try {
      await instance.ready;
    } catch (error) {
      // A child killed from outside while it booted says nothing about the next one: the
      // request waiting for it gets another child, once, instead of a 503.
      if (!retried && !this.#closed && killedFromOutside(await instance.exited)) return this.#spawnForRequest(heapMb, background, true);
      throw error;
    }
    return instance;
  }

  /** Whether `instance` came out of the warm pool (a pool hit) rather than being spawned for its caller. */
  handedOutWarm(instance: Instance): boolean {
    return this.#handedOutWarm.has(instance);
  }

  /** Every child the pool ever started that is still alive, warm or handed out. */
  get live(): ReadonlySet<Instance> {
    return this.#all;
  }

  stats(): PoolStats {
    const warmPids = this.#warm.flatMap((i) => (i.pid ? [i.pid] : []));
    return { warm: this.#warm.length, warmPids, booting: this.#booting.size, ...this.#stats };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#backoffTimer) clearTimeout(this.#backoffTimer);
    if (this.#refillTimer) clearTimeout(this.#refillTimer);
    const warm = this.#warm.splice(0);
    for (const instance of [...warm, ...this.#booting]) instance.dispose();
    await Promise.all([...warm, ...this.#booting].map((i) => i.exited));
  }

  /** Waits for every child the pool started to exit (after the broker disposed its own). */
  async allExited(): Promise<void> {
    await Promise.all([...this.#all].map((i) => i.exited));
  }

  /**
   * A new child's boot takes ~40 ms of CPU (in the fork server and the child, at
   * background priority). Right after take() it would compete with the cold start
   * being served on a two-core machine, so the refill waits until that request is done:
   * REFILL_DELAY_MS covers a typical first request, and one still running then (a heavy
   * one, or a runaway until the CPU limit stops it) is waited for too, as long as a warm
   * child is left for the next cold start and for at most REFILL_MAX_DELAY_MS. A boot
   * overlapping a runaway's 50 ms took CPU from it at the same background priority and
   * delayed its 503 by up to 10 ms (bench/limits: p99 63–68 ms against 56–57 without).
   */
  #refillSoon(): void {
    if (this.#refillTimer) return;
    const since = performance.now();
    const attempt = () => {
      const waiting = [...this.#takenSinceRefill].some((i) => i.busy && !i.disposed && i.state !== 'dead');
      if (waiting && this.#warm.length > 0 && performance.now() - since < REFILL_MAX_DELAY_MS) {
        this.#refillTimer = setTimeout(attempt, REFILL_DELAY_MS);
        return;
      }
      this.#refillTimer = null;
      this.#refill();
    };
    this.#refillTimer = setTimeout(attempt, REFILL_DELAY_MS);
  }

  #refill(): void {
    this.#takenSinceRefill.clear();
    if (this.#closed || Date.now() < this.#backoffUntil) return;
    while (this.#warm.length + this.#bootingForPool < this.#limits.warmPoolSize) this.#spawn(true);
  }

  #spawn(forPool: boolean, heapMb = this.#limits.memoryMb, penalised = false): Instance {
    // Nobody waits for a pool child; a penalised worker's request may wait (priority.ts).
    const background = forPool || penalised;
    const instance = new Instance(this.#events, { warmUp: forPool, heapMb, background });
    this.#stats.spawned++;
    this.#all.add(instance);
    this.#booting.add(instance);
    if (forPool) this.#bootingForPool++;
    instance.exited.then(() => {
      this.#all.delete(instance);
      const at = this.#warm.indexOf(instance);
      if (at >= 0) this.#warm.splice(at, 1);
      if (!this.#closed && at >= 0) this.#refill();
    });
    instance.ready.then(
      () => {
        this.#booting.delete(instance);
        if (forPool) this.#bootingForPool--;
        this.#failuresInRow = 0;
        // A child that booted shows that children can boot: a back-off under way is over.
        this.#backoffUntil = 0;
        if (forPool && !this.#closed) {
          this.#warm.push(instance);
          for (const listener of this.#warmListeners) listener(instance);
        } else if (this.#closed) instance.dispose();
      },
      () => {
        this.#booting.delete(instance);
        if (forPool) this.#bootingForPool--;
        if (this.#closed) return;
        this.#stats.bootFailures++;
        void instance.exited.then((outcome) => {
          if (this.#closed) return;
          // The breaker is for children that cannot boot (they exit, crash, or hang until the
          // boot timeout kills them). One SIGKILLed from outside (an operator, the OOM killer)
          // proves nothing: counted, random kills under load tripped it, and every worker
          // needing a new instance got 503 for up to 30 s.
          if (killedFromOutside(outcome)) return this.#refill();
          this.#failuresInRow++;
          this.#onBootFailure();
        });
      },
    );
    const timer = setTimeout(() => {
      if (instance.state === 'booting') {
        this.#log.error('a child did not become ready in time; killing it', {
          instance: instance.id,
          bootTimeoutMs: this.#limits.bootTimeoutMs,
          pid: instance.pid ?? null,
          ...priority.threadPriorities(instance.pid),
        });
        instance.giveUpBoot(this.#limits.bootTimeoutMs);
      }
    }, this.#limits.bootTimeoutMs);
    // Booting in the background yields to the tenants, but must not starve: behind two busy
    // processes at nice 0 on two cores, pool children at nice 19 hit the boot timeout one
    // after another and the pool backed off, warm for nobody. Raised again each period while
    // it boots: its pid may not be known yet at the first (the fork server starved too), and a
    // thread it was creating as it was raised may have kept the old priority (priority.renice).
    const raise = background ? setInterval(() => instance.state === 'booting' && priority.ready(instance.pid), priority.BACKGROUND_BOOT_MAX_MS) : null;
    instance.ready
      .finally(() => {
        clearTimeout(timer);
        if (raise) clearInterval(raise);
      })
      .catch(() => {});
    return instance;
  }

  #onBootFailure(): void {
    if (this.#failuresInRow < this.#limits.bootFailuresBeforeBackoff) {
      this.#refill();
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** (this.#failuresInRow - this.#limits.bootFailuresBeforeBackoff));
    this.#backoffUntil = Date.now() + delay;
    this.#log.error('children keep dying while booting; backing off before spawning more', {
      failuresInRow: this.#failuresInRow,
      backoffMs: delay,
    });
    this.#backoffTimer = setTimeout(() => {
      this.#backoffTimer = null;
      this.#refill();
    }, delay);
    this.#backoffTimer.unref();
  }
}

/** SIGKILLed by someone other than the daemon (whose own kills, e.g. at the boot timeout, set `killed`). */
function killedFromOutside(outcome: ExitOutcome): boolean {
  return outcome.signal === 'SIGKILL' && !outcome.killed;
}

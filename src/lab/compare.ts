/**
 * `edgeproc compare`: the same workloads through every isolation model, on the
 * same machine, driven by the same load generator, with models interleaved so
 * that drift on a shared machine hits them all alike. Each experiment starts
 * from a fresh instance of the model, so one experiment's debris (a stalled
 * workerd, a dead vm host) cannot spoil the next.
 */
import { request } from 'undici';
import { errorCount, requestsPerSec, runLoad, type LoadOptions, type LoadResult } from './load.js';
import { labMachine, type LabMachine } from './machine.js';
import { ModelUnavailableError, type LabLimits, type Model, type ModelName, type RunningModel } from './models/types.js';
import { processMemory } from './smaps.js';
import { median, summarise, type Summary } from './stats.js';
import { expectedBody, WORKLOADS } from './workloads.js';

export interface ComparePlan {
  /** Cold starts per model (after DISCARDED_COLD warm-up samples), taken in `coldRounds` interleaved rounds. */
  coldSamples: number;
  coldRounds: number;
  /** Closed-loop warm load per model and round, after warmUpSec of the same load per model. */
  warmUpSec: number;
  warmSec: number;
  warmConnections: number;
  warmRounds: number;
  /** Live tenant counts at which memory is read. */
  memoryCounts: number[];
  /** Steady neighbour load during the runaway and crash experiments. */
  neighbourRate: number;
  hostileSec: number;
  limits: LabLimits;
}

export const QUICK_PLAN: ComparePlan = {
  coldSamples: 6,
  coldRounds: 2,
  warmUpSec: 1,
  warmSec: 1,
  warmConnections: 16,
  warmRounds: 1,
  memoryCounts: [1, 5],
  neighbourRate: 200,
  hostileSec: 1,
  limits: { cpuMs: 50, memoryMb: 128 },
};

export const FULL_PLAN: ComparePlan = {
  coldSamples: 40,
  coldRounds: 4,
  warmUpSec: 1,
  warmSec: 5,
  warmConnections: 16,
  warmRounds: 2,
  memoryCounts: [1, 10, 50],
  neighbourRate: 500,
  hostileSec: 4,
  limits: { cpuMs: 50, memoryMb: 128 },
};

const DISCARDED_COLD = 2;
/** The crash experiment's CPU limit: high enough that the memory limit ends the bomb. */
const CRASH_CPU_MS = 10_000;
/** A model whose processes pass this much RSS during the crash experiment is killed by the lab. */
const RSS_GUARD_MIB = 2048;

export interface Runaway {
  /** The runaway request got an answer (a 5xx naming a limit) before the experiment ended. */
  stopped: boolean;
  /** Time from sending it to its answer, or null if it never came. */
  stopMs: number | null;
  status: number | null;
  neighbourRequests: number;
  neighbourErrors: number;
  neighbourP99Ms: number;
  neighbourP99AloneMs: number;
}

export interface Crash {
  neighbourRequests: number;
  neighbourErrors: number;
  bombStatus: number | null;
  /** Whether the other tenants answered after the bomb. */
  othersServeAfter: boolean;
  /** Set when the lab had to kill the model (its RSS passed RSS_GUARD_MIB). */
  killedByLab: boolean;
}

export interface ModelReport {
  name: ModelName;
  boundary: string;
  notes: string;
  available: boolean;
  unavailableReason?: string;
  coldStartMs?: Summary;
  warm?: { requestsPerSec: number; latencyMs: Summary; errors: number };
  memory?: { baseMiB: number; perTenantMiB: Array<{ tenants: number; perTenantMiB: number }> };
  runaway?: Runaway;
  crash?: Crash;
  /** Experiments that failed for this model, with the reason (the others still ran). */
  errors: string[];
}

export interface CompareReport {
  method: { plan: ComparePlan; text: string[] };
  machine: LabMachine;
  models: ModelReport[];
  /** Each available model's figures divided by process-pool's, from this run. */
  ratios: Array<{ name: ModelName; coldStartP50: number | null; warmRequestsPerSec: number | null; memoryPerTenant: number | null }>;
  startedAt: string;
  durationSec: number;
}

export type Progress = (line: string) => void;

export async function compare(models: Model[], plan: ComparePlan, progress: Progress): Promise<CompareReport> {
  const started = performance.now();
  const machine = labMachine();
  const reports: ModelReport[] = models.map((m) => ({ name: m.name, boundary: m.boundary, notes: m.notes, available: true, errors: [] }));
  const byName = new Map(reports.map((r) => [r.name, r]));
  const available = () => models.filter((m) => byName.get(m.name)!.available);
  const fail = (model: Model, what: string, error: unknown) => {
    const report = byName.get(model.name)!;
    if (error instanceof ModelUnavailableError) {
      report.available = false;
      report.unavailableReason = error.message;
      progress(`${model.name}: unavailable: ${error.message}`);
    } else {
      report.errors.push(`${what}: ${(error as Error).message}`);
      progress(`${model.name}: ${what} failed: ${(error as Error).message}`);
    }
  };

  // Cold start and warm load share one instance per model, all running at once, interleaved.
  const running = new Map<Model, RunningModel>();
  try {
    for (const model of models) {
      progress(`starting ${model.name}`);
      try {
        running.set(model, await model.start(plan.limits));
      } catch (error) {
        fail(model, 'start', error);
      }
    }
    const cold = new Map<Model, number[]>();
    const total = DISCARDED_COLD + plan.coldSamples;
    const perRound = Math.ceil(total / plan.coldRounds);
    for (let round = 0, taken = 0; taken < total; round++, taken += perRound) {
      for (const model of rotate([...running.keys()], round)) {
        const samples = cold.get(model) ?? [];
        cold.set(model, samples);
        for (let i = taken; i < Math.min(total, taken + perRound); i++) {
          try {
            samples.push(await coldStart(running.get(model)!, `cold${i}`));
          } catch (error) {
            fail(model, `cold start ${i}`, error);
            break;
          }
        }
        progress(`[cold start] ${model.name}: ${Math.max(0, samples.length - DISCARDED_COLD)}/${plan.coldSamples}`);
      }
    }
    for (const [model, samples] of cold) {
      if (samples.length > DISCARDED_COLD) byName.get(model.name)!.coldStartMs = summarise(samples.slice(DISCARDED_COLD));
    }

    const warmRuns = new Map<Model, LoadResult[]>();
    for (const [model, instance] of running) {
      try {
        await runLoad(load(instance, 'cold0', { mode: 'concurrency', connections: plan.warmConnections, durationSec: plan.warmUpSec }));
      } catch (error) {
        fail(model, 'warm-up', error);
      }
    }
    for (let round = 0; round < plan.warmRounds; round++) {
      for (const model of rotate([...running.keys()], round)) {
        const runs = warmRuns.get(model) ?? [];
        warmRuns.set(model, runs);
        try {
          runs.push(await runLoad(load(running.get(model)!, 'cold0', { mode: 'concurrency', connections: plan.warmConnections, durationSec: plan.warmSec })));
          progress(`[warm] ${model.name}: round ${round + 1}/${plan.warmRounds}: ${Math.round(requestsPerSec(runs.at(-1)!))} req/s`);
        } catch (error) {
          fail(model, 'warm load', error);
        }
      }
    }
    for (const [model, runs] of warmRuns) {
      if (runs.length === 0) continue;
      byName.get(model.name)!.warm = {
        requestsPerSec: median(runs.map(requestsPerSec)),
        latencyMs: summarise(runs.flatMap((r) => r.latenciesMs)),
        errors: runs.reduce((n, r) => n + errorCount(r), 0),
      };
    }
  } finally {
    await Promise.all([...running.values()].map((r) => r.dispose().catch(() => {})));
  }

  // Memory, runaway and crash each get a fresh instance per model.
  for (const model of available()) {
    progress(`[memory] ${model.name}`);
    await withInstance(model, plan, fail, 'memory', async (instance) => {
      byName.get(model.name)!.memory = await memory(instance, plan.memoryCounts);
    });
  }
  for (const model of available()) {
    progress(`[runaway] ${model.name}`);
    await withInstance(model, plan, fail, 'runaway', async (instance) => {
      byName.get(model.name)!.runaway = await runaway(instance, plan);
    });
  }
  for (const model of available()) {
    progress(`[crash] ${model.name}`);
    // A CPU limit would stop the bomb before memory runs out: here memory is what must end it.
    await withInstance(model, { ...plan, limits: { ...plan.limits, cpuMs: CRASH_CPU_MS } }, fail, 'crash', async (instance) => {
      byName.get(model.name)!.crash = await crash(instance, plan);
    });
  }

  return {
    method: { plan, text: methodText(plan) },
    machine,
    models: reports,
    ratios: ratios(reports),
    startedAt: new Date(Date.now() - (performance.now() - started)).toISOString(),
    durationSec: Math.round((performance.now() - started) / 100) / 10,
  };
}

async function withInstance(
  model: Model,
  plan: ComparePlan,
  fail: (model: Model, what: string, error: unknown) => void,
  what: string,
  run: (instance: RunningModel) => Promise<void>,
): Promise<void> {
  let instance: RunningModel | null = null;
  try {
    instance = await model.start(plan.limits);
    await run(instance);
  } catch (error) {
    fail(model, what, error);
  } finally {
    await instance?.dispose().catch(() => {});
  }
}

/** Deploy a new tenant and time it until its first response is complete. */
async function coldStart(instance: RunningModel, name: string): Promise<number> {
  await instance.settle?.();
  const t0 = performance.now();
  await instance.deploy(name, WORKLOADS.hello);
  const { status, text } = await get(instance, name);
  const ms = performance.now() - t0;
  if (status !== 200 || text !== expectedBody('hello')) throw new Error(`tenant ${name} answered ${status}: ${text.slice(0, 200)}`);
  return ms;
}

async function memory(instance: RunningModel, counts: number[]) {
  await instance.settle?.();
  await pause(500);
  const base = pssMiB(instance);
  const perTenantMiB: Array<{ tenants: number; perTenantMiB: number }> = [];
  let live = 0;
  for (const count of counts) {
    for (; live < count; live++) {
      await instance.deploy(`mem${live}`, WORKLOADS.hello);
      const { status } = await get(instance, `mem${live}`);
      if (status !== 200) throw new Error(`tenant mem${live} answered ${status}`);
    }
    await instance.settle?.();
    await pause(500);
    perTenantMiB.push({ tenants: count, perTenantMiB: round2((pssMiB(instance) - base) / count) });
  }
  return { baseMiB: round2(base), perTenantMiB };
}

async function runaway(instance: RunningModel, plan: ComparePlan): Promise<Runaway> {
  await instance.deploy('neighbour', WORKLOADS.hello);
  await instance.deploy('runaway', WORKLOADS.runaway);
  await get(instance, 'neighbour');
  await instance.settle?.();
  const steady = load(instance, 'neighbour', { mode: 'rate', rate: plan.neighbourRate, connections: 32, durationSec: plan.hostileSec, timeoutMs: 3000 });
  const alone = await runLoad(steady);
  const during = runLoad(steady);
  await pause(200);
  const waitMs = plan.hostileSec * 1000 + 1000;
  const t0 = performance.now();
  const answer = await get(instance, 'runaway', '/', waitMs).catch(() => null);
  const stopMs = answer ? performance.now() - t0 : null;
  const hostile = await during;
  return {
    stopped: answer !== null && answer.status >= 500,
    stopMs: stopMs === null ? null : round2(stopMs),
    status: answer?.status ?? null,
    neighbourRequests: hostile.latenciesMs.length,
    neighbourErrors: errorCount(hostile),
    neighbourP99Ms: round2(summarise(hostile.latenciesMs).p99),
    neighbourP99AloneMs: round2(summarise(alone.latenciesMs).p99),
  };
}

async function crash(instance: RunningModel, plan: ComparePlan): Promise<Crash> {
  const others = ['n1', 'n2', 'n3'];
  for (const name of others) await instance.deploy(name, WORKLOADS.hello);
  await instance.deploy('bomb', WORKLOADS.bomb);
  for (const name of others) await get(instance, name);
  await instance.settle?.();
  let killedByLab = false;
  const guard = setInterval(() => {
    const pids = instance.pids();
    const rss = pids.reduce((sum, pid) => sum + rssMiB(pid), 0);
    if (rss > RSS_GUARD_MIB) {
      killedByLab = true;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  }, 50);
  try {
    const loads = others.map((name) =>
      runLoad(load(instance, name, { mode: 'rate', rate: plan.neighbourRate / others.length, connections: 16, durationSec: plan.hostileSec, timeoutMs: 3000 })),
    );
    await pause(200);
    const answer = await get(instance, 'bomb', '/', plan.hostileSec * 1000 + 2000).catch(() => null);
    const results = await Promise.all(loads);
    const after = await Promise.all(others.map((name) => get(instance, name, '/', 2000).catch(() => null)));
    return {
      neighbourRequests: results.reduce((n, r) => n + r.latenciesMs.length, 0),
      neighbourErrors: results.reduce((n, r) => n + errorCount(r), 0),
      bombStatus: answer?.status ?? null,
      othersServeAfter: after.every((a) => a?.status === 200),
      killedByLab,
    };
  } finally {
    clearInterval(guard);
  }
}

function load(instance: RunningModel, tenant: string, options: Partial<LoadOptions> & Pick<LoadOptions, 'mode' | 'connections' | 'durationSec'>): LoadOptions {
  const { url, headers } = instance.target(tenant);
  return { url, headers, rate: 0, ...options };
}

async function get(instance: RunningModel, tenant: string, path = '/', timeoutMs = 30_000): Promise<{ status: number; text: string }> {
  const { url, headers } = instance.target(tenant);
  const res = await request(new URL(path, url), { headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  return { status: res.statusCode, text: await res.body.text() };
}

function pssMiB(instance: RunningModel): number {
  let kb = 0;
  for (const pid of instance.pids()) {
    try {
      kb += processMemory(pid).pssKb;
    } catch {
      // Gone between listing and reading.
    }
  }
  return kb / 1024;
}

function rssMiB(pid: number): number {
  try {
    return processMemory(pid).rssKb / 1024;
  } catch {
    return 0;
  }
}

function ratios(reports: ModelReport[]): CompareReport['ratios'] {
  const base = reports.find((r) => r.name === 'process-pool');
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? round2(a / b) : null);
  const lastMemory = (r: ModelReport | undefined) => r?.memory?.perTenantMiB.at(-1)?.perTenantMiB;
  return reports
    .filter((r) => r.available)
    .map((r) => ({
      name: r.name,
      coldStartP50: ratio(r.coldStartMs?.p50, base?.coldStartMs?.p50),
      warmRequestsPerSec: ratio(r.warm?.requestsPerSec, base?.warm?.requestsPerSec),
      memoryPerTenant: ratio(lastMemory(r), lastMemory(base)),
    }));
}

export function methodText(plan: ComparePlan): string[] {
  return [
    `every model runs the same Workers module scripts (src/lab/workloads.ts), reached over HTTP on 127.0.0.1 by the same undici load generator in a worker thread.`,
    `limits asked of every model: ${plan.limits.cpuMs} ms CPU (or wall, where CPU cannot be read) per request, ${plan.limits.memoryMb} MiB per tenant.`,
    `cold start: deploy a new tenant + its first complete response, ${plan.coldSamples} per model after ${DISCARDED_COLD} discarded, in ${plan.coldRounds} rounds with the models interleaved (order rotated each round).`,
    `warm: ${plan.warmConnections} connections back to back for ${plan.warmSec} s per model and round, ${plan.warmRounds} round(s) interleaved, after a ${plan.warmUpSec} s warm-up; req/s is the median of rounds.`,
    `memory: PSS (smaps_rollup) of all the model's processes, growth per tenant with ${plan.memoryCounts.join(', ')} tenants live (each served once).`,
    `runaway: a hello neighbour at ${plan.neighbourRate} req/s (open loop) for ${plan.hostileSec} s alone, then again while one for (;;) {} request is sent; stopped = it got a 5xx.`,
    `crash: three neighbours at ${plan.neighbourRate} req/s in total while one tenant allocates without end (CPU limit raised to ${CRASH_CPU_MS} ms so that memory ends it); the lab kills a model whose RSS passes ${RSS_GUARD_MIB} MiB.`,
    `memory, runaway and crash each start a fresh instance of the model.`,
  ];
}

function rotate<T>(items: T[], by: number): T[] {
  if (items.length === 0) return items;
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

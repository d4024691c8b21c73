/**
 * `edgeproc bench`: edgeproc's own cold starts, each case timed at the client
 * from deploying a new tenant to its first complete response:
 *   hit   — a warm child is waiting (the pool refilled before each sample);
 *   miss  — no pool (--warm-pool 0): a Node child is started for the tenant;
 *   burst — N new tenants deployed at once against the default pool of 2, so
 *           most of them wait for children started on demand.
 */
import { request } from 'undici';
import { processFreshModel, processPoolModel } from './models/edgeproc.js';
import type { LabLimits, RunningModel } from './models/types.js';
import { summarise, type Summary } from './stats.js';
import { expectedBody, WORKLOADS } from './workloads.js';

export interface ColdBenchPlan {
  hitSamples: number;
  missSamples: number;
  burst: number;
  burstRounds: number;
}

export const COLD_QUICK: ColdBenchPlan = { hitSamples: 20, missSamples: 5, burst: 8, burstRounds: 1 };
export const COLD_FULL: ColdBenchPlan = { hitSamples: 150, missSamples: 25, burst: 20, burstRounds: 3 };
const DISCARDED = 3;
const LIMITS: LabLimits = { cpuMs: 50, memoryMb: 128 };

export interface ColdBenchReport {
  plan: ColdBenchPlan;
  hit: Summary;
  miss: Summary;
  /** Every tenant of every burst, each timed from the moment the burst began. */
  burst: Summary;
}

export async function coldBench(plan: ColdBenchPlan, progress: (line: string) => void): Promise<ColdBenchReport> {
  const hit = await samples(await processPoolModel.start(LIMITS), 'hit', plan.hitSamples, progress);
  const miss = await samples(await processFreshModel.start(LIMITS), 'miss', plan.missSamples, progress);
  const burst: number[] = [];
  for (let round = 0; round < plan.burstRounds; round++) {
    const model = await processPoolModel.start(LIMITS);
    try {
      await model.settle?.();
      const t0 = performance.now();
      const times = await Promise.all(Array.from({ length: plan.burst }, (_, i) => first(model, `burst${i}`, t0)));
      burst.push(...times);
      progress(`[burst] round ${round + 1}/${plan.burstRounds}: ${plan.burst} tenants, last answered after ${Math.max(...times).toFixed(0)} ms`);
    } finally {
      await model.dispose();
    }
  }
  return { plan, hit, miss, burst: summarise(burst) };
}

async function samples(model: RunningModel, label: string, count: number, progress: (line: string) => void): Promise<Summary> {
  const times: number[] = [];
  try {
    for (let i = 0; i < DISCARDED + count; i++) {
      await model.settle?.();
      times.push(await first(model, `${label}${i}`, performance.now()));
      if ((i + 1) % 10 === 0) progress(`[${label}] ${Math.max(0, i + 1 - DISCARDED)}/${count}`);
    }
  } finally {
    await model.dispose();
  }
  return summarise(times.slice(DISCARDED));
}

async function first(model: RunningModel, name: string, since: number): Promise<number> {
  await model.deploy(name, WORKLOADS.hello);
  const { url, headers } = model.target(name);
  const res = await request(url, { headers });
  const text = await res.body.text();
  if (res.statusCode !== 200 || text !== expectedBody('hello')) throw new Error(`tenant ${name} answered ${res.statusCode}: ${text.slice(0, 200)}`);
  return performance.now() - since;
}

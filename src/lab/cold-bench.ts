/**
 * `edgeproc bench`: edgeproc's own cold starts, each case timed at the client
 * from deploying a new tenant to its first complete response:
 *   hit   — a warm child is waiting (the pool refilled before each sample);
 *   miss  — no pool (--warm-pool 0): a Node child is started for the tenant;
 *   burst — N new tenants deployed at once against the default pool of 2, so
 *           most of them wait for children started on demand.
 * A cold start that is answered with an error is a result, not a broken bench: it is counted and
 * its reason kept (a pool miss's first hello-world request was once charged 78 ms of CPU, past
 * the 50 ms limit, while the test suite loaded the machine), and the other samples still count.
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
  /** Cold starts answered with an error, per case (not in the summaries), and what the first few said. */
  failed: Record<ColdCase, number>;
  failures: string[];
}

/** The cases, in the order the bench runs and reports them. */
export const COLD_CASES = ['hit', 'miss', 'burst'] as const;
export type ColdCase = (typeof COLD_CASES)[number];

/** Reasons kept in the report: enough to say what went wrong, not every repeat. */
const FAILURES_KEPT = 5;

/** A tenant answered its first request with an error status or a wrong body. */
class ColdStartFailed extends Error {}

class Failures {
  readonly failed = Object.fromEntries(COLD_CASES.map((kind) => [kind, 0])) as Record<ColdCase, number>;
  readonly reasons: string[] = [];

  /** Counts `error` if it is a failed cold start; anything else is the bench's own failure and is thrown. */
  record(kind: ColdCase, error: unknown): void {
    if (!(error instanceof ColdStartFailed)) throw error;
    this.failed[kind]++;
    if (this.reasons.length < FAILURES_KEPT) this.reasons.push(`${kind}: ${error.message}`);
  }
}

export async function coldBench(plan: ColdBenchPlan, progress: (line: string) => void): Promise<ColdBenchReport> {
  const failures = new Failures();
  const hit = await samples(await processPoolModel.start(LIMITS), 'hit', plan.hitSamples, progress, failures);
  const miss = await samples(await processFreshModel.start(LIMITS), 'miss', plan.missSamples, progress, failures);
  const burst: number[] = [];
  for (let round = 0; round < plan.burstRounds; round++) {
    const model = await processPoolModel.start(LIMITS);
    try {
      await model.settle?.();
      const t0 = performance.now();
      const outcomes = await Promise.allSettled(Array.from({ length: plan.burst }, (_, i) => first(model, `burst${i}`, t0)));
      const times: number[] = [];
      for (const outcome of outcomes) {
        if (outcome.status === 'fulfilled') times.push(outcome.value);
        else failures.record('burst', outcome.reason);
      }
      burst.push(...times);
      progress(`[burst] round ${round + 1}/${plan.burstRounds}: ${times.length} of ${plan.burst} tenants answered, the last after ${Math.max(0, ...times).toFixed(0)} ms`);
    } finally {
      await model.dispose();
    }
  }
  return { plan, hit, miss, burst: summarise(burst), failed: failures.failed, failures: failures.reasons };
}

async function samples(model: RunningModel, kind: ColdCase, count: number, progress: (line: string) => void, failures: Failures): Promise<Summary> {
  const times: number[] = [];
  try {
    for (let i = 0; i < DISCARDED + count; i++) {
      await model.settle?.();
      try {
        const ms = await first(model, `${kind}${i}`, performance.now());
        if (i >= DISCARDED) times.push(ms);
      } catch (error) {
        failures.record(kind, error);
      }
      if ((i + 1) % 10 === 0) progress(`[${kind}] ${Math.max(0, i + 1 - DISCARDED)}/${count}`);
    }
  } finally {
    await model.dispose();
  }
  return summarise(times);
}

async function first(model: RunningModel, name: string, since: number): Promise<number> {
  await model.deploy(name, WORKLOADS.hello);
  const { url, headers } = model.target(name);
  const res = await request(url, { headers });
  const text = await res.body.text();
  if (res.statusCode !== 200 || text !== expectedBody('hello')) throw new ColdStartFailed(`tenant ${name} answered ${res.statusCode}: ${text.trim().replace(/\s+/g, ' ').slice(0, 200)}`);
  return performance.now() - since;
}

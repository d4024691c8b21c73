/**
 * Several tenants of one daemon under the same wrk, in turn, for several rounds (after a warm-up
 * of each), with the CPU each request cost chosen processes: the daemon, the tenant's child, an
 * origin. CPU from every thread's /proc/PID/task/TID/schedstat across each run (nanoseconds), so a
 * run of 100k+ requests resolves well under a microsecond per request. For benchmarks that ask
 * what one kind of request costs against another (streams, proxy).
 */
import { adminState, type RunningDaemon } from './daemon.js';
import { cpuNs } from './processes.js';
import { table } from './report.js';
import { median } from './stats.js';
import { runWrk, type WrkOptions } from './wrk.js';

export interface RoundSample {
  tenant: string;
  round: number;
  requestsPerSec: number;
  p99Ms: number;
  errors: number;
  /** µs of CPU per request, by the names of `others` plus `daemon` and `child`. */
  usPerRequest: Record<string, number>;
}

export interface RoundSummary {
  requestsPerSec: number;
  p99Ms: number;
  errors: number;
  usPerRequest: Record<string, number>;
}

export interface TenantRounds {
  samples: RoundSample[];
  summaries: Record<string, RoundSummary>;
  /** Each round's req/s of `tenant` over `reference`, measured side by side: the fairer figure on a noisy host. */
  ratio(tenant: string, reference: string): number[];
}

/**
 * `others`: processes besides the daemon and the tenant's child whose CPU counts (an origin).
 * Every tenant must run on one instance (so its child is the one measured); a warm-up answering
 * errors stops the benchmark, pointing at the daemon's log.
 */
export async function tenantRounds(
  daemon: RunningDaemon,
  tenants: readonly string[],
  options: (tenant: string) => WrkOptions,
  rounds: number,
  others: Record<string, number> = {},
): Promise<TenantRounds> {
  for (const tenant of tenants) {
    const warm = await runWrk(`${daemon.url}/`, { ...options(tenant), durationSec: 3 });
    if (warm.non2xx > 0) throw new Error(`${tenant} answered ${warm.non2xx} errors in its warm-up; see the daemon's log in bench/results/`);
  }
  const state = await adminState(daemon);
  const childOf = (tenant: string) => {
    const pids = state.workers.find((w) => w.name === tenant)?.pids ?? [];
    if (pids.length !== 1) throw new Error(`worker ${tenant} has ${pids.length} instances after its warm-up, expected 1`);
    return pids[0]!;
  };
  const samples: RoundSample[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const tenant of tenants) {
      const pids: Record<string, number> = { daemon: daemon.process.pid, child: childOf(tenant), ...others };
      const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuNs(pid)]));
      const result = await runWrk(`${daemon.url}/`, options(tenant));
      const usPerRequest = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, (cpuNs(pid) - before[name]!) / 1000 / result.requests]));
      const errors = result.non2xx + Object.values(result.socketErrors).reduce((a, b) => a + b, 0);
      samples.push({ tenant, round, requestsPerSec: result.requestsPerSec, p99Ms: result.latencyMs.p99, errors, usPerRequest });
      const cpu = Object.entries(usPerRequest).map(([name, us]) => `${name} ${us.toFixed(1)}`).join(', ');
      console.log(`round ${round} ${tenant}: ${result.requestsPerSec.toFixed(0)} req/s, p99 ${result.latencyMs.p99} ms, µs/request ${cpu}${errors ? `, ${errors} errors` : ''}`);
    }
  }
  const summaries: Record<string, RoundSummary> = {};
  for (const tenant of tenants) {
    const of = samples.filter((s) => s.tenant === tenant);
    const names = Object.keys(of[0]!.usPerRequest);
    summaries[tenant] = {
      requestsPerSec: median(of.map((s) => s.requestsPerSec)),
      p99Ms: median(of.map((s) => s.p99Ms)),
      errors: of.reduce((n, s) => n + s.errors, 0),
      usPerRequest: Object.fromEntries(names.map((name) => [name, median(of.map((s) => s.usPerRequest[name]!))])),
    };
  }
  const requestsPerSec = (round: number, tenant: string) => samples.find((s) => s.round === round && s.tenant === tenant)!.requestsPerSec;
  return {
    samples,
    summaries,
    ratio: (tenant, reference) => Array.from({ length: rounds }, (_, i) => requestsPerSec(i + 1, tenant) / requestsPerSec(i + 1, reference)),
  };
}

/** The medians of the rounds, a row per tenant. */
export function roundsTable(rounds: TenantRounds): string {
  const summaries = Object.entries(rounds.summaries);
  const names = Object.keys(summaries[0]![1].usPerRequest);
  return table(
    ['tenant (medians of rounds)', 'req/s', 'p99 ms', ...names.map((name) => `${name} µs/request`), 'errors'],
    summaries.map(([tenant, s]) => [tenant, Math.round(s.requestsPerSec), s.p99Ms, ...names.map((name) => s.usPerRequest[name]!), s.errors]),
  );
}

/**
 * What a subrequest costs: a worker that answers each request with one `fetch()` to a local
 * origin (a bare `node:http` server in its own process) and returns the origin's response as
 * it is, against a hello worker, under the same `wrk`, in turn, for several rounds. Beside
 * req/s and p99, the CPU each request cost the daemon (which performs the fetch with undici),
 * the worker's child and the origin, from every thread's /proc/PID/task/TID/schedstat across
 * each run. Real Workers apps proxy and call APIs; this is where the daemon's outbound path shows.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminState, startDaemon, type RunningDaemon } from './lib/daemon.js';
import { startBareNode } from './lib/bare-node.js';
import { describeMachine, machine } from './lib/machine.js';
import { cpuNs, type RunningServer } from './lib/processes.js';
import { resultsPath, table, writeResult } from './lib/report.js';
import { median } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';
import { runWrk, wrkArgs, type WrkOptions } from './lib/wrk.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WRK: WrkOptions = { threads: 1, connections: 16, durationSec: Number(process.env.BENCH_DURATION_SEC ?? 8) };
const tenants = (origin: string) => ({
  hello: `export default { fetch() { return new Response('hello\\n'); } };\n`,
  proxy: `export default { fetch() { return fetch(${JSON.stringify(origin)}); } };\n`,
});
type Tenant = 'hello' | 'proxy';
const TENANTS: Tenant[] = ['hello', 'proxy'];

interface Sample {
  tenant: Tenant;
  round: number;
  requestsPerSec: number;
  p99Ms: number;
  errors: number;
  daemonUsPerRequest: number;
  childUsPerRequest: number;
  originUsPerRequest: number;
}

export async function proxy(): Promise<void> {
  const facts = machine();
  const dir = tempDir('proxy');
  console.log('\n## proxy — what a subrequest costs\n');
  console.log(`method: bin/edgeproc.js serve <dir> --egress-allow 127.0.0.1/32 --idle-timeout 600000 --recycle-after 0;`);
  console.log(`        wrk ${wrkArgs('URL', WRK).join(' ')} per tenant, in turn, ${ROUNDS} rounds after a 3 s warm-up each;`);
  console.log('        hello: new Response(string); proxy: return fetch(origin), the origin a bare node:http server answering 21 bytes;');
  console.log('        CPU per request of the daemon, the tenant\'s child and the origin from every thread\'s schedstat across each run.');
  console.log(describeMachine(facts));

  let origin: RunningServer | undefined;
  let daemon: RunningDaemon | undefined;
  try {
    origin = await startBareNode(resultsPath('proxy.origin.log'));
    for (const [name, source] of Object.entries(tenants(`${origin.url}/`))) writeFileSync(join(dir, `${name}.mjs`), source);
    daemon = await startDaemon(dir, { idleTimeoutMs: 600_000, recycleAfter: 0, egressAllow: '127.0.0.1/32' }, resultsPath('proxy.daemon.log'));
    const options = (tenant: Tenant): WrkOptions => ({ ...WRK, headers: [`Host: ${tenant}.localhost`] });
    for (const tenant of TENANTS) {
      const warm = await runWrk(`${daemon.url}/`, { ...options(tenant), durationSec: 3 });
      if (warm.non2xx > 0) throw new Error(`${tenant} answered ${warm.non2xx} errors in its warm-up; see ${resultsPath('proxy.daemon.log')}`);
    }
    const state = await adminState(daemon);
    const pidOf = (tenant: Tenant) => {
      const pids = state.workers.find((w) => w.name === tenant)?.pids ?? [];
      if (pids.length !== 1) throw new Error(`worker ${tenant} has ${pids.length} instances after its warm-up, expected 1`);
      return pids[0]!;
    };
    const samples: Sample[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const tenant of TENANTS) {
        const pids = [daemon.process.pid, pidOf(tenant), origin.process.pid];
        const before = pids.map(cpuNs);
        const result = await runWrk(`${daemon.url}/`, options(tenant));
        const after = pids.map(cpuNs);
        const errors = result.non2xx + Object.values(result.socketErrors).reduce((a, b) => a + b, 0);
        const perRequest = (i: number) => (after[i]! - before[i]!) / 1000 / result.requests;
        const sample: Sample = {
          tenant,
          round,
          requestsPerSec: result.requestsPerSec,
          p99Ms: result.latencyMs.p99,
          errors,
          daemonUsPerRequest: perRequest(0),
          childUsPerRequest: perRequest(1),
          originUsPerRequest: perRequest(2),
        };
        samples.push(sample);
        console.log(
          `round ${round} ${tenant}: ${result.requestsPerSec.toFixed(0)} req/s, p99 ${result.latencyMs.p99} ms, µs/request daemon ${sample.daemonUsPerRequest.toFixed(1)}, child ${sample.childUsPerRequest.toFixed(1)}, origin ${sample.originUsPerRequest.toFixed(1)}${errors ? `, ${errors} errors` : ''}`,
        );
      }
    }
    const summary = (tenant: Tenant) => {
      const of = samples.filter((s) => s.tenant === tenant);
      const mid = (pick: (s: Sample) => number) => median(of.map(pick));
      return {
        requestsPerSec: mid((s) => s.requestsPerSec),
        p99Ms: mid((s) => s.p99Ms),
        daemonUsPerRequest: mid((s) => s.daemonUsPerRequest),
        childUsPerRequest: mid((s) => s.childUsPerRequest),
        originUsPerRequest: mid((s) => s.originUsPerRequest),
        errors: of.reduce((n, s) => n + s.errors, 0),
      };
    };
    const summaries = { hello: summary('hello'), proxy: summary('proxy') };
    // Rounds ran side by side, so each round's ratio is the fairer figure on a noisy host.
    const ratios = Array.from({ length: ROUNDS }, (_, i) => {
      const of = (tenant: Tenant) => samples.find((s) => s.round === i + 1 && s.tenant === tenant)!.requestsPerSec;
      return of('proxy') / of('hello');
    });
    console.log('');
    console.log(
      table(
        ['tenant (medians of rounds)', 'req/s', 'p99 ms', 'daemon µs/request', 'child µs/request', 'origin µs/request', 'errors'],
        TENANTS.map((t) => {
          const s = summaries[t];
          return [t, Math.round(s.requestsPerSec), s.p99Ms, s.daemonUsPerRequest, s.childUsPerRequest, s.originUsPerRequest, s.errors];
        }),
      ),
    );
    console.log(`proxy / hello req/s, median of the rounds' ratios: ${median(ratios).toFixed(3)}`);
    const file = writeResult('proxy', { method: { wrk: wrkArgs('URL', WRK), rounds: ROUNDS }, machine: facts, samples, summaries, ratios });
    console.log(`results: ${file}`);
  } finally {
    await daemon?.stop();
    await origin?.stop();
  }
}

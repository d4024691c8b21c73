/**
 * What a body stream costs per request: three tenants under the same `wrk -t1 -c32`, in turn,
 * for several rounds: hello (a string body, which the runner sends without a stream), a
 * response whose body is a ReadableStream, and a POST whose request body the tenant reads
 * (the runner hands it in as a ReadableStream). Beside req/s and p99, the CPU each request
 * cost the worker's child and the daemon, from /proc/PID/stat across the run (10 ms ticks;
 * a run counts 100k+ requests, so well under 1%). This is where runner/plain-streams.ts shows.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminState, startDaemon, type RunningDaemon } from './lib/daemon.js';
import { describeMachine, machine } from './lib/machine.js';
import { resultsPath, table, writeResult } from './lib/report.js';
import { median } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';
import { runWrk, wrkArgs, type WrkOptions } from './lib/wrk.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WRK: WrkOptions = { threads: 1, connections: 32, durationSec: Number(process.env.BENCH_DURATION_SEC ?? 8) };
const TENANTS = {
  hello: `export default { fetch() { return new Response('hello\\n'); } };\n`,
  streamed: `const bytes = new TextEncoder().encode('streamed hello\\n');\nexport default { fetch() { return new Response(new ReadableStream({ start(c) { c.enqueue(bytes); c.close(); } })); } };\n`,
  echo: `export default { async fetch(request) { return new Response(await request.text()); } };\n`,
} as const;
type Tenant = keyof typeof TENANTS;
const POST_BODY_BYTES = 512;

interface Sample {
  tenant: Tenant;
  round: number;
  requestsPerSec: number;
  p99Ms: number;
  errors: number;
  childUsPerRequest: number;
  daemonUsPerRequest: number;
}

export async function streams(): Promise<void> {
  const facts = machine();
  const dir = tempDir('streams');
  for (const [name, source] of Object.entries(TENANTS)) writeFileSync(join(dir, `${name}.mjs`), source);
  const post = join(dir, 'post.lua');
  writeFileSync(post, `wrk.method = "POST"\nwrk.body = string.rep("x", ${POST_BODY_BYTES})\nwrk.headers["Content-Type"] = "text/plain"\n`);
  const options = (tenant: Tenant): WrkOptions => ({ ...WRK, headers: [`Host: ${tenant}.localhost`], ...(tenant === 'echo' ? { script: post } : {}) });
  console.log('\n## streams — what a body stream costs per request\n');
  console.log(`method: bin/edgeproc.js serve <dir> --idle-timeout 600000; wrk ${wrkArgs('URL', WRK).join(' ')} per tenant, in turn, ${ROUNDS} rounds after a 3 s warm-up each;`);
  console.log(`        hello: new Response(string); streamed: new Response(new ReadableStream(...)); echo: POST of ${POST_BODY_BYTES} bytes, await request.text();`);
  console.log('        CPU per request of the tenant\'s child and of the daemon from /proc/PID/stat (utime + stime) across each run.');
  console.log(describeMachine(facts));

  let daemon: RunningDaemon | undefined;
  try {
    daemon = await startDaemon(dir, { idleTimeoutMs: 600_000 }, resultsPath('streams.daemon.log'));
    const tenants = Object.keys(TENANTS) as Tenant[];
    for (const tenant of tenants) await runWrk(`${daemon.url}/`, { ...options(tenant), durationSec: 3 });
    const state = await adminState(daemon);
    const pidOf = (tenant: Tenant) => {
      const pids = state.workers.find((w) => w.name === tenant)?.pids ?? [];
      if (pids.length !== 1) throw new Error(`worker ${tenant} has ${pids.length} instances after its warm-up, expected 1`);
      return pids[0]!;
    };
    const samples: Sample[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const tenant of tenants) {
        const child = pidOf(tenant);
        const before = [cpuMs(child), cpuMs(daemon.process.pid)];
        const result = await runWrk(`${daemon.url}/`, options(tenant));
        const after = [cpuMs(child), cpuMs(daemon.process.pid)];
        const errors = result.non2xx + Object.values(result.socketErrors).reduce((a, b) => a + b, 0);
        const perRequest = (i: number) => ((after[i]! - before[i]!) * 1000) / result.requests;
        samples.push({ tenant, round, requestsPerSec: result.requestsPerSec, p99Ms: result.latencyMs.p99, errors, childUsPerRequest: perRequest(0), daemonUsPerRequest: perRequest(1) });
        console.log(`round ${round} ${tenant}: ${result.requestsPerSec.toFixed(0)} req/s, p99 ${result.latencyMs.p99} ms, child ${perRequest(0).toFixed(1)} µs/request`);
      }
    }
    const summary = (tenant: Tenant) => {
      const of = samples.filter((s) => s.tenant === tenant);
      return {
        requestsPerSec: median(of.map((s) => s.requestsPerSec)),
        p99Ms: median(of.map((s) => s.p99Ms)),
        childUsPerRequest: median(of.map((s) => s.childUsPerRequest)),
        daemonUsPerRequest: median(of.map((s) => s.daemonUsPerRequest)),
        errors: of.reduce((n, s) => n + s.errors, 0),
      };
    };
    const summaries = Object.fromEntries(tenants.map((t) => [t, summary(t)])) as Record<Tenant, ReturnType<typeof summary>>;
    console.log('');
    console.log(
      table(
        ['tenant (medians of rounds)', 'req/s', 'p99 ms', 'child µs/request', 'daemon µs/request', 'errors'],
        tenants.map((t) => [t, Math.round(summaries[t].requestsPerSec), summaries[t].p99Ms, summaries[t].childUsPerRequest, summaries[t].daemonUsPerRequest, summaries[t].errors]),
      ),
    );
    const file = writeResult('streams', { method: { wrk: wrkArgs('URL', WRK), rounds: ROUNDS, tenants: TENANTS, postBodyBytes: POST_BODY_BYTES }, machine: facts, samples, summaries });
    console.log(`results: ${file}`);
  } finally {
    await daemon?.stop();
  }
}

/** CPU of a process so far, every thread, in ms (10 ms ticks). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const after = fields.slice(fields.lastIndexOf(')') + 2).split(' ');
  return (Number(after[11]) + Number(after[12])) * 10;
}

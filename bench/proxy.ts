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
import { startDaemon, type RunningDaemon } from './lib/daemon.js';
import { startBareNode } from './lib/bare-node.js';
import { describeMachine, machine } from './lib/machine.js';
import type { RunningServer } from './lib/processes.js';
import { resultsPath, writeResult } from './lib/report.js';
import { median } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';
import { roundsTable, tenantRounds } from './lib/tenant-rounds.js';
import { wrkArgs, type WrkOptions } from './lib/wrk.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WRK: WrkOptions = { threads: 1, connections: 16, durationSec: Number(process.env.BENCH_DURATION_SEC ?? 8) };
const tenants = (origin: string) => ({
  hello: `export default { fetch() { return new Response('hello\\n'); } };\n`,
  proxy: `export default { fetch() { return fetch(${JSON.stringify(origin)}); } };\n`,
});
const TENANTS = ['hello', 'proxy'] as const;

export async function proxy(): Promise<void> {
  const facts = machine();
  const dir = tempDir('proxy');
  console.log('\n## proxy — what a subrequest costs\n');
  console.log(`method: bin/edgeproc.js serve <dir> --egress-allow 127.0.0.1/32 --idle-timeout 600000 --recycle-after 0;`);
  console.log(`        wrk ${wrkArgs('URL', WRK).join(' ')} per tenant, in turn, ${ROUNDS} rounds after a 3 s warm-up each;`);
  console.log('        hello: new Response(string); proxy: return fetch(origin), the origin a bare node:http server answering 21 bytes;');
  console.log("        CPU per request of the daemon, the tenant's child and the origin from every thread's schedstat across each run.");
  console.log(describeMachine(facts));

  let origin: RunningServer | undefined;
  let daemon: RunningDaemon | undefined;
  try {
    origin = await startBareNode(resultsPath('proxy.origin.log'));
    for (const [name, source] of Object.entries(tenants(`${origin.url}/`))) writeFileSync(join(dir, `${name}.mjs`), source);
    daemon = await startDaemon(dir, { idleTimeoutMs: 600_000, recycleAfter: 0, egressAllow: '127.0.0.1/32' }, resultsPath('proxy.daemon.log'));
    const rounds = await tenantRounds(daemon, TENANTS, (tenant) => ({ ...WRK, headers: [`Host: ${tenant}.localhost`] }), ROUNDS, { origin: origin.process.pid });
    const ratios = rounds.ratio('proxy', 'hello');
    console.log('');
    console.log(roundsTable(rounds));
    console.log(`proxy / hello req/s, median of the rounds' ratios: ${median(ratios).toFixed(3)}`);
    const file = writeResult('proxy', { method: { wrk: wrkArgs('URL', WRK), rounds: ROUNDS }, machine: facts, samples: rounds.samples, summaries: rounds.summaries, ratios });
    console.log(`results: ${file}`);
  } finally {
    await daemon?.stop();
    await origin?.stop();
  }
}

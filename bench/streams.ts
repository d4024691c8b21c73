/**
 * What a body stream costs per request: three tenants under the same `wrk -t1 -c32`, in turn,
 * for several rounds: hello (a string body, which the runner sends without a stream), a
 * response whose body is a ReadableStream, and a POST whose request body the tenant reads
 * (the runner hands it in as a ReadableStream). Beside req/s and p99, the CPU each request
 * cost the worker's child and the daemon (bench/lib/tenant-rounds.ts). This is where
 * runner/plain-streams.ts shows.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type RunningDaemon } from './lib/daemon.js';
import { describeMachine, machine } from './lib/machine.js';
import { resultsPath, writeResult } from './lib/report.js';
import { roundsTable, tenantRounds } from './lib/tenant-rounds.js';
import { tempDir } from './lib/tmp.js';
import { wrkArgs, type WrkOptions } from './lib/wrk.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WRK: WrkOptions = { threads: 1, connections: 32, durationSec: Number(process.env.BENCH_DURATION_SEC ?? 8) };
const TENANTS = {
  hello: `export default { fetch() { return new Response('hello\\n'); } };\n`,
  streamed: `const bytes = new TextEncoder().encode('streamed hello\\n');\nexport default { fetch() { return new Response(new ReadableStream({ start(c) { c.enqueue(bytes); c.close(); } })); } };\n`,
  echo: `export default { async fetch(request) { return new Response(await request.text()); } };\n`,
} as const;
const POST_BODY_BYTES = 512;

export async function streams(): Promise<void> {
  const facts = machine();
  const dir = tempDir('streams');
  for (const [name, source] of Object.entries(TENANTS)) writeFileSync(join(dir, `${name}.mjs`), source);
  const post = join(dir, 'post.lua');
  writeFileSync(post, `wrk.method = "POST"\nwrk.body = string.rep("x", ${POST_BODY_BYTES})\nwrk.headers["Content-Type"] = "text/plain"\n`);
  const options = (tenant: string): WrkOptions => ({ ...WRK, headers: [`Host: ${tenant}.localhost`], ...(tenant === 'echo' ? { script: post } : {}) });
  console.log('\n## streams — what a body stream costs per request\n');
  console.log(`method: bin/edgeproc.js serve <dir> --idle-timeout 600000; wrk ${wrkArgs('URL', WRK).join(' ')} per tenant, in turn, ${ROUNDS} rounds after a 3 s warm-up each;`);
  console.log(`        hello: new Response(string); streamed: new Response(new ReadableStream(...)); echo: POST of ${POST_BODY_BYTES} bytes, await request.text();`);
  console.log("        CPU per request of the daemon and the tenant's child from every thread's schedstat across each run.");
  console.log(describeMachine(facts));

  let daemon: RunningDaemon | undefined;
  try {
    daemon = await startDaemon(dir, { idleTimeoutMs: 600_000 }, resultsPath('streams.daemon.log'));
    const rounds = await tenantRounds(daemon, Object.keys(TENANTS), options, ROUNDS);
    console.log('');
    console.log(roundsTable(rounds));
    const file = writeResult('streams', { method: { wrk: wrkArgs('URL', WRK), rounds: ROUNDS, tenants: TENANTS, postBodyBytes: POST_BODY_BYTES }, machine: facts, samples: rounds.samples, summaries: rounds.summaries });
    console.log(`results: ${file}`);
  } finally {
    await daemon?.stop();
  }
}

/**
 * KV from a tenant (issue 6): operations per second for get and put, on the
 * embedded SQLite store and on Redis, side by side in one run. Each backend
 * gets its own daemon serving the same wrangler project; rounds alternate the
 * backends so a noisy machine hurts both alike. In each round one request
 * makes OPS calls of one kind (`env.KV.put` of a VALUE_BYTES value, then
 * `env.KV.get` of those keys), one at a time (latency of each call, timed in
 * the tenant) and LANES at a time (throughput). A Cache API miss is measured
 * the same way as the floor every binding call pays: the IPC round trip to
 * the daemon without a store behind it.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { startDaemon, type RunningDaemon } from './lib/daemon.js';
import { describeMachine, machine } from './lib/machine.js';
import { startRedis } from './lib/redis.js';
import { resultsPath, table, writeResult } from './lib/report.js';
import { median, summarise, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const OPS = 500;
const LANES = 16;
const VALUE_BYTES = 100;

const WORKER = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const op = url.searchParams.get('op');
    const n = Number(url.searchParams.get('n'));
    const lanes = Number(url.searchParams.get('lanes'));
    const value = 'v'.repeat(Number(url.searchParams.get('size')));
    const latencies = [];
    let next = 0;
    async function lane() {
      while (next < n) {
        const i = next++;
        const started = performance.now();
        if (op === 'put') await env.KV.put('key-' + i, value);
        else if (op === 'get') {
          if ((await env.KV.get('key-' + i)) === null) throw new Error('key-' + i + ' is missing');
        } else await caches.default.match('https://bench.example/' + i);
        latencies.push(performance.now() - started);
      }
    }
    const started = performance.now();
    await Promise.all(Array.from({ length: lanes }, lane));
    return Response.json({ ms: performance.now() - started, latencies });
  },
};
`;

type Op = 'put' | 'get' | 'cache-miss';
interface Sample {
  ms: number;
  latencies: number[];
}

export async function kv(options: Record<string, string> = {}): Promise<void> {
  const rounds = Number(options.rounds ?? 10);
  const facts = machine();
  console.log('\n## kv — KV operations from a tenant, SQLite and Redis side by side\n');
  console.log(`method: one daemon per backend serving the same project (--cpu-ms 5000, --kv-operations 100000), rounds alternating the backends;`);
  console.log(`        per round and backend, one request makes ${OPS} calls: put (${VALUE_BYTES}-byte values), then get of those keys,`);
  console.log(`        then caches.default.match of absent URLs (the IPC floor); once one call at a time (each call timed in the tenant`);
  console.log(`        with performance.now), once ${LANES} at a time (ops/s = ${OPS} / the request's time in the tenant). ${rounds} rounds.`);
  console.log(describeMachine(facts));

  const dir = tempDir('kv');
  mkdirSync(join(dir, 'kv-bench'));
  writeFileSync(join(dir, 'kv-bench', 'wrangler.toml'), 'name = "kv-bench"\nmain = "index.js"\nkv_namespaces = [{ binding = "KV", id = "bench" }]\n');
  writeFileSync(join(dir, 'kv-bench', 'index.js'), WORKER);

  const redis = await startRedis(resultsPath('kv.redis.log'));
  if (!redis) console.log('redis-server is not installed (apt-get install redis-server): measuring SQLite only.');
  const daemons: Array<{ name: string; daemon: RunningDaemon }> = [];
  try {
    const flags = { warmPool: 1, cpuMs: 5000, kvOperations: 100_000 };
    daemons.push({ name: 'sqlite', daemon: await startDaemon(dir, { ...flags, persistTo: tempDir('kv-sqlite') }, resultsPath('kv.sqlite.daemon.log')) });
    if (redis) daemons.push({ name: 'redis', daemon: await startDaemon(dir, { ...flags, kvUrl: redis.url }, resultsPath('kv.redis.daemon.log')) });

    const samples = new Map<string, { serial: Sample[]; parallel: Sample[] }>();
    for (const { name, daemon } of daemons) await call(daemon, 'put', 1); // cold start and first connection, discarded
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? daemons : [...daemons].reverse();
      for (const { name, daemon } of order) {
        for (const op of ['put', 'get', 'cache-miss'] as const) {
          const key = `${name} ${op}`;
          const entry = samples.get(key) ?? { serial: [], parallel: [] };
          entry.serial.push(await call(daemon, op, 1));
          entry.parallel.push(await call(daemon, op, LANES));
          samples.set(key, entry);
        }
      }
    }

    const rows: Array<Array<string | number>> = [];
    const result: Record<string, { opsPerSec: number; opsPerSecParallel: number; latencyMs: Summary }> = {};
    for (const [key, { serial, parallel }] of samples) {
      const latency = summarise(serial.flatMap((s) => s.latencies));
      const opsPerSec = median(serial.map((s) => (OPS / s.ms) * 1000));
      const opsPerSecParallel = median(parallel.map((s) => (OPS / s.ms) * 1000));
      result[key] = { opsPerSec, opsPerSecParallel, latencyMs: latency };
      rows.push([key, Math.round(opsPerSec), Math.round(opsPerSecParallel), latency.p50, latency.p90, latency.p99, latency.max]);
    }
    console.log('');
    console.log(table(['backend op', `ops/s 1 at a time`, `ops/s ${LANES} at a time`, 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'], rows));
    if (redis) {
      const ratio = (op: Op) => result[`redis ${op}`]!.opsPerSecParallel / result[`sqlite ${op}`]!.opsPerSecParallel;
      console.log(`\nRedis / SQLite, ${LANES} at a time, same run: put ${ratio('put').toFixed(2)}×, get ${ratio('get').toFixed(2)}×`);
    }
    console.log(`written: ${writeResult('kv', { machine: facts, ops: OPS, lanes: LANES, valueBytes: VALUE_BYTES, rounds, result })}`);
  } finally {
    for (const { daemon } of daemons) await daemon.stop();
    await redis?.process.stop();
  }
}

async function call(daemon: RunningDaemon, op: Op, lanes: number): Promise<Sample> {
  const { statusCode, body } = await request(`${daemon.url}/?op=${op}&n=${OPS}&lanes=${lanes}&size=${VALUE_BYTES}`, {
    headers: { host: `kv-bench.localhost:${daemon.port}` },
  });
  const text = await body.text();
  if (statusCode !== 200) throw new Error(`kv-bench answered ${statusCode}: ${text}`);
  return JSON.parse(text) as Sample;
}

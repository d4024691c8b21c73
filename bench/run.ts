/**
 * `npm run bench [-- NAME... [--minutes N]]`: runs the named benchmarks (default:
 * all but profile, limits and soak) one after another, each stopping every
 * process it started.
 * Needs a build (`npm run build`) and wrk on PATH (`apt-get install wrk`).
 */
import { snapshotBuild } from './lib/build.js';
import { coldStart } from './cold-start.js';
import { kv } from './kv.js';
import { limits } from './limits.js';
import { memory } from './memory.js';
import { profile } from './profile.js';
import { proxy } from './proxy.js';
import { soak } from './soak.js';
import { streams } from './streams.js';
import { stopAll } from './lib/processes.js';
import { throughput } from './throughput.js';
import { websocket } from './websocket.js';

const BENCHES: Record<string, (options: Record<string, string>) => Promise<void>> = {
  throughput,
  'cold-start': coldStart,
  memory,
  profile,
  // Not in the default list: issue 6's KV figures, about a minute.
  kv,
  // Not in the default list: 2-3 min with 2 rounds a part (BENCH_LIMITS_ROUNDS), ~5 with 4.
  limits,
  // Not in the default list: 5 minutes unless --minutes N.
  soak,
  // Not in the default list: body streams per request, ~90 s.
  streams,
  // Not in the default list: a worker that proxies each request with one fetch, ~60 s.
  proxy,
  // Not in the default list: WebSocket echo messages against workerd, ~45 s.
  websocket,
};
const DEFAULT = ['throughput', 'cold-start', 'memory'];

// Names, and options as `--name value` (e.g. soak's --minutes N).
const asked: string[] = [];
const options: Record<string, string> = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i]!.startsWith('--')) options[argv[i]!.slice(2)] = argv[++i] ?? '';
  else asked.push(argv[i]!);
}
const unknown = asked.filter((name) => !(name in BENCHES));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`);
  process.exit(2);
}
try {
  console.log(`measuring a copy of the build in ${await snapshotBuild()}`);
  for (const name of asked.length > 0 ? asked : DEFAULT) await BENCHES[name]!(options);
} catch (error) {
  console.error(`bench failed: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}

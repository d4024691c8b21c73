/**
 * `npm run bench [-- NAME...]`: runs the named benchmarks (default: all but
 * profile and limits) one after another, each stopping every process it started.
 * Needs a build (`npm run build`) and wrk on PATH (`apt-get install wrk`).
 */
import { snapshotBuild } from './lib/build.js';
import { coldStart } from './cold-start.js';
import { limits } from './limits.js';
import { memory } from './memory.js';
import { profile } from './profile.js';
import { stopAll } from './lib/processes.js';
import { throughput } from './throughput.js';

const BENCHES: Record<string, () => Promise<void>> = {
  throughput,
  'cold-start': coldStart,
  memory,
  profile,
  // Not in the default list: about 60 s.
  limits,
};
const DEFAULT = ['throughput', 'cold-start', 'memory'];

const asked = process.argv.slice(2);
const unknown = asked.filter((name) => !(name in BENCHES));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`);
  process.exit(2);
}
try {
  console.log(`measuring a copy of the build in ${await snapshotBuild()}`);
  for (const name of asked.length > 0 ? asked : DEFAULT) await BENCHES[name]!();
} catch (error) {
  console.error(`bench failed: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}

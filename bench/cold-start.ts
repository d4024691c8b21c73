/**
 * Cold start at the client: from sending the first request to a worker with
 * no live instance until its whole response body has arrived.
 *   hit:  a warm child is ready (before each sample, GET /workers is polled
 *         until the pool is full again, so every sample specialises a warm child);
 *   miss: --warm-pool 0, so every sample spawns a child.
 * The daemon serves a directory of tiny tenants, so no deploy (which would
 * itself specialise a child) happens between samples. One keep-alive
 * connection carries every request, so TCP set-up is not in the figure.
 *   idle: a pool hit as above, but after the machine idled IDLE.pauseMs first (a
 *         tenant's first request seldom follows another within milliseconds), with
 *         the warm request after the same pause beside it.
 *   app:  a pool hit as above for a real app (examples/hono-app, bundled as `serve` bundles
 *         it), whose script takes milliseconds to compile and run where hello takes microseconds.
 *   seen: later cold starts of one version of that app (a scale-out, a recycle, a start after
 *         idle eviction), which compile from the V8 code cache its first instance made; beside
 *         them, in the same run, a daemon with --no-code-cache, samples alternated.
 *   wake-up reference: warm requests to a live edgeproc worker, to a bare
 *         node:http process and to a bare hop (bench/lib/bare-hop.ts: node:http
 *         and one child, nothing else), interleaved, one every few ms up to every few hundred:
 *         on these VMs any process that idled pays to wake, so this tells what part
 *         of a cold start the machine charges whatever runs on it.
 * Targets (issue 2): hit p50 ≤ 2 ms and p99 ≤ 5 ms; miss near a bare Node start (~40 ms).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { startBareHop } from './lib/bare-hop.js';
import { startBareNode } from './lib/bare-node.js';
import { adminState, poolFilled, startDaemon, type RunningDaemon } from './lib/daemon.js';
import { describeMachine, machine } from './lib/machine.js';
import { cpuNs, descendantPids } from './lib/processes.js';
import { resultsPath, table, verdict, writeResult } from './lib/report.js';
import { summarise, type Summary } from './lib/stats.js';
import { appTenantDir, tenantDir } from './lib/tenants.js';

const HIT = { warmup: 10, samples: Number(process.env.BENCH_COLD_SAMPLES ?? 150), warmPool: 2 };
const IDLE = { warmup: 3, samples: Number(process.env.BENCH_IDLE_SAMPLES ?? 50), warmPool: 2, pauseMs: 300 };
const APP = { warmup: 3, samples: Number(process.env.BENCH_APP_SAMPLES ?? 30), warmPool: 2 };
const SEEN = { warmup: 3, samples: Number(process.env.BENCH_SEEN_SAMPLES ?? 40), warmPool: 2 };
const BARE_NODE = { warmup: 2, samples: 10 };
/** Gaps between the wake-up reference's requests, and requests per gap to each server. */
const WAKE_GAPS_MS = [1, 10, 50, 300] as const;
const WAKE_SAMPLES = 30;
/**
 * A pause before the wake-up reference's samples, after the pool has refilled: 7-8 s after it
 * boots, each child and the fork server run 20-30 ms of V8's memory reducer (garbage
 * collections once a process has gone quiet), which is no request's CPU.
 */
const WAKE_SETTLE_MS = 10_000;
const MISS = { warmup: 3, samples: Number(process.env.BENCH_MISS_SAMPLES ?? 25), settleMs: 150 };
/**
 * Requests served to one more tenant before any sample, through the same client connection: a
 * daemon in service has served many, so its request path (and the client's) runs optimised code.
 * Without this, the samples also timed V8 compiling the daemon's own code: a fresh daemon's
 * warm request at a few ms gaps took 1.2 ms at the client, 0.85 ms after 100k requests.
 */
const DAEMON_WARMUP_REQUESTS = Number(process.env.BENCH_DAEMON_WARMUP ?? 2000);

/** What a sample asks each worker for, and the body it must answer. */
interface Probe {
  path: string;
  body(worker: string): string;
}
const HELLO: Probe = { path: '/', body: (worker) => `hello from ${worker}\n` };
const APP_PROBE: Probe = { path: '/users/7', body: () => '{"id":7,"name":"user-7"}' };

interface Sample {
  worker: string;
  ms: number;
  poolHit: boolean;
  /** A second request to the same worker (now live) after the same wait: what a warm request costs here and now. */
  warmMs: number | null;
}

export async function coldStart(): Promise<void> {
  const facts = machine();
  // One more tenant per case, for the daemon's warm-up (the last of each slice).
  const { dir, names } = tenantDir(HIT.warmup + HIT.samples + 1 + MISS.warmup + MISS.samples + 1 + IDLE.warmup + IDLE.samples + 1);
  console.log('\n## cold-start — first request to a worker with no live instance\n');
  console.log(`method: bin/edgeproc.js serve <dir of ${names.length} tiny service-worker tenants>, each worker hit once;`);
  console.log(`        undici request() on one keep-alive connection, performance.now() from send to full body;`);
  console.log(`        hit: --warm-pool ${HIT.warmPool}, GET /workers polled until pool.warm = ${HIT.warmPool} before each sample, ${HIT.warmup} warm-up samples discarded, ${HIT.samples} measured;`);
  console.log(`        miss: --warm-pool 0, ${MISS.settleMs} ms pause before each sample, ${MISS.warmup} warm-up discarded, ${MISS.samples} measured.`);
  console.log(`        idle: as hit, but ${IDLE.pauseMs} ms of idle before each sample and before its warm request, ${IDLE.warmup} discarded, ${IDLE.samples} measured.`);
  console.log(`        app: as hit, for copies of examples/hono-app bundled as serve bundles it (GET ${APP_PROBE.path}), ${APP.warmup} discarded, ${APP.samples} measured.`);
  console.log(`        seen: that app deployed once with recycleAfterRequests=1 (every request retires its instance; the next specialises a warm child), on two daemons, one with --no-code-cache, a sample of each in turn (order swapped every pair), ${SEEN.warmup} discarded, ${SEEN.samples} measured; loadMs from each daemon's "script loaded" lines.`);
  console.log(`        wake-up reference: a warm request to a live worker, to a bare node:http process and to a bare hop (node:http + one child), in turn, ${WAKE_SAMPLES} each after gaps of ${WAKE_GAPS_MS.join(', ')} ms.`);
  console.log(`        and the CPU each server's processes used per request meanwhile (/proc/PID/task/*/schedstat), after the pool refilled and ${WAKE_SETTLE_MS / 1000} s of quiet.`);
  console.log(`        before each case: ${DAEMON_WARMUP_REQUESTS} requests to one more tenant on the same connection, as a daemon in service has served (its code and the client's optimised);`);
  console.log(`        reference: ${BARE_NODE.samples} bare \`node -e 0\` starts with an empty environment, spawn to exit (${BARE_NODE.warmup} discarded).`);
  console.log(describeMachine(facts));

  const hitNames = names.slice(0, HIT.warmup + HIT.samples + 1);
  const missNames = names.slice(HIT.warmup + HIT.samples + 1, HIT.warmup + HIT.samples + 1 + MISS.warmup + MISS.samples + 1);
  const idleNames = names.slice(HIT.warmup + HIT.samples + 1 + MISS.warmup + MISS.samples + 1);
  const hit = await measure(dir, hitNames, HIT.warmPool, HIT.warmup, 'hit');
  const miss = await measure(dir, missNames, 0, MISS.warmup, 'miss');
  const idle = await measure(dir, idleNames, IDLE.warmPool, IDLE.warmup, 'idle', IDLE.pauseMs);
  const apps = await appTenantDir(APP.warmup + APP.samples + 1);
  const app = await measure(apps.dir, apps.names, APP.warmPool, APP.warmup, 'app', 0, APP_PROBE);
  const seen = await seenAppColdStarts(dir, idleNames.at(-1)!, readFileSync(join(apps.dir, `${apps.names[0]}.mjs`), 'utf8'));
  const wake = await wakeUpReference(dir, idleNames.at(-1)!);

  const bare = await bareNodeStarts();
  const bareStats = summarise(bare);
  const hitStats = summarise(hit.map((s) => s.ms));
  const missStats = summarise(miss.map((s) => s.ms));
  const warmStats = summarise(hit.map((s) => s.warmMs ?? NaN).filter((ms) => !Number.isNaN(ms)));
  const idleStats = summarise(idle.map((s) => s.ms));
  const idleWarmStats = summarise(idle.map((s) => s.warmMs ?? NaN).filter((ms) => !Number.isNaN(ms)));
  const appStats = summarise(app.map((s) => s.ms));
  const appWarmStats = summarise(app.map((s) => s.warmMs ?? NaN).filter((ms) => !Number.isNaN(ms)));
  const appName = `hono-app, ${Math.round(apps.bytes / 1024)} KB`;
  const seenCached = summarise(seen.cached);
  const seenScratch = summarise(seen.scratch);
  const seenLoadCached = summarise(seen.cachedLoadMs);
  const seenLoadScratch = summarise(seen.scratchLoadMs);
  const notHits = hit.filter((s) => !s.poolHit).length;
  const notMisses = miss.filter((s) => s.poolHit).length;
  console.log('');
  console.log(
    table(
      ['case', 'samples', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'min ms', 'wrong case'],
      [
        row('pool hit', hitStats, notHits),
        row('reference: warm request, same idle pause', warmStats, 0),
        row(`pool hit after ${IDLE.pauseMs} ms idle`, idleStats, idle.filter((s) => !s.poolHit).length),
        row(`reference: warm request after ${IDLE.pauseMs} ms idle`, idleWarmStats, 0),
        row(`pool hit, real app (${appName})`, appStats, app.filter((s) => !s.poolHit).length),
        row('reference: warm request to it, same pause', appWarmStats, 0),
        row('later cold start of that app version, from its code cache', seenCached, 0),
        row('the same, --no-code-cache (alternated)', seenScratch, 0),
        row('pool miss', missStats, notMisses),
        row('reference: bare `node -e 0`, empty env, spawn → exit', bareStats, 0),
      ],
    ),
  );
  console.log('');
  console.log(
    table(
      ['figure', 'value', 'target', 'verdict'],
      [
        ['hit p50 ms', hitStats.p50, '≤ 2', verdict(hitStats.p50 <= 2)],
        ['hit p99 ms', hitStats.p99, '≤ 5', verdict(hitStats.p99 <= 5)],
        ['hit p50 minus warm p50 ms (cost of the cold start itself)', hitStats.p50 - warmStats.p50, '', ''],
        ['miss p50 ms', missStats.p50, `near a bare Node start (${bareStats.p50.toFixed(0)} ms in this run)`, missStats.p50 <= 1.5 * bareStats.p50 ? 'near' : 'far'],
      ],
    ),
  );
  console.log('');
  console.log(
    table(
      ['wake-up reference: warm request after a gap of', 'edgeproc p50 ms', 'edgeproc p90 ms', 'bare hop p50 ms', 'bare hop p90 ms', 'bare node:http p50 ms', 'bare node:http p90 ms'],
      wake.map((w) => [`${w.gapMs} ms`, w.edgeproc.p50, w.edgeproc.p90, w.hop.p50, w.hop.p90, w.node.p50, w.node.p90]),
    ),
  );
  console.log('');
  console.log(
    table(
      ['CPU per warm request after a gap of (µs, every thread)', 'edgeproc daemon', 'edgeproc instance', 'edgeproc fork server + warm pool', 'bare hop front', 'bare hop child', 'bare node:http'],
      wake.map((w) => [`${w.gapMs} ms`, ...(['daemon', 'instance', 'daemonOthers', 'hopFront', 'hopChild', 'node'] as const).map((side) => w.cpuUsPerRequest[side])]),
    ),
  );
  console.log('');
  console.log(
    table(
      ['figure', 'value', 'target', 'verdict'],
      [
        [`idle hit p50 ms (after ${IDLE.pauseMs} ms idle)`, idleStats.p50, '', ''],
        [`idle hit p50 minus warm p50 after the same idle ms`, idleStats.p50 - idleWarmStats.p50, '', ''],
        [`real-app hit p50 ms (${appName})`, appStats.p50, '', ''],
        ['real-app hit p50 minus its warm p50 ms', appStats.p50 - appWarmStats.p50, '', ''],
        ['later real-app cold start p50 ms: code cache / --no-code-cache', `${seenCached.p50.toFixed(2)} / ${seenScratch.p50.toFixed(2)} (ratio ${(seenCached.p50 / seenScratch.p50).toFixed(2)})`, '', ''],
        ['  its load in the child (compile + run the global scope) p50 ms: code cache / --no-code-cache', `${seenLoadCached.p50.toFixed(2)} / ${seenLoadScratch.p50.toFixed(2)}`, '', ''],
      ],
    ),
  );
  const file = writeResult('cold-start', {
    method: { hit: HIT, miss: MISS, daemonWarmupRequests: DAEMON_WARMUP_REQUESTS, client: 'undici request, keep-alive Agent, 1 connection', tenants: names.length },
    machine: facts,
    hit: { summary: hitStats, samples: hit, notPoolHits: notHits },
    warmReference: { summary: warmStats },
    miss: { summary: missStats, samples: miss, notPoolMisses: notMisses },
    idle: { pauseMs: IDLE.pauseMs, summary: idleStats, warmSummary: idleWarmStats, samples: idle },
    app: { script: 'examples/hono-app', bytes: apps.bytes, path: APP_PROBE.path, summary: appStats, warmSummary: appWarmStats, samples: app },
    seenApp: { method: SEEN, codeCache: seenCached, noCodeCache: seenScratch, loadMsCodeCache: seenLoadCached, loadMsNoCodeCache: seenLoadScratch, samples: seen },
    wakeUp: wake,
    bareNode: { summary: bareStats, samples: bare },
    pass: { hitP50: hitStats.p50 <= 2, hitP99: hitStats.p99 <= 5 },
  });
  console.log(`results: ${file}`);
}

function row(name: string, s: Summary, wrong: number): Array<string | number> {
  return [name, s.samples, s.p50, s.p90, s.p99, s.max, s.min, wrong];
}

async function measure(dir: string, workers: string[], warmPool: number, warmup: number, label: string, pauseMs = 0, probe = HELLO): Promise<Sample[]> {
  let daemon: RunningDaemon | undefined;
  const agent = new Agent({ connections: 1, keepAliveTimeout: 600_000, keepAliveMaxTimeout: 600_000 });
  try {
    // A long idle timeout: no eviction (a child being killed) while samples run.
    daemon = await startDaemon(dir, { warmPool, idleTimeoutMs: 600_000 }, resultsPath(`cold-start.${label}.daemon.log`));
    const warmer = workers[workers.length - 1]!;
    for (let i = 0; i < DAEMON_WARMUP_REQUESTS; i++) await firstRequest(daemon, agent, warmer, probe);
    const samples: Sample[] = [];
    for (const [i, worker] of workers.slice(0, -1).entries()) {
      const before = warmPool > 0 ? await poolFilled(daemon, warmPool) : await settled(daemon);
      if (pauseMs > 0) await sleep(pauseMs);
      const ms = await firstRequest(daemon, agent, worker, probe);
      const after = await adminState(daemon);
      const poolHit = after.pool.hits === before.pool.hits + 1 && after.pool.misses === before.pool.misses;
      let warmMs: number | null = null;
      if (warmPool > 0) {
        await poolFilled(daemon, warmPool);
        if (pauseMs > 0) await sleep(pauseMs);
        warmMs = await firstRequest(daemon, agent, worker, probe);
      }
      if (i >= warmup) samples.push({ worker, ms, poolHit, warmMs });
    }
    return samples;
  } finally {
    await agent.close();
    await daemon?.stop();
  }
}

interface SeenApp {
  /** Client times of the cold starts, ms: compiled from the version's code cache, and from scratch. */
  cached: number[];
  scratch: number[];
  /** The children's own times to load the script for those cold starts (from the daemons' logs), ms. */
  cachedLoadMs: number[];
  scratchLoadMs: number[];
}

/**
 * Later cold starts of one version of the real app, deployed with recycleAfterRequests=1 (each
 * request retires its instance, the next specialises a warm child), on two daemons side by side,
 * the second with --no-code-cache; their samples alternate, in swapped order every other pair.
 */
async function seenAppColdStarts(dir: string, warmer: string, source: string): Promise<SeenApp> {
  const sides = [
    { codeCache: true, log: resultsPath('cold-start.seen-cached.daemon.log') },
    { codeCache: false, log: resultsPath('cold-start.seen-scratch.daemon.log') },
  ];
  const agents = sides.map(() => new Agent({ connections: 1, keepAliveTimeout: 600_000, keepAliveMaxTimeout: 600_000 }));
  const daemons: RunningDaemon[] = [];
  const times: number[][] = [[], []];
  try {
    for (const side of sides) daemons.push(await startDaemon(dir, { warmPool: SEEN.warmPool, idleTimeoutMs: 600_000, codeCache: side.codeCache }, side.log));
    for (const [i, daemon] of daemons.entries()) {
      for (let n = 0; n < DAEMON_WARMUP_REQUESTS; n++) await firstRequest(daemon, agents[i]!, warmer);
      const put = await request(`${daemon.adminUrl}/workers/seen?recycleAfterRequests=1`, { method: 'PUT', body: source });
      const text = await put.body.text();
      if (put.statusCode !== 201) throw new Error(`deploying the app answered ${put.statusCode}: ${text}`);
    }
    // The deploy's own instance serves the first request (no cold start): among the discarded.
    for (let n = 0; n < SEEN.warmup + SEEN.samples; n++) {
      for (const i of n % 2 ? [1, 0] : [0, 1]) {
        await poolFilled(daemons[i]!, SEEN.warmPool);
        const ms = await firstRequest(daemons[i]!, agents[i]!, 'seen', APP_PROBE);
        if (n >= SEEN.warmup) times[i]!.push(ms);
      }
    }
  } finally {
    await Promise.all(agents.map((agent) => agent.close()));
    await Promise.all(daemons.map((daemon) => daemon.stop()));
  }
  const [cachedLoadMs, scratchLoadMs] = sides.map((side) => loadTimes(side.log, 'seen').slice(-SEEN.samples));
  return { cached: times[0]!, scratch: times[1]!, cachedLoadMs: cachedLoadMs!, scratchLoadMs: scratchLoadMs! };
}

/** The loadMs of a worker's `script loaded` lines in a daemon's log, in order. */
function loadTimes(logPath: string, worker: string): number[] {
  return readFileSync(logPath, 'utf8')
    .split('\n')
    .filter((line) => line.includes('"script loaded"'))
    .map((line) => JSON.parse(line) as { worker: string; loadMs: number })
    .filter((line) => line.worker === worker)
    .map((line) => line.loadMs);
}

/** Times one request to a worker that has never been asked for. */
async function firstRequest(daemon: RunningDaemon, agent: Agent, worker: string, probe = HELLO): Promise<number> {
  const started = performance.now();
  const { statusCode, body } = await request(`${daemon.url}${probe.path}`, { dispatcher: agent, headers: { host: `${worker}.localhost` } });
  const text = await body.text();
  const ms = performance.now() - started;
  if (statusCode !== 200 || text !== probe.body(worker)) {
    throw new Error(`${worker} answered ${statusCode}: ${JSON.stringify(text.slice(0, 200))}`);
  }
  return ms;
}

interface WakeUp {
  gapMs: number;
  edgeproc: ReturnType<typeof summarise>;
  node: ReturnType<typeof summarise>;
  hop: ReturnType<typeof summarise>;
  /**
   * CPU per request at this gap, µs, every thread, read around the gap's samples (so what
   * the processes do on their own meanwhile, their timers, is in it, as it is at that rate):
   * edgeproc's daemon, the worker's instance and the rest under the daemon (fork server, warm
   * pool); the hop's front and its child; the bare node:http process.
   */
  cpuUsPerRequest: { daemon: number; instance: number; daemonOthers: number; hopFront: number; hopChild: number; node: number };
}

/**
 * Warm requests to `worker` (live from its first request) and to a bare node:http process, one
 * of each per gap, for every gap in WAKE_GAPS_MS: what waking idle processes costs here.
 */
async function wakeUpReference(dir: string, worker: string): Promise<WakeUp[]> {
  let daemon: RunningDaemon | undefined;
  const bare = await startBareNode(resultsPath('cold-start.wake.node.log'));
  const hop = await startBareHop(resultsPath('cold-start.wake.hop.log'));
  const agents = [0, 1, 2].map(() => new Agent({ connections: 1, keepAliveTimeout: 600_000, keepAliveMaxTimeout: 600_000 }));
  try {
    daemon = await startDaemon(dir, { idleTimeoutMs: 600_000 }, resultsPath('cold-start.wake.daemon.log'));
    const timed = async (url: string, dispatcher: Agent) => {
      const started = performance.now();
      const { body } = await request(url, { dispatcher });
      await body.text();
      return performance.now() - started;
    };
    const toNode = () => timed(`${bare.url}/`, agents[1]!);
    const toHop = () => timed(`${hop.url}/`, agents[2]!);
    for (let i = 0; i < DAEMON_WARMUP_REQUESTS; i++) {
      await firstRequest(daemon, agents[0]!, worker);
      await toNode();
      await toHop();
    }
    // The worker's first request took a warm child; the one booted in its place collects its
    // garbage seconds after it is Ready (see WAKE_SETTLE_MS).
    await poolFilled(daemon, 2);
    await sleep(WAKE_SETTLE_MS);
    const out: WakeUp[] = [];
    for (const gapMs of WAKE_GAPS_MS) {
      const edge: number[] = [];
      const node: number[] = [];
      const viaHop: number[] = [];
      const groups = cpuGroups(daemon.process.pid, await instancePids(daemon, worker), bare.process.pid, hop.process.pid);
      const before = mapValues(groups, cpuOf);
      for (let i = 0; i < WAKE_SAMPLES; i++) {
        await sleep(gapMs);
        edge.push(await firstRequest(daemon, agents[0]!, worker));
        await sleep(gapMs);
        node.push(await toNode());
        await sleep(gapMs);
        viaHop.push(await toHop());
      }
      const used = mapValues(groups, (pids, side) => (cpuOf(pids) - before[side]) / 1000 / WAKE_SAMPLES);
      out.push({ gapMs, edgeproc: summarise(edge), node: summarise(node), hop: summarise(viaHop), cpuUsPerRequest: used });
    }
    return out;
  } finally {
    await Promise.all(agents.map((a) => a.close()));
    await Promise.all([daemon?.stop(), bare.stop(), hop.stop()]);
  }
}

type CpuGroups = Record<keyof WakeUp['cpuUsPerRequest'], number[]>;

/** The processes whose CPU the wake-up reference reads, by what they are. */
function cpuGroups(daemonPid: number, instances: number[], nodePid: number, hopPid: number): CpuGroups {
  return {
    daemon: [daemonPid],
    instance: instances,
    daemonOthers: descendantPids(daemonPid).filter((pid) => !instances.includes(pid)),
    hopFront: [hopPid],
    hopChild: descendantPids(hopPid),
    node: [nodePid],
  };
}

async function instancePids(daemon: RunningDaemon, worker: string): Promise<number[]> {
  const pids = (await adminState(daemon)).workers.find((w) => w.name === worker)?.pids ?? [];
  if (pids.length === 0) throw new Error(`worker ${worker} has no live instance for the wake-up reference`);
  return pids;
}

function cpuOf(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuNs(pid), 0);
}

function mapValues<T>(groups: CpuGroups, f: (pids: number[], side: keyof CpuGroups) => T): Record<keyof CpuGroups, T> {
  return Object.fromEntries(Object.entries(groups).map(([side, pids]) => [side, f(pids, side as keyof CpuGroups)])) as Record<keyof CpuGroups, T>;
}

/** For the pool-miss case: nothing booting, and a pause so the last child's start has finished. */
async function settled(daemon: RunningDaemon) {
  await sleep(MISS.settleMs);
  return adminState(daemon);
}

/** What "a bare Node start" costs on this machine right now, for the pool-miss figure to be read against. */
async function bareNodeStarts(): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < BARE_NODE.warmup + BARE_NODE.samples; i++) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', '0'], { env: {}, stdio: 'ignore' });
      child.once('error', reject);
      child.once('exit', () => resolve());
    });
    if (i >= BARE_NODE.warmup) times.push(performance.now() - started);
    await sleep(50);
  }
  return times;
}

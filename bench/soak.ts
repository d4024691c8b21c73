/**
 * Soak (issue 5): 20 workers under a steady open-loop load for minutes while
 * random children are SIGKILLed, then a clean stop. What it must show: no
 * request lost (each one a complete 2xx, or a 5xx saying why), no process
 * left behind, and a daemon whose memory and descriptors do not creep.
 *
 *   npm run bench -- soak [--minutes N]     (default 5)
 *
 * The load runs in 30-second legs (src/lab/load.ts, undici in a worker thread,
 * latency counted from when each request was due); between legs the daemon's
 * resident memory and open descriptors are read from /proc, so a creep shows
 * as a trend rather than one number. Start figures are taken after a warm-up
 * of the same load and kills (the daemon's heap grows to its working size),
 * end figures after the kills stop and every worker has an instance again.
 */
import { chmodSync } from 'node:fs';
import { request } from 'undici';
import { census, isAlive, processesMentioning, RandomKiller } from '../src/lab/faults.js';
import { errorCount, runLoad, type LoadOptions, type LoadResult } from '../src/lab/load.js';
import { buildRoot } from './lib/build.js';
import { adminState, poolFilled, startDaemon, type RunningDaemon } from './lib/daemon.js';
import { describeMachine, machine } from './lib/machine.js';
import { resultsPath, table, verdict, writeResult } from './lib/report.js';
import { summarise } from './lib/stats.js';
import { tenantDir } from './lib/tenants.js';

const WORKERS = 20;
const RATE = Number(process.env.BENCH_RATE ?? 400);
const CONNECTIONS = 64;
const LEG_SEC = 30;
// The first 5-minute run, with 15 s, grew 7.4% in its first 30 s and 4.2% over the next
// 4.5 min: V8 was still sizing its heap (the heap after a full GC stayed at 12.7-13.1 MiB).
// A minute of the same load and kills lets it reach its working size before `start`.
const WARM_UP_SEC = 60;
const KILL_EVERY_MS = [100, 300] as const;
/** Target for the daemon's memory growth from start to end. */
const RSS_GROWTH_TARGET = 0.1;

interface Sample {
  atSec: number;
  rssKb: number;
  fds: number;
  children: number;
}

export async function soak(options: Record<string, string> = {}): Promise<void> {
  const minutes = Number(options.minutes ?? 5);
  if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, got ${JSON.stringify(options.minutes)}`);
  const facts = machine();
  const { dir, names } = tenantDir(WORKERS);
  console.log('\n## soak — random child kills under a steady load\n');
  console.log(`method: ${WORKERS} workers (hello world), one real \`edgeproc serve\` daemon, ${RATE} req/s spread evenly over them for ${minutes} min`);
  console.log(`        (undici in a worker thread, open loop, ${CONNECTIONS} connections, ${LEG_SEC} s legs, a request timed out after 30 s),`);
  console.log(`        a random runner child (warm, booting or serving) SIGKILLed every ${KILL_EVERY_MS[0]}-${KILL_EVERY_MS[1]} ms throughout;`);
  console.log(`        start figures after a ${WARM_UP_SEC} s warm-up of the same load and kills, end figures once every worker has an instance again.`);
  console.log(describeMachine(facts));

  let daemon: RunningDaemon | undefined;
  try {
    // The copy of the build is private (mkdtemp): opened to others, the children's own uids read
    // the runner from it rather than from a copy elsewhere, so every process of this daemon
    // names it in its command line, which is how one left behind is found.
    chmodSync(buildRoot(), 0o755);
    daemon = await startDaemon(dir, {}, resultsPath('soak.daemon.log'));
    const pid = daemon.process.pid;
    const load = (durationSec: number): LoadOptions => ({
      url: `${daemon!.url}/`,
      headerSets: names.map((name) => ({ host: `${name}.localhost:${daemon!.port}` })),
      mode: 'rate',
      rate: RATE,
      connections: CONNECTIONS,
      durationSec,
      timeoutMs: 30_000,
      classifyErrors: true,
    });
    const seen = new Set<number>();
    const observe = () => {
      const c = census(pid);
      for (const p of c.descendants) seen.add(p);
      return c;
    };
    const killer = new RandomKiller(() => observe().runners, KILL_EVERY_MS);

    await everyWorkerServes(daemon, names);
    killer.start();
    await runLoad(load(WARM_UP_SEC));
    await killer.stop();
    await everyWorkerServes(daemon, names);
    const start = observe();
    const killsBefore = killer.killed.length;

    const legs: LoadResult[] = [];
    const samples: Sample[] = [{ atSec: 0, rssKb: start.rssKb, fds: start.fds, children: start.descendants.length }];
    const began = performance.now();
    killer.start();
    for (let left = minutes * 60; left > 0; left -= LEG_SEC) {
      const leg = await runLoad(load(Math.min(LEG_SEC, left)));
      legs.push(leg);
      const c = observe();
      const atSec = Math.round((performance.now() - began) / 1000);
      samples.push({ atSec, rssKb: c.rssKb, fds: c.fds, children: c.descendants.length });
      console.log(
        `  ${String(atSec).padStart(4)} s: ${leg.sent} requests, ${JSON.stringify(leg.statuses)}${Object.keys(leg.failures).length ? ` failures ${JSON.stringify(leg.failures)}` : ''}; ` +
          `daemon RSS ${(c.rssKb / 1024).toFixed(1)} MiB, ${c.fds} fds, ${c.descendants.length} children; ${killer.killed.length - killsBefore} kills so far`,
      );
    }
    await killer.stop();
    const kills = killer.killed.length - killsBefore;

    await everyWorkerServes(daemon, names);
    const end = await settled(pid, start.descendants.length, start.fds);
    for (const p of end.descendants) seen.add(p);
    const zombies = end.zombies.length;

    // A clean stop, then look for anything of this daemon still running.
    const exited = new Promise<number | null>((resolve) => daemon!.process.child.once('exit', (code) => resolve(code)));
    daemon.process.child.kill('SIGTERM');
    const exitCode = await exited;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const strays = processesMentioning(buildRoot());
    const leaked = new Set([...strays.map((s) => s.pid), ...[...seen].filter(isAlive), ...killer.killed.filter(isAlive)]);

    const sent = legs.reduce((n, l) => n + l.sent, 0);
    const answered = legs.reduce((n, l) => n + Object.values(l.statuses).reduce((a, b) => a + b, 0), 0);
    const failures = merge(legs.map((l) => l.failures));
    const lost = sent - answered;
    const statuses = merge(legs.map((l) => l.statuses));
    const errorKinds = merge(legs.map((l) => l.errorKinds ?? {}));
    const latency = summarise(legs.flatMap((l) => l.latenciesMs));
    const growth = end.rssKb / start.rssKb - 1;
    const pass = { lost: lost === 0, leaked: leaked.size === 0, rssGrowth: growth < RSS_GROWTH_TARGET, cleanExit: exitCode === 0 };

    console.log('');
    console.log(
      table(
        ['figure', 'value', 'target', 'verdict'],
        [
          ['requests', sent, '', ''],
          ['lost (no complete response)', `${lost}${Object.keys(failures).length ? ` ${JSON.stringify(failures)}` : ''}`, '0', verdict(pass.lost)],
          ['2xx', statuses['200'] ?? 0, '', ''],
          ['5xx', legs.reduce((n, l) => n + errorCount(l), 0) - lost, '', ''],
          ['children SIGKILLed', kills, '', ''],
          ['leaked processes after the stop', leaked.size, '0', verdict(pass.leaked)],
          ['zombies before the stop', zombies, '0', ''],
          ['daemon exit code (SIGTERM)', String(exitCode), '0', verdict(pass.cleanExit)],
          ['daemon RSS start / end MiB', `${(start.rssKb / 1024).toFixed(1)} / ${(end.rssKb / 1024).toFixed(1)}`, '', ''],
          ['daemon RSS growth', `${(growth * 100).toFixed(1)}%`, `< ${RSS_GROWTH_TARGET * 100}%`, verdict(pass.rssGrowth)],
          ['daemon open fds start / end', `${start.fds} / ${end.fds}`, '', ''],
          ['latency p50 / p99 ms (from due time)', `${latency.p50.toFixed(2)} / ${latency.p99.toFixed(2)}`, '', ''],
        ],
      ),
    );
    console.log('');
    console.log(table(['5xx by kind', 'count'], Object.entries(errorKinds).sort((a, b) => b[1] - a[1])));
    if (strays.length) console.log(`left behind: ${strays.map((s) => `${s.pid} (parent ${s.ppid}) ${s.command}`).join('; ')}`);
    const file = writeResult('soak', {
      method: { workers: WORKERS, rate: RATE, minutes, connections: CONNECTIONS, legSec: LEG_SEC, warmUpSec: WARM_UP_SEC, killEveryMs: KILL_EVERY_MS },
      machine: facts,
      requests: sent,
      lost,
      failures,
      statuses,
      errorKinds,
      kills,
      leaked: [...leaked],
      strays,
      zombies,
      exitCode,
      rss: { startKb: start.rssKb, endKb: end.rssKb, growth },
      fds: { start: start.fds, end: end.fds },
      children: { start: start.descendants.length, end: end.descendants.length },
      latency,
      samples,
      pass,
    });
    console.log(`results: ${file}`);
    daemon = undefined;
  } finally {
    await daemon?.stop();
  }
}

/** One request to each worker (a killed instance is replaced on demand), then a full warm pool. */
async function everyWorkerServes(daemon: RunningDaemon, names: string[]): Promise<void> {
  for (const name of names) {
    // reset: no connection kept open, so the end's descriptor count is the daemon's own.
    const res = await request(`${daemon.url}/`, { headers: { host: `${name}.localhost:${daemon.port}` }, reset: true });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`${name} answered ${res.statusCode} after the kills stopped: ${text}`);
  }
  await poolFilled(daemon, 2);
  const state = await adminState(daemon);
  const missing = state.workers.filter((w) => w.instances === 0).map((w) => w.name);
  if (missing.length) throw new Error(`workers without an instance after serving: ${missing.join(', ')}`);
}

/** The daemon's census once its children and descriptors are back to the start's (or after 15 s, as they are). */
async function settled(pid: number, children: number, fds: number) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const c = census(pid);
    if ((c.descendants.length === children && c.fds <= fds && c.zombies.length === 0) || Date.now() > deadline) return c;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function merge(records: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const record of records) for (const [key, n] of Object.entries(record)) out[key] = (out[key] ?? 0) + n;
  return out;
}

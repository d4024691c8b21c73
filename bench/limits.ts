/**
 * Fault containment (issue 3): how fast a runaway tenant is stopped, and what
 * its neighbour notices.
 *   (a) 50 `for (;;) {}` requests with --cpu-ms 50, one at a time with the warm
 *       pool refilled in between, each timed at the client from send to its 503.
 *       Target: p99 ≤ 60 ms.
 *   (b) a hello worker under a steady load (a fixed request rate, open loop:
 *       latency counts from when a request was due), alone, then while runaways
 *       go to another worker back to back. Targets: neighbour p99 within 1.5× of
 *       alone, zero neighbour errors. Alone and hostile runs alternate, twice.
 *   (c) the same with a memory bomb (--memory-mb 64, --cpu-ms 10000) instead,
 *       while children other than the neighbour's are SIGKILLed at random.
 *       Target: zero neighbour errors.
 *   (d) a control for (b): the same neighbour, alone and beside a bare CPU burner
 *       outside edgeproc that repeats a runaway's CPU pattern as (b) saw it (10 ms
 *       at the tenants' nice, 40 ms at background nice, then the pause (b) had
 *       between runaways), but kills nothing and starts nothing. What the
 *       neighbour's p99 grows by here is what one core of CPU burn costs it on
 *       this machine, whoever runs it: (b)'s figure can only be read against it.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { errorCount, requestsPerSec, runLoad, type LoadOptions, type LoadResult } from '../src/lab/load.js';
import { adminState, poolFilled, startDaemon, type RunningDaemon } from './lib/daemon.js';
import { describeMachine, machine } from './lib/machine.js';
import { runnerPids } from './lib/processes.js';
import { resultsPath, table, verdict, writeResult } from './lib/report.js';
import { median, summarise, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';
import { BACKGROUND_NICE, CHILD_NICE, DEMOTE_AFTER_MS } from '../src/pool/priority.js';

const RUNAWAYS = 50;
const DURATION_SEC = Number(process.env.BENCH_DURATION_SEC ?? 8);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
/** BENCH_LIMITS_ROUNDS: alone/hostile pairs per part. On a noisy host one round's p99 can be a hiccup of either side. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_LIMITS_ROUNDS ?? 2));
const KILL_EVERY_MS = [50, 250] as const;
/** BENCH_LIMITS_ONLY_A=N: part (a) alone, N sets of RUNAWAYS (its p99 over 50 is nearly the maximum, so one set says little). */
const RUNAWAY_REPEATS = Math.max(1, Number(process.env.BENCH_LIMITS_ONLY_A ?? 1));
const ONLY_A = process.env.BENCH_LIMITS_ONLY_A !== undefined;

const TENANTS: Record<string, string> = {
  'hello.js': `addEventListener('fetch', (event) => event.respondWith(new Response('hello\\n')));\n`,
  'runaway.js': `addEventListener('fetch', () => { for (;;) {} });\n`,
  'bomb.js': `const hoard = [];\naddEventListener('fetch', () => { for (;;) hoard.push(new Array(1 << 20).fill(Math.random())); });\n`,
};

interface Hostile {
  /** Client-side latency of each hostile request, send to response. */
  latenciesMs: number[];
  statuses: Record<string, number>;
  kills: number;
}

interface Neighbour {
  runs: LoadResult[];
  latency: Summary;
  errors: number;
  requestsPerSec: number;
}

export async function limits(): Promise<void> {
  const facts = machine();
  const dir = tempDir('limits');
  for (const [name, source] of Object.entries(TENANTS)) writeFileSync(join(dir, name), source);
  console.log('\n## limits — runaway tenants and their neighbours\n');
  console.log(`method: (a) ${RUNAWAYS} runaway requests (for (;;) {}) with --cpu-ms 50, sequential, warm pool refilled before each; client-timed send → 503.`);
  console.log(`        (b) neighbour hello at a steady ${RATE} req/s for ${DURATION_SEC} s (undici, open loop, latency from when each request was due),`);
  console.log(`            alone and with runaways sent back to back to another worker, alternating, ${ROUNDS} rounds each.`);
  console.log(`        (c) same with a memory bomb (--memory-mb 64 --cpu-ms 10000) back to back, and a SIGKILL every ${KILL_EVERY_MS[0]}-${KILL_EVERY_MS[1]} ms`);
  console.log("            to a random child of the daemon other than the neighbour's (the bomb's instance or a warm child).");
  console.log('        (d) control for (b): same neighbour, alone and beside a bare node process (not edgeproc) burning 50 ms of CPU per cycle,');
  console.log(`            ${DEMOTE_AFTER_MS} ms at nice ${CHILD_NICE} then the rest at nice ${BACKGROUND_NICE}, pausing between cycles as long as (b)'s runaways took beyond their 50 ms (p50).`);
  console.log("        the load generator, the daemon and its children share the machine's cores.");
  console.log(describeMachine(facts));

  let daemon: RunningDaemon | undefined;
  try {
    // (a) and (b): --cpu-ms 50.
    daemon = await startDaemon(dir, { cpuMs: 50 }, resultsPath('limits.daemon.log'));
    await send(daemon, 'hello');
    await send(daemon, 'runaway'); // first runaway includes a cold start; discarded
    await poolFilled(daemon, 2);
    const timed: number[] = [];
    const timedStatuses: Record<string, number> = {};
    for (let i = 0; i < RUNAWAYS * RUNAWAY_REPEATS; i++) {
      const { ms, status } = await send(daemon, 'runaway');
      timed.push(ms);
      timedStatuses[status] = (timedStatuses[status] ?? 0) + 1;
      await poolFilled(daemon, 2);
    }
    const runaway = summarise(timed);
    console.log(`(a) runaway → 503: p50 ${runaway.p50.toFixed(1)} ms, p99 ${runaway.p99.toFixed(1)} ms; statuses ${JSON.stringify(timedStatuses)}`);
    if (RUNAWAY_REPEATS > 1) {
      const sets = Array.from({ length: RUNAWAY_REPEATS }, (_, k) => summarise(timed.slice(k * RUNAWAYS, (k + 1) * RUNAWAYS)).p99.toFixed(1));
      console.log(`(a) p99 of each set of ${RUNAWAYS}: ${sets.join(', ')}`);
    }
    if (ONLY_A) return;

    const b = await alternateWithHostile(daemon, 'runaway', false, '(b)');
    const burnerCycle = { cpuMs: 50, pauseMs: Math.max(0, summarise(b.load.latenciesMs).p50 - 50) };
    const d = await alternateWithBurner(daemon, burnerCycle);
    await daemon.stop();
    daemon = undefined;

    // (c): memory bomb and random SIGKILLs.
    daemon = await startDaemon(dir, { cpuMs: 10_000, memoryMb: 64 }, resultsPath('limits.memory.daemon.log'));
    const c = await alternateWithHostile(daemon, 'bomb', true, '(c)');

    const ratioB = b.hostile.latency.p99 / b.alone.latency.p99;
    const ratioC = c.hostile.latency.p99 / c.alone.latency.p99;
    const ratioD = d.hostile.latency.p99 / d.alone.latency.p99;
    const runawayBackToBack = summarise(b.load.latenciesMs);
    const bombs = summarise(c.load.latenciesMs);

    console.log('');
    console.log(
      table(
        ['hostile requests (client-timed ms)', 'n', 'p50', 'p90', 'p99', 'max', 'statuses'],
        [
          ['(a) runaway, pool refilled before each', runaway.samples, runaway.p50, runaway.p90, runaway.p99, runaway.max, JSON.stringify(timedStatuses)],
          ['(b) runaway, back to back under load', runawayBackToBack.samples, runawayBackToBack.p50, runawayBackToBack.p90, runawayBackToBack.p99, runawayBackToBack.max, JSON.stringify(b.load.statuses)],
          [`(c) memory bomb, back to back, ${c.load.kills} SIGKILLs`, bombs.samples, bombs.p50, bombs.p90, bombs.p99, bombs.max, JSON.stringify(c.load.statuses)],
        ],
      ),
    );
    console.log('');
    console.log(
      table(
        ['neighbour (ms from due time)', 'requests', 'req/s', 'p50', 'p90', 'p99', 'max', 'errors'],
        [
          ['(b) alone', b.alone],
          ['(b) with runaways', b.hostile],
          ['(c) alone', c.alone],
          ['(c) with memory bombs + SIGKILLs', c.hostile],
          ['(d) alone', d.alone],
          ['(d) beside a bare CPU burner (control)', d.hostile],
        ].map(([name, n]) => {
          const r = n as Neighbour;
          return [name as string, r.latency.samples, Math.round(r.requestsPerSec), r.latency.p50, r.latency.p90, r.latency.p99, r.latency.max, r.errors];
        }),
      ),
    );
    console.log('');
    const pass = {
      runawayP99: runaway.p99 <= 60,
      neighbourRatio: ratioB <= 1.5,
      neighbourErrorsRunaway: b.hostile.errors === 0,
      neighbourErrorsMemory: c.hostile.errors === 0,
    };
    console.log(
      table(
        ['figure', 'value', 'target', 'verdict'],
        [
          ['(a) runaway → 503 p99 ms', runaway.p99, '≤ 60', verdict(pass.runawayP99)],
          ['(b) neighbour p99 with / without runaways', ratioB, '≤ 1.5', verdict(pass.neighbourRatio)],
          ['(b) the same, each round on its own (median; all)', `${median(b.roundRatios).toFixed(2)} (${b.roundRatios.map((r) => r.toFixed(2)).join(', ')})`, '', ''],
          ['(b) neighbour errors with runaways', b.hostile.errors, '0', verdict(pass.neighbourErrorsRunaway)],
          ['(c) neighbour p99 with / without bombs+kills', ratioC, '', ''],
          ['(c) neighbour errors with bombs + SIGKILLs', c.hostile.errors, '0', verdict(pass.neighbourErrorsMemory)],
          [`(d) control: neighbour p99 beside a bare burner (${burnerCycle.cpuMs} ms CPU, ${burnerCycle.pauseMs.toFixed(0)} ms pause) / without`, ratioD, '', ''],
          ['(d) the same, each round on its own (median; all)', `${median(d.roundRatios).toFixed(2)} (${d.roundRatios.map((r) => r.toFixed(2)).join(', ')})`, '', ''],
        ],
      ),
    );
    const brief = (n: Neighbour) => ({ latency: n.latency, errors: n.errors, requestsPerSec: n.requestsPerSec, statuses: n.runs.map((r) => r.statuses), failures: n.runs.map((r) => r.failures) });
    const file = writeResult('limits', {
      method: { runaways: RUNAWAYS, rate: RATE, durationSec: DURATION_SEC, rounds: ROUNDS, killEveryMs: KILL_EVERY_MS, tenants: TENANTS },
      machine: facts,
      runaway: { ...runaway, statuses: timedStatuses, samplesMs: timed },
      runawayBackToBack: { ...runawayBackToBack, statuses: b.load.statuses },
      memoryBombs: { ...bombs, statuses: c.load.statuses, kills: c.load.kills },
      neighbour: { aloneB: brief(b.alone), withRunaways: brief(b.hostile), ratioB, roundRatiosB: b.roundRatios, roundRatiosD: d.roundRatios, aloneC: brief(c.alone), withBombs: brief(c.hostile), ratioC, aloneD: brief(d.alone), withBurner: brief(d.hostile), ratioD },
      burnerCycle,
      pass,
    });
    console.log(`results: ${file}`);
  } finally {
    await daemon?.stop();
  }
}

/**
 * The neighbour alone, then while `during` runs something beside it, alternating for ROUNDS
 * rounds after a discarded warm-up, so drift hits both alike.
 */
async function alternate(daemon: RunningDaemon, label: string, what: string, during: (measure: () => Promise<LoadResult>) => Promise<LoadResult>) {
  const load: LoadOptions = {
    url: `${daemon.url}/`,
    headers: { host: `hello.localhost:${daemon.port}` },
    mode: 'rate',
    rate: RATE,
    connections: 32,
    durationSec: DURATION_SEC,
  };
  await send(daemon, 'hello');
  await runLoad({ ...load, durationSec: 2 }); // warm-up, discarded
  const alone: LoadResult[] = [];
  const hostile: LoadResult[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    alone.push(await runLoad(load));
    hostile.push(await during(() => runLoad(load)));
    console.log(`${label} round ${round + 1}: neighbour p99 alone ${p99(alone.at(-1)!)} ms, ${what} ${p99(hostile.at(-1)!)} ms; errors ${errorCount(alone.at(-1)!)} / ${errorCount(hostile.at(-1)!)}`);
  }
  // Each round's ratio, alone and hostile run back to back: what a pooled p99 hides.
  const ratios = alone.map((a, i) => summarise(hostile[i]!.latenciesMs).p99 / summarise(a.latenciesMs).p99);
  return { alone: neighbour(alone), hostile: neighbour(hostile), roundRatios: ratios };
}

/** (b) and (c): the neighbour alone and while `worker` is hammered (and children killed when `kill`). */
async function alternateWithHostile(daemon: RunningDaemon, worker: string, kill: boolean, label: string) {
  await send(daemon, worker);
  const hostileLoad: Hostile = { latenciesMs: [], statuses: {}, kills: 0 };
  const runs = await alternate(daemon, label, `with ${worker}`, (measure) => whileHostile(daemon, worker, kill, hostileLoad, measure));
  return { ...runs, load: hostileLoad };
}

/**
 * A runaway's CPU without edgeproc: burns `cpuMs` per cycle (the first DEMOTE_AFTER_MS at the
 * tenants' nice, the rest at background nice, as the watchdog demotes a runaway), then pauses.
 */
const BURNER = `
const os = require('node:os');
const [cpuMs, pauseMs, niceAt, niceAfter, demoteMs] = process.argv.slice(1).map(Number);
const burn = (ms) => { const end = performance.now() + ms; while (performance.now() < end); };
const cycle = () => {
  try { os.setPriority(niceAt); } catch {}
  burn(demoteMs);
  try { os.setPriority(niceAfter); } catch {}
  burn(cpuMs - demoteMs);
  setTimeout(cycle, pauseMs);
};
cycle();
`;

/** (d): the neighbour alone and beside BURNER. */
function alternateWithBurner(daemon: RunningDaemon, cycle: { cpuMs: number; pauseMs: number }) {
  const args = [cycle.cpuMs, cycle.pauseMs, CHILD_NICE, BACKGROUND_NICE, DEMOTE_AFTER_MS].map(String);
  return alternate(daemon, '(d)', 'beside the burner', async (measure) => {
    const burner = spawn(process.execPath, ['-e', BURNER, ...args], { stdio: 'ignore' });
    try {
      return await measure();
    } finally {
      burner.kill('SIGKILL');
    }
  });
}

function neighbour(runs: LoadResult[]): Neighbour {
  const all = runs.flatMap((r) => r.latenciesMs);
  return {
    runs,
    latency: summarise(all),
    errors: runs.reduce((n, r) => n + errorCount(r), 0),
    requestsPerSec: runs.reduce((n, r) => n + requestsPerSec(r), 0) / runs.length,
  };
}

function p99(result: LoadResult): string {
  return summarise(result.latenciesMs).p99.toFixed(2);
}

/** One request to `worker`, timed at the client from send to the end of its body. */
async function send(daemon: RunningDaemon, worker: string): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const res = await request(`${daemon.url}/`, { headers: { host: `${worker}.localhost:${daemon.port}` } });
  await res.body.text();
  return { ms: performance.now() - started, status: res.statusCode };
}

/**
 * Runs `measure` while `worker` gets requests back to back; with `kill` set, also
 * SIGKILLs a random child of the daemon that does not serve hello every few tens of ms.
 */
async function whileHostile<T>(daemon: RunningDaemon, worker: string, kill: boolean, hostile: Hostile, measure: () => Promise<T>): Promise<T> {
  let running = true;
  const sender = (async () => {
    while (running) {
      const { ms, status } = await send(daemon, worker);
      hostile.latenciesMs.push(ms);
      hostile.statuses[status] = (hostile.statuses[status] ?? 0) + 1;
    }
  })();
  let killer: NodeJS.Timeout | undefined;
  if (kill) {
    const killOne = async () => {
      const spare = new Set((await adminState(daemon)).workers.find((w) => w.name === 'hello')?.pids ?? []);
      const victims = runnerPids(daemon.process.pid).filter((pid) => !spare.has(pid));
      const victim = victims[Math.floor(Math.random() * victims.length)];
      if (victim) {
        try {
          process.kill(victim, 'SIGKILL');
          hostile.kills++;
        } catch {
          // Already gone.
        }
      }
      if (running) killer = setTimeout(killOne, KILL_EVERY_MS[0] + Math.random() * (KILL_EVERY_MS[1] - KILL_EVERY_MS[0]));
    };
    killer = setTimeout(killOne, KILL_EVERY_MS[0]);
  }
  try {
    return await measure();
  } finally {
    running = false;
    clearTimeout(killer);
    await sender;
  }
}

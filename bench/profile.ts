/**
 * Where the time goes under wrk: a V8 CPU profile of the daemon serving warm
 * hello-world (through the inspector: the daemon started with --inspect on a
 * port of its own), and the CPU each side spends per request, daemon and tenant
 * child, from /proc/PID/task/TID/schedstat (nanoseconds, summed over every thread) around
 * the same wrk run. The child cannot be reached through the inspector with its
 * isolation layers on: Node's permission model denies it (ERR_ACCESS_DENIED),
 * and its network namespace has no loopback for a remote one. Where Linux perf
 * is installed, the child is profiled from outside instead: the daemon runs
 * with EDGEPROC_PERF_CHILDREN=1 (src/pool/perf-children.ts), so V8 names the
 * child's JavaScript frames in /tmp/perf-PID.map. The daemon's profile is saved
 * to bench/results/profile.daemon.cpuprofile for DevTools, the child's perf data
 * to bench/results/profile.child.perf.data. Profiling slows the daemon, so its
 * req/s is not a throughput figure.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { PACKAGE_ROOT } from './lib/build.js';
import { startDaemon, type RunningDaemon } from './lib/daemon.js';
import { InspectorSession, selfTimes, type CpuProfile } from './lib/inspector.js';
import { describeMachine, machine } from './lib/machine.js';
import { cpuNs, runnerPids } from './lib/processes.js';
import { resultsPath, table, writeResult } from './lib/report.js';
import { runWrk, wrkArgs, type WrkOptions } from './lib/wrk.js';

const SCRIPT = `${PACKAGE_ROOT}examples/hello.js`;
const WRK: WrkOptions = { threads: 1, connections: 32, durationSec: 10 };
const TOP = 10;
/** Seconds perf records the child for, under wrk. */
const CHILD_RECORD_SEC = 8;
const HAS_PERF = spawnSync('perf', ['--version']).status === 0;

export async function profile(): Promise<void> {
  const facts = machine();
  console.log('\n## profile — CPU per request of the daemon and the tenant child, and the daemon\'s profile, under wrk\n');
  console.log(`method: bin/edgeproc.js serve ${SCRIPT} --warm-pool 0 --recycle-after 0; one request makes the single tenant child;`);
  console.log(`        a 5 s wrk warm-up (discarded); wrk ${wrkArgs('URL', WRK).join(' ')} with /proc/PID/task/TID/schedstat of both read around it;`);
  console.log('        then the daemon\'s V8 profiler (1 ms sampling) over another such run;');
  console.log(
    HAS_PERF
      ? `        then perf record -F 999 -g of the child for ${CHILD_RECORD_SEC} s under wrk (the daemon with EDGEPROC_PERF_CHILDREN=1: the child writes its JIT map for perf, its file-size limit lifted).`
      : '        the child is not profiled: perf is not installed (apt-get install linux-perf), and its permission model denies the inspector.',
  );
  console.log(describeMachine(facts));

  let daemon: RunningDaemon | undefined;
  let session: InspectorSession | undefined;
  try {
    // Never recycled: at ~40k req/s the default (a million requests) replaced the one child
    // during the perf recording, which then ended early.
    daemon = await startDaemon(SCRIPT, { warmPool: 0, perfChildren: HAS_PERF, recycleAfter: 0 }, resultsPath('profile.daemon.log'), ['--inspect=127.0.0.1:0']);
    const [, daemonWs] = await daemon.process.waitFor(/Debugger listening on (ws:\/\/\S+)/);
    const { body } = await request(`${daemon.url}/`);
    await body.text();
    await runWrk(`${daemon.url}/`, { ...WRK, durationSec: 5 });

    const children = runnerPids(daemon.process.pid);
    if (children.length !== 1) throw new Error(`expected one tenant child, found ${children.length}: ${children.join(', ')}`);
    const sides = { daemon: daemon.process.pid, child: children[0]! };

    // First, CPU per request without the profiler (it would slow the daemon's side).
    const before = { daemon: cpuNs(sides.daemon), child: cpuNs(sides.child) };
    const plain = await runWrk(`${daemon.url}/`, WRK);
    const usPerRequest = {
      daemon: (cpuNs(sides.daemon) - before.daemon) / 1000 / plain.requests,
      child: (cpuNs(sides.child) - before.child) / 1000 / plain.requests,
    };
    console.log(`\nwrk: ${plain.requestsPerSec.toFixed(0)} req/s, p99 ${plain.latencyMs.p99} ms; CPU per request, every thread: daemon ${usPerRequest.daemon.toFixed(1)} µs, child ${usPerRequest.child.toFixed(1)} µs`);

    session = await InspectorSession.open(daemonWs!);
    await session.send('Profiler.enable');
    await session.send('Profiler.setSamplingInterval', { interval: 1000 });
    await session.send('Profiler.start');
    const load = await runWrk(`${daemon.url}/`, WRK);
    const { profile } = await session.send<{ profile: CpuProfile }>('Profiler.stop');

    console.log(`wrk while profiling the daemon: ${load.requestsPerSec.toFixed(0)} req/s, p99 ${load.latencyMs.p99} ms (slowed by profiling)`);
    writeFileSync(resultsPath('profile.daemon.cpuprofile'), JSON.stringify(profile));
    const { top, totalMs, idleMs } = selfTimes(profile);
    console.log(`\ndaemon: busy ${totalMs.toFixed(0)} ms, idle ${idleMs.toFixed(0)} ms of the profile; top ${TOP} self time:`);
    console.log(table(['function', 'location', 'self ms', '% of busy'], top.slice(0, TOP).map((t) => [t.functionName, t.location, t.selfMs, t.percent])));
    const child = HAS_PERF ? await profileChild(`${daemon.url}/`, sides.child) : null;
    if (child) {
      console.log(`\nchild (perf, ${child.samples} samples, wrk at ${child.wrk.requestsPerSec.toFixed(0)} req/s meanwhile): top ${TOP} symbols by self time ([k] kernel, [.] user; JS:* optimised, JS:^ baseline, JS:~ interpreted):`);
      console.log(table(['symbol', '% of samples'], child.top.slice(0, TOP).map((t) => [`[${t.kind}] ${t.symbol}`, t.percent])));
    } else {
      console.log('\nchild: not profiled; perf is not installed, and its isolation layers deny it the inspector (see the top of bench/profile.ts).');
    }
    const out = {
      method: { wrk: wrkArgs('URL', WRK), samplingUs: 1000, cpu: '/proc/PID/task/*/schedstat around a wrk run without the profiler' },
      machine: facts,
      wrk: plain,
      cpuUsPerRequest: usPerRequest,
      daemon: { wrkWhileProfiling: load, busyMs: totalMs, idleMs, top: top.slice(0, 30) },
      child: child ?? { skipped: 'perf is not installed' },
    };
    console.log(`\nresults: ${writeResult('profile', out)} (and bench/results/profile.daemon.cpuprofile${child ? ', bench/results/profile.child.perf.data' : ''})`);
  } finally {
    session?.close();
    await sleep(50);
    await daemon?.stop();
  }
}

interface ChildProfile {
  samples: number;
  wrk: Awaited<ReturnType<typeof runWrk>>;
  top: Array<{ kind: string; symbol: string; percent: number }>;
}

/** perf's view of the tenant child under wrk: self time by symbol, JavaScript frames named through V8's map. */
async function profileChild(url: string, pid: number): Promise<ChildProfile> {
  const data = resultsPath('profile.child.perf.data');
  const recording = spawn('perf', ['record', '-F', '999', '-g', '-p', String(pid), '-o', data, '--', 'sleep', String(CHILD_RECORD_SEC)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  recording.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const recorded = new Promise<number | null>((resolve) => recording.once('exit', resolve));
  const wrk = await runWrk(url, { ...WRK, durationSec: CHILD_RECORD_SEC + 1 });
  const code = await recorded;
  if (code !== 0) throw new Error(`perf record exited ${code}: ${stderr.trim()}`);
  // perf reads a map only if its own user or root owns it; the child wrote it as its own uid.
  try {
    chownSync(`/tmp/perf-${pid}.map`, process.getuid!(), process.getgid!());
  } catch {
    // Not root: the child ran as this user, who owns the map already.
  }
  const report = execFileSync('perf', ['report', '-i', data, '--no-children', '--sort', 'sym', '--stdio', '-g', 'none'], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
  const top = [...report.matchAll(/^\s+([\d.]+)%\s+\[(.)\]\s+(.+?)\s*$/gm)].map((m) => ({ kind: m[2]!, symbol: m[3]!, percent: Number(m[1]) }));
  const counted = report.match(/^# Samples: (\d+)(K?)/m);
  const samples = counted ? Number(counted[1]) * (counted[2] === 'K' ? 1000 : 1) : 0;
  return { samples, wrk, top };
}

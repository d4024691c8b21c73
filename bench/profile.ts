/**
 * Where the time goes under wrk: a V8 CPU profile of the daemon serving warm
 * hello-world (through the inspector: the daemon started with --inspect on a
 * port of its own), and the CPU each side spends per request, daemon and tenant
 * child, from /proc/PID/task/TID/schedstat (nanoseconds, summed over every thread) around
 * the same wrk run. The child itself cannot be profiled with its isolation
 * layers on: Node's permission model denies it the inspector
 * (ERR_ACCESS_DENIED), and its network namespace has no loopback for a remote
 * one. The profile is saved to bench/results/profile.daemon.cpuprofile for
 * DevTools. Profiling slows the daemon, so its req/s is not a throughput figure.
 */
import { writeFileSync } from 'node:fs';
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

export async function profile(): Promise<void> {
  const facts = machine();
  console.log('\n## profile — CPU per request of the daemon and the tenant child, and the daemon\'s profile, under wrk\n');
  console.log(`method: bin/edgeproc.js serve ${SCRIPT} --warm-pool 0; one request makes the single tenant child;`);
  console.log(`        a 5 s wrk warm-up (discarded); wrk ${wrkArgs('URL', WRK).join(' ')} with /proc/PID/task/TID/schedstat of both read around it;`);
  console.log('        then the daemon\'s V8 profiler (1 ms sampling) over another such run. The child cannot be profiled: its permission model denies the inspector.');
  console.log(describeMachine(facts));

  let daemon: RunningDaemon | undefined;
  let session: InspectorSession | undefined;
  try {
    daemon = await startDaemon(SCRIPT, { warmPool: 0 }, resultsPath('profile.daemon.log'), ['--inspect=127.0.0.1:0']);
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
    console.log('\nchild: not profiled; its isolation layers deny it the inspector (see the top of bench/profile.ts).');
    const out = {
      method: { wrk: wrkArgs('URL', WRK), samplingUs: 1000, cpu: '/proc/PID/task/*/schedstat around a wrk run without the profiler' },
      machine: facts,
      wrk: plain,
      cpuUsPerRequest: usPerRequest,
      daemon: { wrkWhileProfiling: load, busyMs: totalMs, idleMs, top: top.slice(0, 30) },
    };
    console.log(`\nresults: ${writeResult('profile', out)} (and bench/results/profile.daemon.cpuprofile)`);
  } finally {
    session?.close();
    await sleep(50);
    await daemon?.stop();
  }
}

/**
 * Where the time goes under wrk: V8 CPU profiles of the daemon and of the
 * tenant child serving warm hello-world, taken over the same wrk run through
 * the inspector (the daemon started with --inspect on a port of its own; the
 * child's inspector opened with SIGUSR1, on 9229, since the daemon gives
 * children no flags from outside). Profiles are saved to bench/results/*.cpuprofile
 * for DevTools. Profiling slows both sides, so its req/s is not a throughput figure.
 */
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { PACKAGE_ROOT } from './lib/build.js';
import { startDaemon, type RunningDaemon } from './lib/daemon.js';
import { inspectorUrl, InspectorSession, selfTimes, type CpuProfile } from './lib/inspector.js';
import { describeMachine, machine } from './lib/machine.js';
import { runnerPids } from './lib/processes.js';
import { resultsPath, table, writeResult } from './lib/report.js';
import { runWrk, wrkArgs, type WrkOptions } from './lib/wrk.js';

const SCRIPT = `${PACKAGE_ROOT}examples/hello.js`;
const WRK: WrkOptions = { threads: 1, connections: 32, durationSec: 10 };
const CHILD_INSPECTOR_PORT = 9229;
const TOP = 10;

export async function profile(): Promise<void> {
  const facts = machine();
  console.log('\n## profile — CPU self time of the daemon and the tenant child under wrk\n');
  console.log(`method: bin/edgeproc.js serve ${SCRIPT} --warm-pool 0; one request makes the single tenant child;`);
  console.log(`        a 5 s wrk warm-up (discarded), then both profilers (1 ms sampling) over wrk ${wrkArgs('URL', WRK).join(' ')}.`);
  console.log(describeMachine(facts));

  let daemon: RunningDaemon | undefined;
  const sessions: InspectorSession[] = [];
  try {
    daemon = await startDaemon(SCRIPT, { warmPool: 0 }, resultsPath('profile.daemon.log'), ['--inspect=127.0.0.1:0']);
    const [, daemonWs] = await daemon.process.waitFor(/Debugger listening on (ws:\/\/\S+)/);
    const { body } = await request(`${daemon.url}/`);
    await body.text();
    await runWrk(`${daemon.url}/`, { ...WRK, durationSec: 5 });

    const children = runnerPids(daemon.process.pid);
    if (children.length !== 1) throw new Error(`expected one tenant child, found ${children.length}: ${children.join(', ')}`);
    process.kill(children[0]!, 'SIGUSR1');
    const childWs = await inspectorUrl(CHILD_INSPECTOR_PORT);
    if (!(await isRunner(CHILD_INSPECTOR_PORT))) throw new Error(`the inspector on ${CHILD_INSPECTOR_PORT} is not a runner child's (another process holds the port?)`);

    const targets = [
      { name: 'daemon', session: await InspectorSession.open(daemonWs!) },
      { name: 'child', session: await InspectorSession.open(childWs) },
    ];
    sessions.push(...targets.map((t) => t.session));
    for (const { session } of targets) {
      await session.send('Profiler.enable');
      await session.send('Profiler.setSamplingInterval', { interval: 1000 });
      await session.send('Profiler.start');
    }
    const load = await runWrk(`${daemon.url}/`, WRK);
    const profiles = await Promise.all(
      targets.map(async ({ name, session }) => ({ name, profile: (await session.send<{ profile: CpuProfile }>('Profiler.stop')).profile })),
    );

    const out: Record<string, unknown> = { method: { wrk: wrkArgs('URL', WRK), samplingUs: 1000 }, machine: facts, wrk: load };
    console.log(`\nwrk while profiling: ${load.requestsPerSec.toFixed(0)} req/s, p99 ${load.latencyMs.p99} ms (slowed by profiling)`);
    for (const { name, profile } of profiles) {
      writeFileSync(resultsPath(`profile.${name}.cpuprofile`), JSON.stringify(profile));
      const { top, totalMs, idleMs } = selfTimes(profile);
      console.log(`\n${name}: busy ${totalMs.toFixed(0)} ms, idle ${idleMs.toFixed(0)} ms of the profile; top ${TOP} self time:`);
      console.log(table(['function', 'location', 'self ms', '% of busy'], top.slice(0, TOP).map((t) => [t.functionName, t.location, t.selfMs, t.percent])));
      out[name] = { busyMs: totalMs, idleMs, top: top.slice(0, 30) };
    }
    console.log(`\nresults: ${writeResult('profile', out)} (and bench/results/profile.{daemon,child}.cpuprofile)`);
  } finally {
    for (const session of sessions) session.close();
    await sleep(50);
    await daemon?.stop();
  }
}

/** Another process on this shared machine might hold the default inspector port: check it is a runner. */
async function isRunner(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/json/list`);
  const [target] = (await res.json()) as Array<{ title?: string; url?: string }>;
  return Boolean(target?.url?.includes('runner.cjs') || target?.title?.includes('runner.cjs'));
}

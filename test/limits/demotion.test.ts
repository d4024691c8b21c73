/**
 * Scheduling priority under a runaway (src/pool/priority.ts, watchdog.ts): a request running
 * flat out is moved to background priority within a few ms of CPU, long before its CPU limit,
 * so that a neighbour's short requests preempt it; a light neighbour is never moved. Read
 * from /proc as the kernel holds it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKGROUND_IDLE, BACKGROUND_NICE, CHILD_NICE } from '../../src/pool/priority.js';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';
import { hostileTarget, neighbourDuring, warmNeighbour } from '../helpers/hostile.js';
import { cpuMsOf, niceOf, threadPolicies } from '../helpers/proc.js';

const hogs: ChildProcess[] = [];
afterEach(async () => {
  for (const hog of hogs.splice(0)) hog.kill('SIGKILL');
  await closeDaemons();
});

function pidOf(daemon: TestDaemon, worker: string): number {
  return daemon.broker.instances().find((i) => i.worker === worker)!.pid!;
}

describe('priority of a request running flat out', () => {
  it("drops to background priority long before its CPU limit, while a light neighbour keeps the tenants' priority", async () => {
    const daemon = await startTestDaemon(hostileTarget('loop-sync'), { cpuMs: 1000, warmPool: 2 });
    await warmNeighbour(daemon);
    expect(await daemon.fetchText('loop-sync', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    const pid = pidOf(daemon, 'loop-sync');
    const neighbourPid = pidOf(daemon, 'neighbour');
    expect(niceOf(pid)).toBe(CHILD_NICE);
    const cpuBefore = cpuMsOf(pid);

    const hostile = daemon.fetchText('loop-sync', '/');
    const neighbours = neighbourDuring(daemon, hostile);
    let settled = false;
    void hostile.finally(() => (settled = true));
    // Polled at every turn of the (shared) event loop: on a saturated machine the watchdog puts a
    // starved child back at the tenants' priority at the end of its first 20 ms window.
    let demotedAfterMs: number | null = null;
    let demotedPolicies: string[] = [];
    while (!settled && demotedAfterMs === null) {
      if (niceOf(pid) === BACKGROUND_NICE) {
        demotedAfterMs = cpuMsOf(pid) - cpuBefore;
        demotedPolicies = [...threadPolicies(pid)];
      } else await new Promise((resolve) => setImmediate(resolve));
    }
    const res = await hostile;
    const served = await neighbours;

    // Generous: the watchdog demotes at its first sample past DEMOTE_AFTER_MS (3 ms); ticks are 10 ms.
    expect(demotedAfterMs).not.toBeNull();
    expect(demotedAfterMs!).toBeLessThan(500);
    // Every thread's policy is set before its nice, so a demoted child is SCHED_IDLE throughout.
    expect(demotedPolicies).toEqual([BACKGROUND_IDLE ? 'idle' : 'other']);
    expect(res.status).toBe(503);
    expect(res.text).toMatch(/exceeded its CPU time limit: this request used \d+ ms of CPU; the limit is 1000 ms/);
    for (const one of served) expect(one).toMatchObject({ status: 200, text: 'neighbour ok' });
    expect(niceOf(neighbourPid)).toBe(CHILD_NICE);
    expect([...threadPolicies(neighbourPid)]).toEqual(['other']);
  });
});

describe('priority of a worker that just breached a limit', () => {
  const script = `export default {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === '/spin') for (;;) {}
    await new Promise((resolve) => setTimeout(resolve, pathname === '/hold' ? 5000 : 300));
    return new Response('waited');
  },
};
`;

  /** The worker's live instance, once it has one with a pid. */
  async function instancePid(daemon: TestDaemon, worker: string): Promise<number> {
    for (let i = 0; ; i++) {
      const pid = daemon.broker.instances().find((one) => one.worker === worker && one.state !== 'dead')?.pid;
      if (pid) return pid;
      if (i > 2000) throw new Error(`worker ${worker} never got an instance`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  it('runs its next requests at background priority from their first instruction, and only its own', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'breacher.js': script, 'other.js': script }), { cpuMs: 100, warmPool: 2 });
    const stopped = await daemon.fetchText('breacher', '/spin');
    expect(stopped.status).toBe(503);
    expect(stopped.text).toMatch(/exceeded its CPU time limit/);

    // A request that uses almost no CPU: nothing the watchdog samples would demote it. It is held
    // for long enough to be in flight still when its priority is read below: once it is over, its
    // instance is put back at the tenants' priority, and the other worker's cold start before that
    // read took more than the 300 ms of a shorter wait on a busy machine (a full test run).
    const waiting = daemon.fetchText('breacher', '/hold');
    let held = true;
    void waiting.finally(() => (held = false));
    const pid = await instancePid(daemon, 'breacher');
    // Polled at every turn of the (shared) event loop: a request that waits does not use most of
    // a CPU, so at the end of its first 20 ms window it is eased out of SCHED_IDLE (to nice 19).
    let policies: string[] = [];
    for (let i = 0; policies.length === 0; i++) {
      if (niceOf(pid) === BACKGROUND_NICE) policies = [...threadPolicies(pid)];
      else if (i > 100_000) throw new Error('the request never ran at background priority');
      else await new Promise((resolve) => setImmediate(resolve));
    }
    expect(policies).toEqual([BACKGROUND_IDLE ? 'idle' : 'other']);
    const other = daemon.fetchText('other', '/wait');
    const otherPid = await instancePid(daemon, 'other');
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Eased at most: a penalised worker's request is not put back at the tenants' priority.
    const nice = niceOf(pid);
    expect(held).toBe(true);
    expect(nice).toBe(BACKGROUND_NICE);
    expect(niceOf(otherPid)).toBe(CHILD_NICE);
    expect([...threadPolicies(otherPid)]).toEqual(['other']);

    expect(await waiting).toMatchObject({ status: 200, text: 'waited' });
    expect(await other).toMatchObject({ status: 200, text: 'waited' });
  });
});

describe('a demoted request on a machine with no CPU to spare', () => {
  // SCHED_IDLE runs only on CPU nobody else wants: behind one busy process per core a demoted
  // runaway gets none, and would be ended by the wall limit (a 504 a minute later) rather than
  // by its CPU limit. The watchdog eases a child that got under a quarter of a CPU over a window
  // out of SCHED_IDLE (to nice 19, then back to the tenants' priority once it is not flat out).
  it.skipIf(!BACKGROUND_IDLE)('is eased out of SCHED_IDLE when starved, and still stopped by its CPU limit', async () => {
    const daemon = await startTestDaemon(hostileTarget('loop-sync'), { cpuMs: 100, warmPool: 1 });
    expect(await daemon.fetchText('loop-sync', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    const pid = pidOf(daemon, 'loop-sync');
    // One busy process per core, at nice 19 so that the rest of a test run barely notices them:
    // SCHED_IDLE yields even to nice 19 (weight 3 against 15).
    for (let i = 0; i < 2; i++) {
      const hog = spawn(process.execPath, ['-e', "require('node:os').setPriority(19); process.stdout.write('on\\n'); for (;;);"], { stdio: ['ignore', 'pipe', 'ignore'] });
      hogs.push(hog);
      await new Promise((resolve) => hog.stdout!.once('data', resolve));
    }

    const hostile = daemon.fetchText('loop-sync', '/');
    let settled = false;
    void hostile.finally(() => (settled = true));
    let sawIdle = false;
    let easedAfterIdle = false;
    while (!settled && !easedAfterIdle) {
      const policies = threadPolicies(pid);
      if (policies.has('idle')) sawIdle = true;
      else if (sawIdle && policies.has('other')) easedAfterIdle = true;
      if (!easedAfterIdle) await new Promise((resolve) => setImmediate(resolve));
    }
    const res = await hostile;
    expect(sawIdle).toBe(true);
    expect(easedAfterIdle).toBe(true);
    expect(res.status).toBe(503);
    expect(res.text).toMatch(/exceeded its CPU time limit: this request used \d+ ms of CPU; the limit is 100 ms/);
  }, 30_000);
});


/**
 * Scheduling priority under a runaway (src/pool/priority.ts, watchdog.ts): a request running
 * flat out is moved to background priority within a few ms of CPU, long before its CPU limit,
 * so that a neighbour's short requests preempt it; a light neighbour is never moved. Read
 * from /proc as the kernel holds it.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKGROUND_NICE, CHILD_NICE } from '../../src/pool/priority.js';
import { closeDaemons, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { hostileTarget, neighbourDuring, warmNeighbour } from '../helpers/hostile.js';

afterEach(() => closeDaemons());

/** Fields of /proc/PID/stat after the command: index 11, 12 are utime, stime (ticks); 16 is nice. */
function stat(pid: number): string[] {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
}

const niceOf = (pid: number) => Number(stat(pid)[16]);
/** The process's CPU in ms, in the kernel's 10 ms ticks. */
const cpuMsOf = (pid: number) => (Number(stat(pid)[11]) + Number(stat(pid)[12])) * 10;

function pidOf(daemon: TestDaemon, worker: string): number {
  return daemon.broker.instances().find((i) => i.worker === worker)!.pid!;
}

describe('priority of a request running flat out', () => {
  it("drops to background priority long before its CPU limit, while a light neighbour keeps the tenants' priority", async () => {
    const daemon = await startTestDaemon(hostileTarget('loop-sync'), { cpuMs: 3000, warmPool: 2 });
    await warmNeighbour(daemon);
    expect(await daemon.fetchText('loop-sync', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    const pid = pidOf(daemon, 'loop-sync');
    const neighbourPid = pidOf(daemon, 'neighbour');
    expect(niceOf(pid)).toBe(CHILD_NICE);
    const cpuBefore = cpuMsOf(pid);

    const hostile = daemon.fetchText('loop-sync', '/');
    const neighbours = neighbourDuring(daemon, hostile);
    let demotedAfterMs: number | null = null;
    for (let i = 0; i < 1000 && demotedAfterMs === null; i++) {
      if (niceOf(pid) === BACKGROUND_NICE) demotedAfterMs = cpuMsOf(pid) - cpuBefore;
      else await new Promise((resolve) => setTimeout(resolve, 2));
    }
    // Generous: the watchdog demotes at its first sample past DEMOTE_AFTER_MS (3 ms); ticks are 10 ms.
    expect(demotedAfterMs).not.toBeNull();
    expect(demotedAfterMs!).toBeLessThan(1000);
    expect(niceOf(neighbourPid)).toBe(CHILD_NICE);

    const res = await hostile;
    expect(res.status).toBe(503);
    expect(res.text).toMatch(/exceeded its CPU time limit: this request used \d+ ms of CPU; the limit is 3000 ms/);
    for (const served of await neighbours) expect(served).toMatchObject({ status: 200, text: 'neighbour ok' });
    expect(niceOf(neighbourPid)).toBe(CHILD_NICE);
  });
});

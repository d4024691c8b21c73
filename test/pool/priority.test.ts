/**
 * The priority a child boots at (src/pool/priority.ts): a child a request waits for boots at
 * the tenants' priority, unless that request is a worker's that keeps breaching its limits,
 * whose boots yield to everyone else's work; a warm-pool child boots in the background, but
 * not for ever. Read from /proc as the kernel holds it.
 */
import { readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BACKGROUND_IDLE, BACKGROUND_NICE, CAN_RAISE, CHILD_NICE } from '../../src/pool/priority.js';
import { schedIdleSupported } from '../../src/pool/sched-policy.js';
import { spawnChild, stopForkServerIfIdle } from '../../src/pool/spawn.js';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { niceOf, readableProbe, threadPolicies } from '../helpers/proc.js';

let dir: string;
let entry: string;

beforeAll(() => {
  ({ dir, entry } = readableProbe());
});

afterAll(async () => {
  await stopForkServerIfIdle();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The nice value of a child's main thread, once it runs node (before that it is the launcher, or prlimit or
 * unshare), and the policies of all its threads then.
 */
async function bootPriorityOf(background: boolean): Promise<{ nice: number; policies: string[] }> {
  const child = spawnChild({ warmUp: false, heapMb: 64, entry, background });
  const channel = await child.channel;
  const pid = child.pid!;
  try {
    // A background boot runs under SCHED_IDLE, which gets no CPU while every core is busy: the
    // pool raises such a boot after BACKGROUND_BOOT_MAX_MS, this test reads it before any raise,
    // so it waits as long as the machine keeps it waiting (a full run beside a spinning process
    // took past 1000 polls of 2 ms).
    const deadline = Date.now() + 20_000;
    while (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'node') {
      if (Date.now() > deadline) throw new Error('the child did not run node within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return { nice: niceOf(pid), policies: [...threadPolicies(pid)] };
  } finally {
    channel.destroy();
    await child.exited;
  }
}

describe('boot priority of a child a request waits for', () => {
  it("is the tenants' priority for an ordinary pool miss", async () => {
    expect(await bootPriorityOf(false)).toEqual({ nice: CHILD_NICE, policies: ['other'] });
  });

  it('is background priority for a worker that keeps breaching its limits, where it can be raised again', async () => {
    expect(await bootPriorityOf(true)).toEqual({
      nice: CAN_RAISE ? BACKGROUND_NICE : CHILD_NICE,
      policies: [BACKGROUND_IDLE ? 'idle' : 'other'],
    });
  });
});

describe('SCHED_IDLE for background work', () => {
  it('is available wherever priorities can be raised again on Linux: the build compiled its addon', () => {
    // CI runs as root with a compiler; a build that silently lost the addon would lose this.
    if (CAN_RAISE && process.platform === 'linux') expect(schedIdleSupported).toBe(true);
    expect(BACKGROUND_IDLE).toBe(CAN_RAISE && schedIdleSupported);
  });

  it('leaves a warm child under SCHED_OTHER on every thread once it is ready', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'hello.js': 'export default { fetch: () => new Response("hi") };' }), { warmPool: 2 });
    try {
      for (const pid of daemon.pool.stats().warmPids) {
        expect(niceOf(pid)).toBe(CHILD_NICE);
        expect([...threadPolicies(pid)]).toEqual(['other']);
      }
      expect(await daemon.fetchText('hello')).toMatchObject({ status: 200, text: 'hi' });
    } finally {
      await closeDaemons();
    }
  });
});

describe('boot priority of a child for the warm pool', () => {
  afterEach(() => closeDaemons());

  it('is raised once it has waited long, so the pool fills behind busy processes at nice 0', async () => {
    // One process running flat out at nice 0 per core: a child at nice 19 gets ~1% of a CPU.
    const burners = availableParallelism();
    const busy = Array.from({ length: burners }, () => execa(process.execPath, ['-e', 'for (;;) {}'], { reject: false }));
    try {
      const daemon = await startTestDaemon(writeScripts({ 'hello.js': 'export default { fetch: () => new Response("hi") };' }), { warmPool: 2 });
      expect(daemon.pool.stats().warm).toBe(2);
      for (const pid of daemon.pool.stats().warmPids) {
        expect(niceOf(pid)).toBe(CHILD_NICE);
        expect([...threadPolicies(pid)]).toEqual(['other']);
      }
      expect(daemon.logs.filter((l) => /did not become ready in time/.test(l.msg))).toEqual([]);
      expect(await daemon.fetchText('hello')).toMatchObject({ status: 200, text: 'hi' });
    } finally {
      for (const one of busy) one.kill('SIGKILL');
      await Promise.all(busy);
    }
  });
});

/**
 * The watchdog samples a child's CPU from outside and cannot tell which request a
 * turn ran for, so it splits what it measures among the requests in flight. The
 * child's own count of each request arrives when the request settles; what the
 * watchdog had charged to the others for that request's turns is taken back then.
 * Without that, a request that waits while its neighbours on the same instance
 * work was charged a share of every one of their turns, and a cheap request was
 * stopped by the CPU limit: CI saw a hello-world request get 503 for the work of
 * the requests queued ahead of it on a fresh instance.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon, type TextResult } from '../helpers/daemon.js';
import { expectCpuLimitResponse, hostileTarget, instancePid, mainThreadCpuMs, requestIdOf } from '../helpers/hostile.js';

afterEach(closeDaemons);

const CPU_MS = 50;
const BURNERS = 30;
const BURN_MS = 30;

// `/wait` answers once every burner has. The burners arrive together, after the waiting
// request, and burn in the turns their heads start: once the child has answered the first
// of them, the watchdog cannot tell which of the rest it is busy with, and splits each burn
// among every request in flight, the waiting one too. The child counts each exactly.
const SCRIPT = `
let finished = 0;
let allDone;
const done = new Promise((resolve) => (allDone = resolve));
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/wait') {
      console.log('waiting');
      await done;
      return new Response('waited');
    }
    const until = Date.now() + ${BURN_MS};
    while (Date.now() < until) {}
    if (++finished === ${BURNERS}) allDone();
    return new Response('burned');
  },
};
`;

/** A worker that burns `?burn=` ms of wall time (`forever`: spins), in a timer's turn with `&timer`, under --cpu-ms 150. */
async function startBurner(): Promise<TestDaemon> {
  const script = `export default {
    async fetch(request) {
      const params = new URL(request.url).searchParams;
      const burn = params.get('burn');
      if (burn === 'forever') for (;;) {}
      if (params.has('timer')) await new Promise((resolve) => setTimeout(resolve, 0));
      const until = Date.now() + Number(burn);
      while (Date.now() < until) {}
      return new Response('burned ' + burn);
    },
  };`;
  const daemon = await startTestDaemon(writeScripts({ 'batch.mjs': script }), { cpuMs: 150, maxInstances: 1, warmPool: 1 });
  expect(await daemon.fetchText('batch', '/?burn=1')).toMatchObject({ status: 200, text: 'burned 1' });
  return daemon;
}

/** Sends `path` to the burner and resolves, with its response's promise (wrapped: an async function's result would be awaited), once the child has been seen burning for it. */
async function whileBurning(daemon: TestDaemon, path: string): Promise<{ response: Promise<TextResult> }> {
  const pid = instancePid(daemon, 'batch')!;
  const mainCpuMs = () => mainThreadCpuMs(pid);
  const before = mainCpuMs();
  const res = daemon.fetchText('batch', path);
  await expect.poll(() => mainCpuMs() - before, { interval: 1, timeout: 10_000 }).toBeGreaterThan(10);
  return { response: res };
}

describe('CPU attribution among requests on one instance', () => {
  it('does not charge a waiting request for the turns of its neighbours', { timeout: 60_000 }, async () => {
    const daemon = await startTestDaemon(writeScripts({ 'busy.mjs': SCRIPT }), { cpuMs: CPU_MS, maxInstances: 1, warmPool: 1 });
    // The instance is live and its code compiled before the measured requests (this burns once).
    expect(await daemon.fetchText('busy', '/warm-up')).toMatchObject({ status: 200, text: 'burned' });
    const waiting = daemon.fetchText('busy', '/wait');
    await expect.poll(() => daemon.logs.some((r) => r.source === 'tenant' && r.msg === 'waiting')).toBe(true);
    const burners = Array.from({ length: BURNERS - 1 }, () => daemon.fetchText('busy', '/'));
    const results = await Promise.all([waiting, ...burners]);
    // Each request used at most BURN_MS of CPU; together, far more than the limit.
    expect(results.map((r) => `${r.status} ${r.text}`)).toEqual(['200 waited', ...burners.map(() => '200 burned')]);
    expect(daemon.logs.filter((r) => r.msg === 'limit exceeded')).toEqual([]);
    // The waiting request's accounting line (found by the id on its console line): what the
    // watchdog charged it stays near what it used, not a share of 29 burns of 30 ms (45 ms
    // before the fix).
    const requestId = daemon.logs.find((r) => r.source === 'tenant' && r.msg === 'waiting')?.requestId;
    const waited = daemon.logs.find((r) => r.msg === 'request' && r.requestId === requestId);
    expect(waited).toMatchObject({ status: 200 });
    expect(waited!.cpuMs as number).toBeLessThan(CPU_MS / 2);
  });

  it('blames a runaway whose head was read with a neighbour’s, not the neighbour that ran before it', { timeout: 60_000 }, async () => {
    // The heads of `quick`, `spin` and `last` wait in the socket while `first` burns, and are
    // read together: the child runs quick's handler, then spin's (last's never starts), with no
    // word to the daemon between unless it announces spin's with quick's count. Without that,
    // the watchdog split the CPU evenly among the three, and stopped whichever came first in
    // its table as the runaway: `last`, which never ran. The three are sent once the child is seen
    // burning in first's turn, so that they are not read with first's head.
    const daemon = await startBurner();
    const first = (await whileBurning(daemon, '/?burn=100')).response;
    const quick = daemon.fetchText('batch', '/?burn=20');
    const spin = daemon.fetchText('batch', '/?burn=forever');
    const last = daemon.fetchText('batch', '/?burn=1');
    expect(await first).toMatchObject({ status: 200, text: 'burned 100' });
    const spun = await spin;
    expectCpuLimitResponse(spun, 'batch', 150);
    const used = Number(/this request used (\d+) ms/.exec(spun.text)?.[1]);
    expect(used).toBeGreaterThanOrEqual(150);
    expect(used).toBeLessThan(300);
    for (const neighbour of await Promise.all([quick, last])) {
      expect(neighbour.status).toBe(503);
      expect(neighbour.text).toMatch(/^Worker "batch" was stopped because another request on the same instance exceeded the CPU time limit/);
    }
  });

  it('answers a request whose response a timer’s turn made, though a runaway is read just after that turn', { timeout: 60_000 }, async () => {
    // The timer's turn and the read of the runaway's head are phases of one turn of the child's
    // event loop; the response, corked until the check phase after them, never left before the
    // runaway's head was read, and the answered request was failed with the instance.
    const daemon = await startBurner();
    const answered = (await whileBurning(daemon, '/?burn=100&timer')).response;
    const spin = daemon.fetchText('batch', '/?burn=forever');
    expect(await answered).toMatchObject({ status: 200, text: 'burned 100' });
    expectCpuLimitResponse(await spin, 'batch', 150);
  });

  it.each(['timer', 'digest', 'message', 'compression'])(
    'charges a runaway resumed by a %s alone, not split with the requests idle beside it',
    { timeout: 60_000 },
    async (via) => {
      const daemon = await startTestDaemon(hostileTarget('spin-after-await'), { cpuMs: 100, maxInstances: 1, warmPool: 1 });
      const idle = Array.from({ length: 20 }, () => daemon.fetchText('spin-after-await', '/idle'));
      await expect.poll(() => daemon.broker.stats().find((w) => w.name === 'spin-after-await')?.inflight).toBe(20);
      const spin = await daemon.fetchText('spin-after-await', `/spin?via=${via}`);
      // The spinning request is the one that exceeded the limit, at about the limit: split 21
      // ways, it ran for 2 s of CPU and the blame fell on an idle request.
      const used = Number(/this request used (\d+) ms of CPU; the limit is 100 ms per request/.exec(spin.text)?.[1]);
      expect(spin.status).toBe(503);
      expect(used).toBeGreaterThanOrEqual(100);
      expect(used).toBeLessThan(300);
      expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'limit exceeded', limit: 'cpuMs', requestId: requestIdOf(spin) }));
      for (const res of await Promise.all(idle)) {
        expect(res.status).toBe(503);
        expect(res.text).toMatch(/^Worker "spin-after-await" was stopped because another request on the same instance exceeded the CPU time limit/);
      }
    },
  );

  it('still stops a request that burns in slices while its neighbours on the instance settle', { timeout: 60_000 }, async () => {
    const script = `export default {
      async fetch(request) {
        if (new URL(request.url).pathname !== '/hog') return new Response('quick');
        // 5 ms slices, each in a timer turn of its own, for up to 10 s: far past the limit.
        for (let i = 0; i < 2000; i++) {
          const until = Date.now() + 5;
          while (Date.now() < until) {}
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
        return new Response('finished');
      },
    };`;
    const daemon = await startTestDaemon(writeScripts({ 'mixed.mjs': script }), { cpuMs: 100, maxInstances: 1, warmPool: 1 });
    expect(await daemon.fetchText('mixed', '/')).toMatchObject({ status: 200, text: 'quick' });
    const hog = daemon.fetchText('mixed', '/hog');
    // Quick requests on the same instance settle all the while, each with its own count.
    let stop = false;
    const quick = (async () => {
      const statuses: number[] = [];
      while (!stop) statuses.push((await daemon.fetchText('mixed', '/')).status);
      return statuses;
    })();
    const res = await hog;
    stop = true;
    await quick;
    const used = Number(/^Worker "mixed" exceeded its CPU time limit: this request used (\d+) ms of CPU/.exec(res.text)?.[1]);
    expect(res.status).toBe(503);
    expect(used).toBeGreaterThanOrEqual(100);
    // Generous: stopped within a few slices of its limit, not after its 10 s.
    expect(used).toBeLessThan(400);
  });
});

describe('announcing turns', () => {
  it('costs a burst of one request’s own turns little: 10 000 MessagePort messages fit in the default 50 ms limit', { timeout: 60_000 }, async () => {
    const script = `export default {
      async fetch(request) {
        const n = Number(new URL(request.url).searchParams.get('n'));
        const { port1, port2 } = new MessageChannel();
        let got = 0;
        await new Promise((resolve) => {
          port2.onmessage = () => { if (++got === n) resolve(); };
          for (let i = 0; i < n; i++) port1.postMessage(i);
        });
        port1.close();
        return new Response('received ' + got);
      },
    };`;
    const daemon = await startTestDaemon(writeScripts({ 'flood.mjs': script }), { cpuMs: 50, maxInstances: 1, warmPool: 1 });
    // Growing bursts first, to compile the channel's code: on a slow host the first two bursts
    // of 10 000 took 66 and 47 ms before it was (2026-12-06), and a cold first burst of 2 500
    // took 53-58 ms (CI, and here unloaded); rising from 10 messages, no burst passed 24 ms.
    // A 503 would replace the instance with a cold one. Then the measure. With a Turn frame
    // written for every message, each took ~50 ms of CPU here (and got 503); with one per
    // burst, ~10 (9-15 on that slow host; the same script without any announcing: ~8).
    // Still, once in CI (2026-12-06, a loaded host) a warm-up burst of 2 500 after one of 1 000
    // read 55 ms: a warm-up step that is stopped is taken again on the new instance, at most
    // twice; what is measured is the bursts of 10 000 below.
    for (const n of [10, 100, 500, 1000, 1000, 2500, 2500]) {
      let res = await daemon.fetchText('flood', `/?n=${n}`);
      for (let retry = 0; res.status === 503 && retry < 2; retry++) res = await daemon.fetchText('flood', `/?n=${n}`);
      expect(res).toMatchObject({ status: 200, text: `received ${n}` });
    }
    for (let i = 0; i < 2; i++) {
      const res = await daemon.fetchText('flood', '/?n=10000');
      expect(res).toMatchObject({ status: 200, text: 'received 10000' });
    }
  });
});

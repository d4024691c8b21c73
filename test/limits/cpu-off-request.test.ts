/**
 * CPU a request does not burn on the main thread, or burns after its response:
 * work in Node's thread pool is charged to the request like the main thread's,
 * and an instance with nothing in flight that keeps burning is stopped.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { expectCpuLimitResponse, hostileTarget, instancePid, mainThreadCpuMs, mainThreadWaitChannel, neighbourDuring, requestIdOf, warmNeighbour } from '../helpers/hostile.js';

afterEach(closeDaemons);

const CPU_MS = 200;

describe('CPU outside the main thread and outside requests', () => {
  it("charges a request for its work in Node's thread pool: four parallel PBKDF2 jobs get 503", async () => {
    const daemon = await startTestDaemon(hostileTarget('thread-pool-burn'), { cpuMs: CPU_MS, warmPool: 2 });
    await warmNeighbour(daemon);
    expect(await daemon.fetchText('thread-pool-burn', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    const hostile = daemon.fetchText('thread-pool-burn', '/');
    const neighbours = await neighbourDuring(daemon, hostile);
    for (const res of neighbours) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    const res = await hostile;
    expect(res.status).toBe(503);
    const id = requestIdOf(res);
    const used = Number(/this request used (\d+) ms of CPU/.exec(res.text)?.[1]);
    expect(res.text).toContain(`Worker "thread-pool-burn" exceeded its CPU time limit: this request used ${used} ms of CPU; the limit is ${CPU_MS} ms per request (--cpu-ms).`);
    expect(used).toBeGreaterThanOrEqual(CPU_MS);
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'limit exceeded', worker: 'thread-pool-burn', limit: 'cpuMs', requestId: id }));
    expect(await daemon.fetchText('thread-pool-burn', '/ok')).toMatchObject({ status: 200, text: 'ok' });
  });

  it('stops an instance that burns CPU with no request in flight, and the worker is served by a fresh one', async () => {
    const daemon = await startTestDaemon(hostileTarget('idle-burn'), { cpuMs: 50, warmPool: 2 });
    await warmNeighbour(daemon);
    expect(await daemon.fetchText('idle-burn', '/')).toMatchObject({ status: 200, text: 'left an interval running' });
    const pid = daemon.broker.instances().find((i) => i.worker === 'idle-burn')!.pid;
    // The interval burns ~20 ms a turn; the idle watchdog reads every 100 ms.
    const deadline = Date.now() + 10_000;
    while (!daemon.logs.some((line) => line.msg === 'limit exceeded' && line.limit === 'idleCpuMs') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const breach = daemon.logs.find((line) => line.msg === 'limit exceeded' && line.limit === 'idleCpuMs');
    expect(breach).toMatchObject({ worker: 'idle-burn', max: 50 });
    expect(breach!.value as number).toBeGreaterThan(50);
    // The next request gets a fresh instance, with no interval running.
    expect(await daemon.fetchText('idle-burn', '/spins')).toMatchObject({ status: 200, text: '0' });
    expect(daemon.broker.instances().find((i) => i.worker === 'idle-burn')!.pid).not.toBe(pid);
    expect(await daemon.fetchText('neighbour')).toMatchObject({ status: 200, text: 'neighbour ok' });
  });

  it('stops an instance that starts burning CPU long after its last request', async () => {
    // Idle and quiet for 11 s, it is sampled every 2 s rather than twice a second (watchdog.ts,
    // LONG_IDLE_EVERY): the burn is still seen, a little later.
    const daemon = await startTestDaemon(hostileTarget('idle-burn'), { cpuMs: 50, warmPool: 1 });
    const startedAt = Date.now();
    expect(await daemon.fetchText('idle-burn', '/late')).toMatchObject({ status: 200, text: 'left a late interval behind' });
    const deadline = Date.now() + 25_000;
    while (!daemon.logs.some((line) => line.msg === 'limit exceeded' && line.limit === 'idleCpuMs') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const breach = daemon.logs.find((line) => line.msg === 'limit exceeded' && line.limit === 'idleCpuMs');
    expect(breach).toMatchObject({ worker: 'idle-burn', max: 50 });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(11_000);
    expect(await daemon.fetchText('idle-burn', '/spins')).toMatchObject({ status: 200, text: '0' });
  }, 40_000);

  it('allows an idle instance a burst the size of its own garbage collection', async () => {
    const daemon = await startTestDaemon(hostileTarget('idle-burn'), { cpuMs: 50, warmPool: 1 });
    expect(await daemon.fetchText('idle-burn', '/burst')).toMatchObject({ status: 200, text: 'left one burst behind' });
    const pid = daemon.broker.instances().find((i) => i.worker === 'idle-burn')!.pid;
    // Up to 100 ms of CPU, past --cpu-ms but within the allowance; three idle samples later it is still there.
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect(daemon.logs.filter((line) => line.msg === 'limit exceeded')).toEqual([]);
    const spins = await daemon.fetchText('idle-burn', '/spins');
    expect(spins.status).toBe(200);
    expect(Number(spins.text)).toBeGreaterThan(0); // the same instance, which ran the burst
    expect(daemon.broker.instances().find((i) => i.worker === 'idle-burn')!.pid).toBe(pid);
  });

  it('does not charge a request for CPU its instance was already burning when the request was sent', async () => {
    // As V8's garbage collection runs between requests: a hello-world request that arrived during
    // a collection of 75-100 ms (a loaded host) was stopped by the CPU limit for it.
    const daemon = await startTestDaemon(hostileTarget('idle-burn'), { cpuMs: 50, warmPool: 1 });
    expect(await daemon.fetchText('idle-burn', '/burst?ms=200')).toMatchObject({ status: 200, text: 'left one burst behind' });
    // Sent while the burst runs (it lasts 200 ms of wall time); the child answers it once the burst is over.
    await new Promise((resolve) => setTimeout(resolve, 40));
    const during = await daemon.fetchText('idle-burn', '/spins');
    expect(during.status).toBe(200);
    expect(Number(during.text)).toBeGreaterThan(0); // answered after the burst, by the instance that ran it
    expect(daemon.logs.filter((line) => line.msg === 'limit exceeded')).toEqual([]);
  });

  it('still stops a runaway that the instance reads the moment such a burn ends', async () => {
    const daemon = await startTestDaemon(hostileTarget('idle-burn'), { cpuMs: 50, warmPool: 1 });
    await warmNeighbour(daemon);
    expect(await daemon.fetchText('idle-burn', '/burst?ms=100')).toMatchObject({ status: 200, text: 'left one burst behind' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const hostile = daemon.fetchText('idle-burn', '/forever');
    const neighbours = await neighbourDuring(daemon, hostile);
    for (const res of neighbours) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    expectCpuLimitResponse(await hostile, 'idle-burn', 50);
  });

  it('still stops a runaway when the daemon samples it late', async () => {
    // Whatever the watchdog does with a sample far later than due, a runaway must not slip through.
    const daemon = await startTestDaemon(hostileTarget('idle-burn'), { cpuMs: 50, warmPool: 1 });
    expect(await daemon.fetchText('idle-burn', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    const hostile = daemon.fetchText('idle-burn', '/forever');
    await expect.poll(() => daemon.broker.stats().find((w) => w.name === 'idle-burn')?.inflight, { interval: 1 }).toBe(1);
    // The daemon runs in this process: its watchdog samples nothing while this spins.
    const until = performance.now() + 400;
    while (performance.now() < until);
    expectCpuLimitResponse(await hostile, 'idle-burn', 50);
  });

  it('does not stop a request when a late sample finds CPU its child burnt elsewhere and the child has gone idle', async () => {
    // As in CI: the daemon did not run for ~100 ms, and its next sample found ~100 ms on a child
    // serving a hello-world request (test/faults/kills-under-load.test.ts). Here the child burns
    // between turns after the request was sent (it slept first, so it was idle when the request
    // went out), while the in-process daemon is blocked; by the time the daemon samples, the child
    // has read the request and waits on its timer.
    const daemon = await startTestDaemon(hostileTarget('idle-burn'), { cpuMs: 50, warmPool: 1 });
    const burst = await burstBetweenTurns(daemon, 300, 1);
    const [res] = await burst.answers;
    expect(res).toMatchObject({ status: 200, text: 'slow ok' });
    expect(daemon.logs.filter((line) => line.msg === 'limit exceeded')).toEqual([]);
    const waived = daemon.logs.find((line) => line.msg === 'CPU charge waived: seen late');
    expect(waived).toMatchObject({ worker: 'idle-burn' });
    expect(waived!.waived as number).toBeGreaterThanOrEqual(50);
    // The request it names is the one that was answered.
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'request', requestId: waived!.requestId, status: 200 }));
  });

  it('does not gather a late burst that was split over requests onto the one whose turn comes next', async () => {
    // As in CI: a stall booked to a child serving three hello-world requests was charged ~34 ms to
    // each, under the limit; the next Turn frame gave one request the others' shares, 101 ms, and
    // a 503 (test/faults/kills-under-load.test.ts). Each share here is up to ~37 ms: under the limit
    // alone, past it together. The requests' first timers then fire, each turn announced with the
    // child's counts, and the requests stay in flight for a second timer.
    const daemon = await startTestDaemon(hostileTarget('idle-burn'), { cpuMs: 50, warmPool: 1 });
    // On a loaded machine the burst (110 ms of wall time) gets less CPU, and the test proves less.
    const burst = await burstBetweenTurns(daemon, 110, 3, 5, '/slow?ms=2000&then=500');
    for (const res of await burst.answers) expect(res).toMatchObject({ status: 200, text: 'slow ok' });
    expect(daemon.logs.filter((line) => line.msg === 'limit exceeded')).toEqual([]);
    const waived = daemon.logs.filter((line) => line.msg === 'CPU charge waived: seen late');
    // All of the burst, less what the child spent on the requests themselves, a millisecond or two.
    expect(waived.reduce((sum, line) => sum + (line.waived as number), 0)).toBeGreaterThanOrEqual(burst.burntMs - 10);
  });
  it('leaves alone an idle instance whose timers stay cheap', async () => {
    const daemon = await startTestDaemon(hostileTarget('idle-burn'), { cpuMs: 50, warmPool: 1 });
    await warmNeighbour(daemon);
    // The neighbour answers and stays idle, sampled like any other instance.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(daemon.logs.filter((line) => line.msg === 'limit exceeded')).toEqual([]);
    expect(await daemon.fetchText('neighbour')).toMatchObject({ status: 200, text: 'neighbour ok' });
  });
});

/**
 * Has the idle-burn child burn `burstMs` of wall time between turns while `requests` slow
 * requests (`path`: answering 2 s after they are read) are in flight and the in-process daemon is
 * blocked, so that the daemon's next sample is late and finds the burst at once (at least
 * `minBurntMs` of CPU, burntMs in all), with the child asleep on the requests' timers.
 */
async function burstBetweenTurns(daemon: TestDaemon, burstMs: number, requests: number, minBurntMs = 60, path = '/slow?ms=2000'): Promise<{ answers: Promise<Array<{ status: number; text: string }>>; burntMs: number }> {
  expect(await daemon.fetchText('idle-burn', '/ok')).toMatchObject({ status: 200, text: 'ok' });
  const pid = instancePid(daemon, 'idle-burn')!;
  const mainCpuMs = () => mainThreadCpuMs(pid);
  const state = () => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2];
  };
  const before = mainCpuMs();
  expect(await daemon.fetchText('idle-burn', `/burst?ms=${burstMs}&after=1500`)).toMatchObject({ status: 200, text: 'left one burst behind' });
  // The burst's request settled (the child says so after its response): CI once blocked the
  // daemon while the first still counted as in flight, and the second reached the child only
  // after the burst. The next requests go out while the child sleeps before the burst, and
  // outlast it. Full runs got 200 and no warning line now and then: the child, still running
  // when /slow was sent (it had not reached the burst's timer), read /slow first, and the
  // daemon, blocked below, read /slow's whole answer before it took any sample (nothing late
  // to waive); or, seeing the child busy when it sent /slow, spared /slow the burst. So /slow
  // goes out once the child's main thread has slept in a futex (the burst's `Atomics.wait`)
  // for 100 ms without using CPU (a single reading passed, once, a moment the child was not
  // in that sleep), and it answers 2 s after it is read, whichever side of the burst that is.
  const inflight = () => daemon.broker.instances().find((i) => i.worker === 'idle-burn')?.inflight;
  await expect.poll(inflight, { interval: 1 }).toBe(0);
  let asleepSince = performance.now();
  let asleepCpu = mainCpuMs();
  const asleepMs = () => {
    const now = performance.now();
    const cpu = mainCpuMs();
    if (!/futex/.test(mainThreadWaitChannel(pid)) || cpu !== asleepCpu) [asleepSince, asleepCpu] = [now, cpu];
    return now - asleepSince;
  };
  await expect.poll(asleepMs, { interval: 5, timeout: 1400 }).toBeGreaterThanOrEqual(100);
  const answers = Promise.all(Array.from({ length: requests }, () => daemon.fetchText('idle-burn', path)));
  await expect.poll(inflight, { interval: 1 }).toBe(requests);
  // The daemon samples nothing until the burst is over and the child sleeps on the timers: off a
  // CPU with its count unmoved for 20 ms (a single reading off a CPU passed, once in CI, a moment
  // between the burst and the child reading the requests).
  const deadline = performance.now() + 10_000;
  let stillSince = performance.now();
  let stillCpu = mainCpuMs();
  for (;;) {
    const now = performance.now();
    const cpu = mainCpuMs();
    if (state() === 'R' || cpu !== stillCpu) [stillSince, stillCpu] = [now, cpu];
    if ((cpu - before >= minBurntMs && now - stillSince >= 20) || now > deadline) break;
  }
  expect(performance.now() - stillSince).toBeGreaterThanOrEqual(20);
  const burntMs = mainCpuMs() - before;
  expect(burntMs).toBeGreaterThanOrEqual(minBurntMs);
  return { answers, burntMs };
}

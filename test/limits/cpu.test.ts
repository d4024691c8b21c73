import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, type TestDaemon, type TextResult } from '../helpers/daemon.js';
import { hostileTarget, neighbourDuring, requestIdOf, warmNeighbour } from '../helpers/hostile.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

let origin: Origin | null = null;
afterEach(async () => {
  await closeDaemons();
  await origin?.close();
  origin = null;
});

const CPU_MS = 200;

function cpuExceeded(worker: string, id: string): RegExp {
  return new RegExp(
    `^Worker "${worker}" exceeded its CPU time limit: this request used (\\d+) ms of CPU; the limit is ${CPU_MS} ms per request \\(--cpu-ms\\)\\.\\n\\nrequest id: ${id}\\n$`,
  );
}

/** The hostile request with neighbour traffic for as long as it is in flight; asserts the neighbour saw no error. */
async function withNeighbour(daemon: TestDaemon, hostile: Promise<TextResult>): Promise<TextResult> {
  const neighbours = await neighbourDuring(daemon, hostile);
  expect(neighbours.length).toBeGreaterThanOrEqual(3);
  for (const res of neighbours) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
  return hostile;
}

async function expectCpuBreach(daemon: TestDaemon, worker: string, path: string): Promise<void> {
  const started = Date.now();
  const res = await withNeighbour(daemon, daemon.fetchText(worker, path));
  // Generous: the watchdog samples every 5 ms; this only proves it is stopped, not how fast.
  expect(Date.now() - started).toBeLessThan(5_000);
  expect(res.status).toBe(503);
  const id = requestIdOf(res);
  const used = Number(res.text.match(cpuExceeded(worker, id))?.[1]);
  expect(res.text).toMatch(cpuExceeded(worker, id));
  // Rounded to whole milliseconds: a breach by a fraction reads as the limit itself.
  expect(used).toBeGreaterThanOrEqual(CPU_MS);
  expect(daemon.logs).toContainEqual(
    expect.objectContaining({ msg: 'limit exceeded', worker, limit: 'cpuMs', value: used, max: CPU_MS, requestId: id }),
  );
  // The line carries how the charge grew (the accounting's last events, src/pool/cpu-trace.ts):
  // samples of the child running, the last of them with the request charged most of its limit.
  const trace = daemon.logs.find((r) => r.msg === 'limit exceeded' && r.requestId === id)!.trace as string[];
  for (const line of trace) {
    expect(line).toMatch(/^-\d+\.\d (sample \+\d+\.\d in \d+\.\d [RS]( \w+)* -> \d+\.\d|turn own \d+\.\d: \d+\.\d -> \d+\.\d \(\d+ in flight\)|sent \(\d+ in flight\)|settled own \d+\.\d \(\d+ in flight\)|held (kept|taken back \d+\.\d))$/);
  }
  const samples = trace.filter((line) => line.includes(' sample ') && line.includes(' R'));
  expect(samples.length).toBeGreaterThan(0);
  expect(Number(/-> (\d+\.\d)$/.exec(samples.at(-1)!)![1])).toBeGreaterThan(CPU_MS / 2);
  // The worker is served again, by a fresh instance.
  expect(await daemon.fetchText(worker, '/ok')).toMatchObject({ status: 200, text: 'ok' });
  expect(daemon.broker.stats().find((w) => w.name === 'neighbour')).toMatchObject({ errors: 0 });
}

describe('CPU time per request (--cpu-ms)', () => {
  it('stops a synchronous infinite loop with 503 naming the limit and the CPU used', async () => {
    const daemon = await startTestDaemon(hostileTarget('loop-sync'), { cpuMs: CPU_MS, warmPool: 2 });
    await warmNeighbour(daemon);
    const before = (await daemon.fetchText('loop-sync', '/ok')).status;
    expect(before).toBe(200);
    const pid = daemon.broker.instances().find((i) => i.worker === 'loop-sync')!.pid;
    await expectCpuBreach(daemon, 'loop-sync', '/');
    expect(daemon.broker.instances().find((i) => i.worker === 'loop-sync')!.pid).not.toBe(pid);
  });

  it('stops a loop that spins on awaited microtasks', async () => {
    const daemon = await startTestDaemon(hostileTarget('loop-microtasks'), { cpuMs: CPU_MS, warmPool: 2 });
    await warmNeighbour(daemon);
    await expectCpuBreach(daemon, 'loop-microtasks', '/await');
  });

  it('stops a loop that spins on a .then() chain', async () => {
    const daemon = await startTestDaemon(hostileTarget('loop-microtasks'), { cpuMs: CPU_MS, warmPool: 2 });
    await warmNeighbour(daemon);
    await expectCpuBreach(daemon, 'loop-microtasks', '/then');
  });

  it('stops a loop that starts after the request waited quietly (the watchdog wakes on the turn the child announces)', async () => {
    const daemon = await startTestDaemon(hostileTarget('loop-after-wait'), { cpuMs: CPU_MS, warmPool: 2 });
    await warmNeighbour(daemon);
    await expectCpuBreach(daemon, 'loop-after-wait', '/');
  });

  it('lets a request that burns a fifth of the limit finish with 200', async () => {
    const daemon = await startTestDaemon(hostileTarget('burn'), { cpuMs: CPU_MS, warmPool: 2 });
    await warmNeighbour(daemon);
    // Twice: the second runs on a warm instance whose code is compiled.
    for (let i = 0; i < 2; i++) {
      const res = await withNeighbour(daemon, daemon.fetchText('burn', '/?ms=40'));
      expect(res).toMatchObject({ status: 200, text: 'burned 40 ms' });
    }
    expect(daemon.logs.filter((r) => r.msg === 'limit exceeded')).toEqual([]);
  });

  it('stops a request that would burn a minute (wall time: on a loaded machine, at background priority, it still crosses the limit)', async () => {
    const daemon = await startTestDaemon(hostileTarget('burn'), { cpuMs: CPU_MS, warmPool: 2 });
    await warmNeighbour(daemon);
    const res = await withNeighbour(daemon, daemon.fetchText('burn', '/?ms=60000'));
    expect(res.status).toBe(503);
    expect(res.text).toMatch(cpuExceeded('burn', requestIdOf(res)));
    expect(await daemon.fetchText('burn', '/?ms=0')).toMatchObject({ status: 200, text: 'burned 0 ms' });
  });

  it('ends every request in flight on the runaway instance with 503: the runaway "exceeded", the idle ones beside it "was stopped"', async () => {
    origin = await startOrigin();
    const daemon = await startTestDaemon(hostileTarget('gated'), { cpuMs: CPU_MS, warmPool: 2, egressAllow: '127.0.0.1/32' });
    await warmNeighbour(daemon);
    expect((await daemon.fetchText('gated', '/')).status).toBe(200);
    const query = `origin=${encodeURIComponent(origin.url)}`;
    const innocent = [daemon.fetchText('gated', `/?gate=a&${query}`), daemon.fetchText('gated', `/?gate=b&${query}`)];
    await Promise.all([origin.arrived('a'), origin.arrived('b')]);
    expect(daemon.broker.instances().filter((i) => i.worker === 'gated')).toHaveLength(1);

    const runaway = withNeighbour(daemon, daemon.fetchText('gated', '/?loop'));
    const all = await Promise.all([runaway, ...innocent]);
    const exceeded = all.filter((res) => cpuExceeded('gated', requestIdOf(res)).test(res.text));
    expect(exceeded).toHaveLength(1);
    // The CPU is the runaway's, not the requests idle at the origin beside it.
    expect(exceeded[0]).toBe(all[0]);
    const used = Number(exceeded[0]!.text.match(cpuExceeded('gated', requestIdOf(exceeded[0]!)))?.[1]);
    for (const res of all) {
      expect(res.status).toBe(503);
      if (res === exceeded[0]) continue;
      expect(res.text).toBe(
        `Worker "gated" was stopped because another request on the same instance exceeded the CPU time limit (${used} ms used; the limit is ${CPU_MS} ms per request). Retry.\n\nrequest id: ${requestIdOf(res)}\n`,
      );
    }
    expect(await daemon.fetchText('gated', '/')).toMatchObject({ status: 200, text: 'ok' });
  });
});

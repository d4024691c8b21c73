import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { hostileTarget, requestIdOf } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('accounting', () => {
  it('logs one request line per request and totals CPU and breaches per worker in GET /workers', async () => {
    const daemon = await startTestDaemon(hostileTarget('burn'), { cpuMs: 200, warmPool: 2 });
    // 100 ms of wall time on the CPU: under a loaded CI machine the child got as little as a
    // tenth of a 40 ms burn (4.5 ms), and the bound below is 5 ms.
    const ok = await daemon.fetchText('burn', '/?ms=100');
    expect(ok.status).toBe(200);
    // Logged once the child settles the request, with the CPU it counted itself beside the watchdog's.
    await expect.poll(() => daemon.logs.find((r) => r.msg === 'request' && r.worker === 'burn')).toBeDefined();
    const counted = daemon.logs.find((r) => r.msg === 'request' && r.worker === 'burn')!;
    expect(counted).toMatchObject({ worker: 'burn', status: 200, childCpuMs: expect.any(Number), cpuMs: expect.any(Number) });
    // Both counts see a good part of it (generous bounds; the machine is shared).
    expect(counted.childCpuMs as number).toBeGreaterThan(5);
    expect(counted.childCpuMs as number).toBeLessThan(2000);
    // A minute of wall time: only the 200 ms CPU limit ends it, however loaded the machine.
    const stopped = await daemon.fetchText('burn', '/?ms=60000');
    expect(stopped.status).toBe(503);
    const id = requestIdOf(stopped);
    expect(daemon.logs.filter((r) => r.msg === 'request' && r.requestId === id)).toEqual([
      // The child was killed: only the watchdog's count exists.
      expect.objectContaining({ worker: 'burn', status: 503, instance: expect.any(String), wallMs: expect.any(Number), cpuMs: expect.any(Number), childCpuMs: null }),
    ]);
    const line = daemon.logs.find((r) => r.msg === 'request' && r.requestId === id)!;
    expect(line.cpuMs as number).toBeGreaterThanOrEqual(200);

    const res = await request(`${daemon.adminUrl}/workers`);
    expect(res.statusCode).toBe(200);
    const body = (await res.body.json()) as { workers: Array<Record<string, unknown>> };
    const burn = body.workers.find((w) => w.name === 'burn')!;
    expect(burn).toMatchObject({ requests: 2, errors: 1, limitBreaches: 1 });
    // The request under the limit plus ≥ 200 ms for the one over it.
    expect(burn.cpuMs as number).toBeGreaterThan(200);
    expect(body.workers.find((w) => w.name === 'neighbour')).toMatchObject({ requests: 0, limitBreaches: 0, cpuMs: 0 });
  });

  it("counts a new instance's script load as its startup, not as the CPU of the request that waited for it", async () => {
    // ~100-200 ms of CPU at global scope, then a cheap handler. With no warm child, the first
    // request reaches the child spawned for it in the same read as the script: its own count once
    // included the whole load.
    const script = `let x = 0; for (let i = 0; i < 1e8; i++) x += i % 7;\nexport default { fetch() { return new Response(String(x > 0)); } };\n`;
    const daemon = await startTestDaemon(writeScripts({ 'heavy.mjs': script }), { cpuMs: 2000, warmPool: 0 });
    const res = await daemon.fetchText('heavy');
    expect(res).toMatchObject({ status: 200, text: 'true' });
    const instance = daemon.broker.instances().find((i) => i.worker === 'heavy')!;
    await expect.poll(() => daemon.logs.find((r) => r.msg === 'request' && r.worker === 'heavy')).toBeDefined();
    const line = daemon.logs.find((r) => r.msg === 'request' && r.worker === 'heavy')!;
    // The watchdog charged the load to the startup; the request's line, by either count, is not the load.
    expect(instance.startupCpuMs).toBeGreaterThan(30);
    expect(line.childCpuMs as number).toBeLessThan(instance.startupCpuMs / 2);
    expect(line.cpuMs as number).toBeLessThan(instance.startupCpuMs / 2);
  });

  it("totals each worker's CPU as its request lines add up, short requests included", async () => {
    // A hello request is shorter than one watchdog sample, so the watchdog charges most of them
    // 0 ms; the child counts each one. Totals once summed only the watchdog's charges: 28 ms for
    // requests whose children counted 466.
    const daemon = await startTestDaemon(writeScripts({ 'hello.js': `addEventListener('fetch', (e) => e.respondWith(new Response('hi')));\n` }), { warmPool: 1 });
    const total = 200;
    for (let sent = 0; sent < total; sent += 10) {
      const answers = await Promise.all(Array.from({ length: 10 }, () => daemon.fetchText('hello')));
      for (const answer of answers) expect(answer).toMatchObject({ status: 200, text: 'hi' });
    }
    // Each line is written once its child settles the request.
    await expect.poll(() => daemon.logs.filter((r) => r.msg === 'request' && r.worker === 'hello').length, { timeout: 10_000 }).toBe(total);
    const lines = daemon.logs.filter((r) => r.msg === 'request' && r.worker === 'hello');
    let summed = 0;
    let childSummed = 0;
    for (const line of lines) {
      expect(line.childCpuMs).toEqual(expect.any(Number));
      summed += Math.max(line.cpuMs as number, line.childCpuMs as number);
      childSummed += line.childCpuMs as number;
    }
    const res = await request(`${daemon.adminUrl}/workers`);
    const hello = ((await res.body.json()) as { workers: Array<{ name: string; requests: number; cpuMs: number }> }).workers.find((w) => w.name === 'hello')!;
    expect(hello.requests).toBe(total);
    expect(childSummed).toBeGreaterThan(0);
    // The lines' figures are rounded to 0.01 ms and the total to 1 ms.
    expect(Math.abs(hello.cpuMs - summed)).toBeLessThanOrEqual(total * 0.005 + 0.5);
    expect(hello.cpuMs).toBeGreaterThanOrEqual(Math.floor(childSummed - total * 0.005));
  });
});


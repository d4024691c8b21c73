/**
 * The runtime's own set-up for an API's first use (Node loading its crypto code)
 * is not the request's CPU (runner/runtime-work.ts): it counts against the
 * startup limit, like the global scope's, and that limit still holds for a
 * tenant that tries to hide a runaway inside it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { attack, expectDaemonServes, requestIdOf, startHostileDaemon } from '../helpers/hostile.js';
import { until } from '../helpers/until.js';

afterEach(closeDaemons);

// `/plain` touches no crypto; `/crypto` is the first use of crypto, SHA-256 and HMAC in a fresh
// child: loading Node's code for them was 10-22 ms of the first request's CPU before it counted
// as startup (2-3 ms for the next request), ~3-13 ms after (the rest is work Node does later,
// in completions and garbage collection, outside the window).
const CRYPTO = `
export default {
  async fetch(request) {
    if (new URL(request.url).pathname === '/plain') return new Response('plain');
    const data = new TextEncoder().encode('edgeproc');
    const digest = await crypto.subtle.digest('SHA-256', data);
    const key = await crypto.subtle.importKey('raw', new TextEncoder().encode('secret'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const mac = await crypto.subtle.sign('HMAC', key, data);
    return new Response(digest.byteLength + ' ' + mac.byteLength);
  },
};
`;

describe("the runtime's first-use set-up (runner/runtime-work.ts)", () => {
  it("books loading Node's crypto code to the instance's startup, not to the request that used crypto first", { timeout: 60_000 }, async () => {
    // Three workers of the same script: three fresh instances, each loading the code again.
    const workers = ['first', 'second', 'third'];
    const daemon = await startTestDaemon(writeScripts(Object.fromEntries(workers.map((name) => [`${name}.mjs`, CRYPTO]))), { cpuMs: 30, warmPool: 2 });
    for (const worker of workers) {
      // From the warm pool, as a cold start is: a child spawned for the request has not compiled even
      // the runner's request path yet.
      await daemon.pool.filled();
      expect(await daemon.fetchText(worker, '/plain')).toMatchObject({ status: 200, text: 'plain' });
      const instance = daemon.broker.instances().find((i) => i.worker === worker)!;
      const loaded = instance.startupCpuMs;
      const res = await daemon.fetchText(worker, '/crypto');
      expect(res, res.text).toMatchObject({ status: 200, text: '32 32' });
      // The same instance, whose startup now includes the runtime's set-up for crypto.
      expect(daemon.broker.instances().find((i) => i.worker === worker)).toBe(instance);
      expect(instance.startupCpuMs).toBeGreaterThan(loaded);
    }
    expect(daemon.logs.filter((r) => r.msg === 'limit exceeded')).toEqual([]);
  });

  it('stops a runaway hidden inside the set-up window with the startup CPU limit, and says so', { timeout: 60_000 }, async () => {
    const daemon = await startHostileDaemon(['runtime-work-spin'], { cpuMs: 50, startupCpuMs: 300 });
    const res = await attack(daemon, 'runtime-work-spin');
    expect(res.status).toBe(503);
    const match = res.text.match(
      new RegExp(
        `^Worker "runtime-work-spin" exceeded its startup CPU limit: its global scope and the runtime's set-up of the APIs it used first \\(crypto, compression, \\.\\.\\.\\) used (\\d+) ms of CPU on this instance; the limit is 300 ms \\(--startup-cpu-ms\\)\\. Retry\\.\\n\\nrequest id: ${requestIdOf(res)}\\n$`,
      ),
    );
    expect(match, res.text).not.toBeNull();
    expect(Number(match![1])).toBeGreaterThan(300);
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'limit exceeded', worker: 'runtime-work-spin', limit: 'startupCpuMs', max: 300 }));
    await expectDaemonServes(daemon);
  });

  it("books compiling the runner's own request path to a pool miss's startup, not to its first request", { timeout: 60_000 }, async () => {
    // No warm pool: each worker's first request waits for a child spawned for it, which skipped
    // the warm-up at boot. Its first request was charged that compile by the child's own count:
    // 4.1-6.4 ms against ~0.3-0.5 for the second (2026-12-07), and once 78 ms under load.
    const workers = ['one', 'two', 'three'];
    const hello = `export default { fetch() { return new Response('hello'); } };\n`;
    const daemon = await startTestDaemon(writeScripts(Object.fromEntries(workers.map((name) => [`${name}.mjs`, hello]))), { warmPool: 0 });
    const childCpuMs = async (worker: string, nth: number): Promise<number> => {
      expect(await daemon.fetchText(worker)).toMatchObject({ status: 200, text: 'hello' });
      const lines = () => daemon.logs.filter((r) => r.msg === 'request' && r.worker === worker);
      await until(() => lines().length >= nth, `the accounting line of ${worker}'s request ${nth}`);
      return lines()[nth - 1]!.childCpuMs as number;
    };
    const first: number[] = [];
    const second: number[] = [];
    for (const worker of workers) {
      first.push(await childCpuMs(worker, 1));
      second.push(await childCpuMs(worker, 2));
      expect(daemon.pool.stats()).toMatchObject({ hits: 0 });
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[1]!;
    // A generous bound: the compile charged to the first request made it 10-20 times the second.
    expect(median(first), `first requests ${first.join(', ')} ms, second ${second.join(', ')} ms`).toBeLessThan(3 * median(second) + 1.5);
  });
});

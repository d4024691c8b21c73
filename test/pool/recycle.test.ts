import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

describe('graceful recycling', () => {
  it('replaces an instance after --recycle-after requests, letting its waitUntil work finish first', async () => {
    const dir = writeScripts({
      'counter.mjs': `let served = 0;
        export default { fetch(request, env, ctx) {
          served++;
          ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 100)).then(() => console.log('background done ' + served)));
          return new Response(String(served));
        } };`,
    });
    const daemon = await startTestDaemon(dir, { recycleAfter: 3, warmPool: 1 });
    const answers = [];
    const pids = [];
    for (let i = 0; i < 4; i++) {
      answers.push((await daemon.fetchText('counter', '/')).text);
      pids.push(daemon.broker.instances()[0]?.pid);
    }
    // Three requests on the first instance; the third retired it; the fourth started afresh.
    expect(answers).toEqual(['1', '2', '3', '1']);
    expect(pids[0]).toBe(pids[1]);
    expect(pids[2]).toBeUndefined(); // retired after its third request: no live instance until the next
    expect(pids[3]).toBeDefined();
    expect(pids[3]).not.toBe(pids[0]);
    const recycled = daemon.logs.find((r) => r.msg === 'recycling instance');
    expect(recycled?.reason).toBe('it served 3 requests (recycleAfterRequests)');
    // The retired instance finished its background work before it exited.
    const deadline = Date.now() + 5000;
    while (!daemon.logs.some((r) => r.msg === 'background done 3') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(daemon.logs.some((r) => r.msg === 'background done 3')).toBe(true);
  });

  it('with --recycle-after 1 gives every request an instance of its own', async () => {
    const dir = writeScripts({ 'once.mjs': `const born = Math.random(); export default { fetch() { return new Response(String(born)); } };` });
    const daemon = await startTestDaemon(dir, { recycleAfter: 1, warmPool: 1 });
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push((await daemon.fetchText('once', '/')).text);
    // The check used to run only when a live instance was picked: a fresh instance served two.
    expect(new Set(answers).size).toBe(3);
    expect(daemon.logs.filter((r) => r.msg === 'recycling instance').map((r) => r.reason)).toEqual([
      'it served 1 requests (recycleAfterRequests)',
      'it served 1 requests (recycleAfterRequests)',
      'it served 1 requests (recycleAfterRequests)',
    ]);
  });

  it('answers a request the drain timeout cuts short with 503 saying why the instance went', async () => {
    const dir = writeScripts({
      'app.mjs': `export default { async fetch(request) {
          if (new URL(request.url).pathname === '/slow') await new Promise((resolve) => setTimeout(resolve, 20000));
          return new Response('v1');
        } };`,
    });
    const daemon = await startTestDaemon(dir, { drainTimeout: 500, warmPool: 1 });
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'v1' });
    const slow = daemon.fetchText('app', '/slow');
    const deadline = Date.now() + 5000;
    while (daemon.broker.instances()[0]?.inflight !== 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    const put = await request(`${daemon.adminUrl}/workers/app`, { method: 'PUT', body: "export default { fetch() { return new Response('v2'); } };" });
    await put.body.text();
    expect(put.statusCode).toBe(200);
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'v2' });
    const cut = await slow;
    expect(cut.status).toBe(503);
    expect(cut.text).toContain(
      `Worker "app"'s instance was being replaced (version 2 was deployed) and this request did not finish within the drain timeout of 500 ms (--drain-timeout). Retry; a new instance will serve it.`,
    );
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'v2' });
  });

  it('delivers every byte of responses that end while their instance drains, even when the daemon reads them late', async () => {
    // A drained child used to exit as soon as its last request ended, dropping the frames its
    // socket had not taken yet: under load (a daemon slow to read) the instance "died" mid-body
    // and each client got a cut response.
    const TAIL = 250 * 1024; // within one stream's window, so the child writes it all without waiting for the daemon
    const dir = writeScripts({
      'big.mjs': `export default { fetch() {
          return new Response(new ReadableStream({
            start(controller) { controller.enqueue(new TextEncoder().encode('start')); },
            async pull(controller) { await scheduler.wait(800); controller.enqueue(new Uint8Array(${TAIL}).fill(120)); controller.close(); },
          }));
        } };`,
    });
    const daemon = await startTestDaemon(dir, { maxInstances: 1, scaleOutConcurrency: 8, warmPool: 1 });
    const heads = await Promise.all(
      [0, 1, 2].map(() => request(`${daemon.url}/`, { headers: { host: `big.localhost:${daemon.port}` } })),
    );
    const instance = [...daemon.pool.live].find((i) => i.worker === 'big')!;
    const drained = instance.drain(20_000, () => [503, 'the drain timed out']);
    // The daemon runs in this process: hold its event loop while the child writes its tails
    // (3 x 250 KiB, more than a socket buffer holds), ends its requests and leaves.
    const until = Date.now() + 2500;
    while (Date.now() < until);
    const bodies = await Promise.all(heads.map((res) => res.body.text()));
    await drained;
    expect(heads.map((res) => res.statusCode)).toEqual([200, 200, 200]);
    expect(bodies.map((body) => body.length)).toEqual([5 + TAIL, 5 + TAIL, 5 + TAIL]);
    expect(daemon.logs.filter((r) => r.level === 'warn' || r.level === 'error').map((r) => r.msg)).toEqual([]);
  });
});

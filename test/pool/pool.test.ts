import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

afterEach(closeDaemons);

const hello = (name: string) => `export default { fetch() { return new Response('${name}'); } };`;

async function listing(daemon: TestDaemon) {
  const res = await request(`${daemon.adminUrl}/workers`);
  return (await res.body.json()) as {
    workers: Array<{ name: string; instances: number; coldStarts: number }>;
    pool: { warm: number; warmPids: number[]; booting: number; hits: number; misses: number; spawned: number };
  };
}

describe('warm pool', () => {
  it('serves the first request from a warm child, reuses it, and refills the pool', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': hello('a') }), { warmPool: 1 });
    const [warm] = [...daemon.pool.live];
    expect((await listing(daemon)).pool).toMatchObject({ warm: 1, warmPids: [warm!.pid], hits: 0, misses: 0, spawned: 1 });

    expect(await daemon.fetchText('a')).toMatchObject({ status: 200, text: 'a' });
    const [instance] = daemon.broker.instances();
    expect(instance).toBe(warm);
    for (let i = 0; i < 5; i++) expect((await daemon.fetchText('a')).status).toBe(200);
    expect(daemon.broker.instances().map((i) => i.pid)).toEqual([warm!.pid]);

    await daemon.pool.filled();
    const after = await listing(daemon);
    expect(after.pool).toMatchObject({ warm: 1, hits: 1, misses: 0, spawned: 2 });
    // The child handed out is the worker's now, listed there and no longer among the warm ones.
    expect(after.pool.warmPids).toEqual([expect.any(Number)]);
    expect(after.pool.warmPids).not.toContain(warm!.pid);
    expect(after.workers).toEqual([expect.objectContaining({ name: 'a', instances: 1, coldStarts: 1 })]);
  });

  it('spawns a child on a pool miss when none is warm', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': hello('a') }), { warmPool: 0 });
    expect(await daemon.fetchText('a')).toMatchObject({ status: 200, text: 'a' });
    expect((await listing(daemon)).pool).toMatchObject({ warm: 0, hits: 0, misses: 1, spawned: 1 });
  });

  it('refills the pool to its size after misses (a child booting for a miss is not the pool\'s)', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': hello('a'), 'b.mjs': hello('b'), 'c.mjs': hello('c') }), { warmPool: 1 });
    const answers = await Promise.all(['a', 'b', 'c'].map((w) => daemon.fetchText(w)));
    expect(answers.map((a) => a.text)).toEqual(['a', 'b', 'c']);
    expect(daemon.pool.stats().misses).toBeGreaterThan(0);
    const deadline = Date.now() + 10_000;
    while (daemon.pool.stats().warm < 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(daemon.pool.stats()).toMatchObject({ warm: 1, booting: 0 });
  });

  it('evicts an idle instance after idleTimeout, and the next request starts another', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': hello('a') }), { idleTimeout: 300 });
    expect((await daemon.fetchText('a')).status).toBe(200);
    const [instance] = daemon.broker.instances();
    const outcome = await instance!.exited;
    expect(outcome).toMatchObject({ exitCode: 0 });
    expect((await listing(daemon)).workers).toEqual([expect.objectContaining({ name: 'a', instances: 0 })]);
    expect((await daemon.fetchText('a')).status).toBe(200);
    expect(daemon.broker.instances()[0]!.pid).not.toBe(instance!.pid);
    expect((await listing(daemon)).workers[0]).toMatchObject({ coldStarts: 2 });
  });

  it('starts children with a minimal, explicit environment: nothing inherited from the daemon', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': hello('a') }));
    process.env.EDGEPROC_TEST_SECRET = 'must-not-leak';
    try {
      expect((await daemon.fetchText('a')).status).toBe(200);
      await daemon.pool.filled();
      for (const instance of daemon.pool.live) {
        // Only what spawn.ts sets on purpose (TZ=UTC, as on Workers; one malloc arena).
        expect(readFileSync(`/proc/${instance.pid}/environ`, 'utf8')).toBe('TZ=UTC\0MALLOC_ARENA_MAX=1\0');
      }
    } finally {
      delete process.env.EDGEPROC_TEST_SECRET;
    }
  });

  it('gives each worker its own child for life', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': hello('a'), 'b.mjs': hello('b') }), { warmPool: 2 });
    for (let i = 0; i < 3; i++) {
      expect((await daemon.fetchText('a')).text).toBe('a');
      expect((await daemon.fetchText('b')).text).toBe('b');
    }
    const instances = daemon.broker.instances();
    expect(instances.map((i) => i.worker).sort()).toEqual(['a', 'b']);
    expect(new Set(instances.map((i) => i.pid)).size).toBe(2);
    // Warm children hold no tenant: none of them is specialised.
    await daemon.pool.filled();
    const warm = [...daemon.pool.live].filter((i) => !instances.includes(i));
    for (const instance of warm) expect(instance).toMatchObject({ state: 'warm', worker: null });
  });

  it('replaces a warm child that dies, and an instance that dies between requests, without an error', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': hello('a') }), { warmPool: 1 });
    const [warm] = [...daemon.pool.live];
    process.kill(warm!.pid!, 'SIGKILL');
    await warm!.exited;
    await daemon.pool.filled();
    expect(daemon.pool.stats()).toMatchObject({ warm: 1, spawned: 2, bootFailures: 0 });

    expect(await daemon.fetchText('a')).toMatchObject({ status: 200, text: 'a' });
    const [instance] = daemon.broker.instances();
    process.kill(instance!.pid!, 'SIGKILL');
    await instance!.exited;
    expect(daemon.broker.instances()).toEqual([]);
    expect(await daemon.fetchText('a')).toMatchObject({ status: 200, text: 'a' });
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'instance exited', worker: 'a', signal: 'SIGKILL' }));
  });
  // The refill waits for a handed-out child's first request (so a boot does not take CPU from
  // it), but never leaves the pool short behind a long request.
  it('refills behind a cold request that is still running: at once when the pool is empty, within a bound when a warm child is left', async () => {
    const slow = (name: string) => `export default { async fetch() { await new Promise((r) => setTimeout(r, 3000)); return new Response('${name}'); } };`;
    for (const warmPool of [1, 2]) {
      const daemon = await startTestDaemon(writeScripts({ 'slow.mjs': slow('slow') }), { warmPool });
      await daemon.pool.filled();
      let answered = false;
      const pending = daemon.fetchText('slow').then((result) => ((answered = true), result));
      const deadline = Date.now() + 2500;
      while (!(daemon.pool.stats().spawned === warmPool + 1 && daemon.pool.stats().warm === warmPool) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(daemon.pool.stats()).toMatchObject({ warm: warmPool, hits: 1, misses: 0, spawned: warmPool + 1 });
      expect(answered).toBe(false);
      expect(await pending).toMatchObject({ status: 200, text: 'slow' });
    }
  });
});

/**
 * The daemon reads a busy child's CPU and memory through /proc descriptors. A warm child's
 * are opened as it joins the pool, so a cold start does not wait for them, and they must not
 * outlive the child: a pool whose children die would otherwise leak a handful per death.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { heldOn } from '../helpers/proc.js';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

async function until<T>(what: string, read: () => T, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms (last: ${JSON.stringify(value)})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the /proc descriptors of a warm child', () => {
  it('are open before its first request, serve its cold start, and are closed once it dies', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': `export default { fetch() { return new Response('a'); } };` }), { warmPool: 1 });
    const [first] = daemon.pool.stats().warmPids;
    // schedstat of the main thread, stat and statm (the threads a child boots with are the
    // runtime's and not read; a thread started later, libuv's pool, adds its schedstat).
    expect(heldOn(first!)).toBeGreaterThanOrEqual(3);

    // A warm child that dies in the pool leaves nothing open behind it.
    process.kill(first!, 'SIGKILL');
    const [second] = await until('the pool did not replace its killed child', () => daemon.pool.stats().warmPids, (pids) => pids.length === 1 && pids[0] !== first);
    await until(`descriptors on the killed child ${first} stayed open`, () => heldOn(first!), (held) => held === 0);
    expect(heldOn(second!)).toBeGreaterThanOrEqual(3);

    // The replacement serves the cold start, read through the descriptors it already had.
    expect(await daemon.fetchText('a')).toMatchObject({ status: 200, text: 'a' });
    expect(daemon.broker.instances().map((i) => i.pid)).toEqual([second]);
    const line = daemon.logs.find((l) => l.msg === 'request');
    expect(line).toMatchObject({ worker: 'a', status: 200 });

    // And a specialised child that dies (a worker's instance) leaves nothing open either.
    process.kill(second!, 'SIGKILL');
    await until(`descriptors on the killed instance ${second} stayed open`, () => heldOn(second!), (held) => held === 0);
  });
});

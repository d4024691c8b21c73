import { readFileSync, readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, isAlive, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

/** The fork server this (test) process started: a direct child running forkserver.js. */
function forkServerPid(): number | undefined {
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'latin1').trim().split(/\s+/).filter(Boolean);
    } catch {
      continue;
    }
    for (const child of children) {
      try {
        if (readFileSync(`/proc/${child}/cmdline`, 'latin1').includes('forkserver.js')) return Number(child);
      } catch {
        // gone
      }
    }
  }
  return undefined;
}

describe('the fork server', () => {
  it('is replaced if it dies: its orphaned children are killed, the pool refills through a new one, requests are served', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': `export default { fetch() { return new Response('a'); } };` }), { warmPool: 2 });
    expect(await daemon.fetchText('a')).toMatchObject({ status: 200, text: 'a' });
    await daemon.pool.filled();
    const server = forkServerPid();
    expect(server).toBeDefined();
    const before = [...daemon.pool.live].map((i) => i.pid!);
    process.kill(server!, 'SIGKILL');
    // Every child it started is ended (they would be orphans otherwise)...
    const deadline = Date.now() + 10_000;
    while (before.some(isAlive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(before.filter(isAlive)).toEqual([]);
    // ...and the next request is served by a child of a new fork server.
    expect(await daemon.fetchText('a')).toMatchObject({ status: 200, text: 'a' });
    await daemon.pool.filled();
    const replacement = forkServerPid();
    expect(replacement).toBeDefined();
    expect(replacement).not.toBe(server);
  });
});

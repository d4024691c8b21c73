/**
 * The priority a child boots at (src/pool/priority.ts): a child a request waits for boots at
 * the tenants' priority, unless that request is a worker's that keeps breaching its limits,
 * whose boots yield to everyone else's work. Read from /proc as the kernel holds it.
 */
import { readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKGROUND_NICE, CAN_RAISE, CHILD_NICE } from '../../src/pool/priority.js';
import { spawnChild, stopForkServerIfIdle } from '../../src/pool/spawn.js';
import { niceOf, readableProbe } from '../helpers/proc.js';

let dir: string;
let entry: string;

beforeAll(() => {
  ({ dir, entry } = readableProbe());
});

afterAll(async () => {
  await stopForkServerIfIdle();
  rmSync(dir, { recursive: true, force: true });
});

/** The nice value of a child's main thread, once it runs node (before that it is prlimit or unshare). */
async function bootNiceOf(background: boolean): Promise<number> {
  const child = spawnChild({ warmUp: false, heapMb: 64, entry, background });
  const channel = await child.channel;
  const pid = child.pid!;
  try {
    for (let i = 0; readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'node'; i++) {
      if (i > 1000) throw new Error('the child never ran node');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return niceOf(pid);
  } finally {
    channel.destroy();
    await child.exited;
  }
}

describe('boot priority of a child a request waits for', () => {
  it("is the tenants' priority for an ordinary pool miss", async () => {
    expect(await bootNiceOf(false)).toBe(CHILD_NICE);
  });

  it('is background priority for a worker that keeps breaching its limits, where it can be raised again', async () => {
    expect(await bootNiceOf(true)).toBe(CAN_RAISE ? BACKGROUND_NICE : CHILD_NICE);
  });
});

/**
 * The priority a child boots at (src/pool/priority.ts): a child a request waits for boots at
 * the tenants' priority, unless that request is a worker's that keeps breaching its limits,
 * whose boots yield to everyone else's work. Read from /proc as the kernel holds it.
 */
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKGROUND_NICE, CAN_RAISE, CHILD_NICE } from '../../src/pool/priority.js';
import { spawnChild, stopForkServerIfIdle } from '../../src/pool/spawn.js';

let dir: string;
let entry: string;

beforeAll(() => {
  // Readable by a child of another uid, as in sandbox.test.ts.
  dir = mkdtempSync(join(tmpdir(), 'edgeproc-priority-'));
  chmodSync(dir, 0o755);
  entry = join(dir, 'escape-probe.cjs');
  copyFileSync(fileURLToPath(new URL('../fixtures/escape-probe.cjs', import.meta.url)), entry);
  chmodSync(entry, 0o444);
});

afterAll(async () => {
  await stopForkServerIfIdle();
  rmSync(dir, { recursive: true, force: true });
});

function stat(pid: number): string[] {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
}

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
    // Field 19 of /proc/PID/stat; index 16 once the command is cut off.
    return Number(stat(pid)[16]);
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

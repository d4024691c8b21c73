/**
 * Attack: a script whose global scope never finishes (for (;;) {}): every
 * instance that loads it would be lost. The startup CPU limit stops it with
 * 503 naming the limit, and the failure is remembered so that the next
 * requests do not each burn a child on it; they get the same 503 naming the
 * limit (before, "failed to load: the instance was killed by SIGKILL" and 500).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, requestIdOf, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('an infinite loop at global scope', () => {
  it('is stopped by the startup CPU limit with 503', async () => {
    const daemon = await startHostileDaemon(['global-scope-loop'], { startupCpuMs: 300 });
    const res = await attack(daemon, 'global-scope-loop');
    expect(res.status).toBe(503);
    const used = Number(
      new RegExp(
        `^Worker "global-scope-loop" exceeded its startup CPU limit: its global scope used (\\d+) ms of CPU while loading; the limit is 300 ms \\(--startup-cpu-ms\\)\\.\\n\\nrequest id: ${requestIdOf(res)}\\n$`,
      ).exec(res.text)?.[1],
    );
    expect(used).toBeGreaterThanOrEqual(300);
    // Once the failure is recorded, the next request (within the 1 s back-off) is answered from it,
    // naming the limit, with the same 503, and costs no child. (On a machine so loaded that the
    // back-off has passed, it is loaded again, and stopped again the same way.)
    await expect.poll(() => daemon.logs.some((r) => r.msg === 'worker failed to load' && r.worker === 'global-scope-loop')).toBe(true);
    const spawned = daemon.pool.stats().spawned;
    const again = await attack(daemon, 'global-scope-loop');
    expect(again.status).toBe(503);
    const remembered = `Worker "global-scope-loop" failed to load: its global scope used ${used} ms of CPU, past the startup CPU limit of 300 ms (--startup-cpu-ms)\n\nrequest id: ${requestIdOf(again)}\n`;
    if (again.text !== remembered) {
      expect(again.text).toMatch(/^Worker "global-scope-loop" exceeded its startup CPU limit: its global scope used \d+ ms of CPU while loading; the limit is 300 ms/);
    } else {
      expect(daemon.pool.stats().spawned - spawned).toBe(0);
    }
    await expectDaemonServes(daemon);
  });
});

/**
 * Attack: a script whose global scope never finishes (for (;;) {}): every
 * instance that loads it would be lost. The startup CPU limit stops it with
 * 503 naming the limit, and the failure is remembered so that the next
 * requests do not each burn a child on it.
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
    const spawned = daemon.pool.stats().spawned;
    const again = await daemon.fetchText('global-scope-loop');
    expect(again.status).toBeGreaterThanOrEqual(500);
    expect(again.text).toMatch(/^Worker "global-scope-loop" failed to load: /);
    // Within the back-off, a failing worker costs no child.
    expect(daemon.pool.stats().spawned - spawned).toBeLessThanOrEqual(1);
    await expectDaemonServes(daemon);
  });
});

/**
 * Attack: a script whose global scope allocates until the instance dies,
 * before any request could be charged for it. The memory limit stops it with
 * 503 naming the limit; nothing else is disturbed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, requestIdOf, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a memory bomb at global scope', () => {
  it('is stopped by the memory limit with 503', async () => {
    const daemon = await startHostileDaemon(['global-scope-memory-bomb'], { startupCpuMs: 10_000 });
    const res = await attack(daemon, 'global-scope-memory-bomb');
    expect(res.status).toBe(503);
    expect(res.text).toMatch(
      new RegExp(
        `^Worker "global-scope-memory-bomb" exceeded its memory limit: (the instance used \\d+ MiB|its V8 heap ran out); the limit is 64 MiB per instance \\(--memory-mb\\)\\.\\n\\nrequest id: ${requestIdOf(res)}\\n$`,
      ),
    );
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'limit exceeded', worker: 'global-scope-memory-bomb', limit: 'memoryMb', max: 64 }));
    await expectDaemonServes(daemon);
  });
});

/**
 * Attack: make structuredClone allocate on the tenant's behalf, copy after
 * copy, kept alive. Clones are the instance's memory like any other: the
 * memory limit stops it with 503.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, requestIdOf, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a structuredClone bomb', () => {
  it('is stopped by the memory limit with 503', async () => {
    const daemon = await startHostileDaemon(['structured-clone-bomb'], { cpuMs: 10_000, wallMs: 20_000, drainTimeout: 20_000 });
    const res = await attack(daemon, 'structured-clone-bomb', '/clone');
    expect(res.status).toBe(503);
    expect(res.text).toMatch(
      new RegExp(
        `^Worker "structured-clone-bomb" exceeded its memory limit: (the instance used \\d+ MiB|its V8 heap ran out); the limit is 64 MiB per instance \\(--memory-mb\\)\\.\\n\\nrequest id: ${requestIdOf(res)}\\n$`,
      ),
    );
    expect(await daemon.fetchText('structured-clone-bomb', '/')).toMatchObject({ status: 200, text: 'ok' });
    await expectDaemonServes(daemon);
  });
});

/**
 * Attack: flood the timer list. A million pending timers grow the instance
 * until the memory limit stops it; ten thousand 1 ms intervals burn the
 * request's CPU until the CPU limit stops it. Either way: 503 naming the
 * limit, a fresh instance for the next request, the neighbour untouched.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectCpuLimitResponse, expectDaemonServes, instancePid, requestIdOf, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a timer flood', () => {
  it('of a million pending timers is stopped by the memory limit', async () => {
    // CPU and drain generous, so that memory is what ends it (passing ¾ of the limit first recycles the
    // instance, and a drain that timed out would end the request with 502).
    const daemon = await startHostileDaemon(['timer-flood'], { cpuMs: 10_000, wallMs: 20_000, drainTimeout: 20_000 });
    const res = await attack(daemon, 'timer-flood', '/pending?n=1000000');
    expect(res.status).toBe(503);
    expect(res.text).toMatch(
      new RegExp(
        `^Worker "timer-flood" exceeded its memory limit: (the instance used \\d+ MiB|its V8 heap ran out); the limit is 64 MiB per instance \\(--memory-mb\\)\\.\\n\\nrequest id: ${requestIdOf(res)}\\n$`,
      ),
    );
    expect(await daemon.fetchText('timer-flood', '/')).toMatchObject({ status: 200, text: 'ok' });
    await expectDaemonServes(daemon);
  });

  it('of ten thousand 1 ms intervals is stopped by the CPU limit', async () => {
    const daemon = await startHostileDaemon(['timer-flood']);
    expect(await daemon.fetchText('timer-flood', '/')).toMatchObject({ status: 200, text: 'ok' });
    const pid = instancePid(daemon, 'timer-flood');
    const res = await attack(daemon, 'timer-flood', '/intervals?n=10000');
    expectCpuLimitResponse(res, 'timer-flood');
    expect(await daemon.fetchText('timer-flood', '/')).toMatchObject({ status: 200, text: 'ok' });
    expect(instancePid(daemon, 'timer-flood')).not.toBe(pid);
    await expectDaemonServes(daemon);
  });
});

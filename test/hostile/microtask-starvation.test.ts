/**
 * Attack: a microtask that queues itself forever. The event loop never gets
 * another turn, so the child cannot even read a frame: only the watchdog, from
 * outside, can stop it, at the CPU limit. 503, a fresh instance, and the
 * neighbour served throughout.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectCpuLimitResponse, expectDaemonServes, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('microtask starvation', () => {
  it('is stopped by the CPU limit with 503', async () => {
    const daemon = await startHostileDaemon(['microtask-starvation']);
    expect(await daemon.fetchText('microtask-starvation', '/')).toMatchObject({ status: 200, text: 'ok' });
    const pid = instancePid(daemon, 'microtask-starvation');
    const res = await attack(daemon, 'microtask-starvation', '/spin');
    expectCpuLimitResponse(res, 'microtask-starvation');
    expect(await daemon.fetchText('microtask-starvation', '/')).toMatchObject({ status: 200, text: 'ok' });
    expect(instancePid(daemon, 'microtask-starvation')).not.toBe(pid);
    await expectDaemonServes(daemon);
  });
});

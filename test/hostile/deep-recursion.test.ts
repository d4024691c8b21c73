/**
 * Attack: recurse without end, catching the RangeError or not, and hand
 * JSON.stringify a structure a million levels deep. V8 stops each with
 * "Maximum call stack size exceeded"; the runner, whose own frames are below
 * the tenant's, still answers, and the instance serves on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

/** Not a CPU test: a million-level JSON.stringify took over the battery's 200 ms of CPU on a slow machine. */
const ROOMY_CPU = { cpuMs: 5000 };

describe('deep recursion', () => {
  it('is a RangeError the tenant can catch, or a 500 when it does not', async () => {
    const daemon = await startHostileDaemon(['deep-recursion'], ROOMY_CPU);
    expect(await attack(daemon, 'deep-recursion', '/caught')).toMatchObject({ status: 200, text: 'caught RangeError: Maximum call stack size exceeded' });
    const pid = instancePid(daemon, 'deep-recursion');
    expectErrorResponse(await attack(daemon, 'deep-recursion', '/uncaught'), 500, 'Worker threw exception: RangeError: Maximum call stack size exceeded');
    expectErrorResponse(await attack(daemon, 'deep-recursion', '/json'), 500, 'Worker threw exception: RangeError: Maximum call stack size exceeded');
    expect(await daemon.fetchText('deep-recursion', '/')).toMatchObject({ status: 200, text: 'ok' });
    expect(instancePid(daemon, 'deep-recursion')).toBe(pid);
    await expectDaemonServes(daemon);
  });
});

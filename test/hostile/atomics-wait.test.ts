/**
 * Attack: block the instance's event loop in Atomics.wait on a value nobody
 * will change. It burns no CPU, so the CPU limit never fires: the wall-time
 * limit does, with 504, and the instance (which cannot answer a drain) is
 * replaced: the next request gets a fresh one, and the blocked child is killed
 * when the drain times out.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, isAlive } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('Atomics.wait forever', () => {
  it('ends in a 504 at the wall-time limit, and the instance is replaced', async () => {
    const daemon = await startHostileDaemon(['atomics-wait'], { wallMs: 1000, drainTimeout: 500 });
    expect(await daemon.fetchText('atomics-wait', '/')).toMatchObject({ status: 200, text: 'ok' });
    const blocked = instancePid(daemon, 'atomics-wait')!;
    const res = await attack(daemon, 'atomics-wait', '/block');
    expectErrorResponse(res, 504, 'Worker "atomics-wait" did not respond within 1000 ms (--wall-ms).');
    // No CPU was burnt: no CPU breach, and the request's accounting line says so (a sanity bound).
    expect(daemon.logs.filter((r) => r.msg === 'limit exceeded' && r.worker === 'atomics-wait')).toEqual([]);
    const line = daemon.logs.find((r) => r.msg === 'request' && r.requestId === res.headers['edgeproc-request-id']);
    expect(line?.cpuMs as number).toBeLessThan(100);
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'recycling instance', worker: 'atomics-wait' }));
    expect(await daemon.fetchText('atomics-wait', '/')).toMatchObject({ status: 200, text: 'ok' });
    expect(instancePid(daemon, 'atomics-wait')).not.toBe(blocked);
    await expect.poll(() => isAlive(blocked), { timeout: 5000 }).toBe(false);
    await expectDaemonServes(daemon);
  });
});

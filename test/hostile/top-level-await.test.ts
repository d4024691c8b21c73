/**
 * Attack: a module whose top-level await can never settle. The child would stay loading
 * and every request wait for --wall-ms; as on Workers, where such a script fails to start,
 * the runner sees that nothing is left that could settle it and fails the load. A top-level
 * await on a timer is slow, not stuck, and loads.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a top-level await that never settles', () => {
  it('fails the load with a 500 saying so, long before the wall limit, and the next request gets the same', async () => {
    // A wall limit of 30 s: the answer must come from the load failing, not from the wall limit.
    const daemon = await startHostileDaemon(['tla-never-settles', 'tla-timer'], { wallMs: 30_000 });
    const reason =
      'Worker "tla-never-settles" failed to load: its top-level await never settles: it waits, and no timer, fetch or other work is left that could settle it. A script must finish loading on its own; do asynchronous set-up in the handler';
    const started = performance.now();
    expectErrorResponse(await attack(daemon, 'tla-never-settles'), 500, reason);
    // Two quiet checks 100 ms apart; generous for a loaded machine, far under the 30 s.
    expect(performance.now() - started).toBeLessThan(10_000);
    expectErrorResponse(await attack(daemon, 'tla-never-settles'), 500, reason);
    expect(daemon.logs.some((r) => r.msg === 'worker failed to load' && r.worker === 'tla-never-settles')).toBe(true);

    expect(await attack(daemon, 'tla-timer')).toMatchObject({ status: 200, text: 'loaded after a timer' });
    await expectDaemonServes(daemon);
  });
});

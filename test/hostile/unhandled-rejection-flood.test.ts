/**
 * Attack: flood the log without console: twenty thousand unhandled rejections
 * and a hundred exceptions thrown from timers, each of which the runner logs.
 * They share the instance's log budget with console: the burst is logged,
 * the rest dropped and counted in one notice, and the instance serves on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('an unhandled rejection flood', () => {
  it('is logged up to the budget, then counted in one notice', async () => {
    // Making 20,000 rejections is ~100 ms of CPU, more on a loaded CI machine with GC threads
    // counted: this is about the log budget, not the CPU or wall limits, so they are out of the
    // way (a full run beside a spinning process once took past the hostile set's 2 s of wall).
    const daemon = await startHostileDaemon(['unhandled-rejection-flood'], { cpuMs: 5000, wallMs: 30_000 });
    const started = Date.now();
    expect(await attack(daemon, 'unhandled-rejection-flood', '/?n=20000')).toMatchObject({ status: 200, text: 'rejected 20000' });
    const pid = instancePid(daemon, 'unhandled-rejection-flood');
    const tenant = () => daemon.logs.filter((r) => r.source === 'tenant' && r.worker === 'unhandled-rejection-flood').map((r) => r.msg);
    await expect.poll(() => tenant().filter((msg) => msg.startsWith('console output dropped: '))).toHaveLength(1);
    const seconds = (Date.now() - started) / 1000;
    const logged = tenant().filter((msg) => /^(Unhandled rejection: Error: rejection|Uncaught Error: thrown from timer) \d+$/.test(msg));
    expect(logged[0]).toBe('Unhandled rejection: Error: rejection 0');
    expect(logged.length).toBeGreaterThanOrEqual(1000);
    expect(logged.length).toBeLessThanOrEqual(1000 + Math.ceil(200 * (seconds + 1)));
    const notice = tenant().find((msg) => msg.startsWith('console output dropped: '))!;
    expect(Number(/^console output dropped: (\d+) lines/.exec(notice)![1])).toBe(20_100 - logged.length);
    expect(await daemon.fetchText('unhandled-rejection-flood', '/?n=0')).toMatchObject({ status: 200, text: 'rejected 0' });
    expect(instancePid(daemon, 'unhandled-rejection-flood')).toBe(pid);
    await expectDaemonServes(daemon);
  });
});

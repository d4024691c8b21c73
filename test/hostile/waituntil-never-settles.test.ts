/**
 * Attack: answer at once, then hold the instance with waitUntil work that
 * never settles (idle, or with a timer keeping it looking busy). The response
 * is not delayed; after --wait-until-ms the work is abandoned and logged, the
 * instance is free again and serves on, and the daemon still drains cleanly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

const ABANDONED = 'waitUntil work was still running 500 ms after the response; it was abandoned (limit waitUntilMs)';

describe('waitUntil work that never settles', () => {
  it('does not delay the response, and is abandoned after --wait-until-ms', async () => {
    const daemon = await startHostileDaemon(['waituntil-never-settles']);
    for (const path of ['/idle', '/ticking']) {
      const res = await attack(daemon, 'waituntil-never-settles', path);
      expect(res).toMatchObject({ status: 200, text: `responded ${path}` });
      // The accounting line comes once the child settles the request, after --wait-until-ms here.
      await expect.poll(() => daemon.logs.filter((r) => r.msg === 'request' && r.worker === 'waituntil-never-settles').length).toBe(path === '/idle' ? 1 : 2);
      const id = daemon.logs.findLast((r) => r.msg === 'request' && r.worker === 'waituntil-never-settles')!.requestId;
      await expect.poll(() => daemon.logs.filter((r) => r.source === 'tenant' && r.requestId === id).map((r) => [r.level, r.msg])).toEqual([['warn', ABANDONED]]);
      await expect.poll(() => daemon.broker.stats().find((w) => w.name === 'waituntil-never-settles')?.inflight).toBe(0);
    }
    const pid = instancePid(daemon, 'waituntil-never-settles');
    expect(await daemon.fetchText('waituntil-never-settles', '/again')).toMatchObject({ status: 200, text: 'responded /again' });
    expect(instancePid(daemon, 'waituntil-never-settles')).toBe(pid);
    await expectDaemonServes(daemon);
  });
});

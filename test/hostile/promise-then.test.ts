/**
 * Attack: replace Promise.prototype.then, which the tenant shares with the
 * runner and with Node in the child's realm. A recording wrapper sees only
 * promises, never what they carry unless it calls the original; one that
 * throws breaks only the tenant's own calls: the runner's request path awaits
 * and never calls `then` itself. (Where a runner path does, the instance
 * exits 70 and its request gets 502: the tenant's own instance, and nobody
 * else's.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('Promise.prototype.then replaced', () => {
  it('by a recorder: it is called on promises only, and the requests are served', async () => {
    const daemon = await startHostileDaemon(['promise-then']);
    expect(await attack(daemon, 'promise-then', '/record')).toMatchObject({ status: 200, text: 'recorded' });
    const receivers = await daemon.fetchText('promise-then', '/receivers');
    expect(JSON.parse(receivers.text)).toEqual(['Promise']);
    await expectDaemonServes(daemon);
  });

  it('by one that throws: the runner does not depend on it, and the same instance goes on serving', async () => {
    const daemon = await startHostileDaemon(['promise-then']);
    expect(await attack(daemon, 'promise-then', '/break')).toMatchObject({ status: 200, text: 'broken' });
    const broken = instancePid(daemon, 'promise-then');
    // The runner's request path awaits (the language's own reactions) and never looks up
    // `then` on a promise, so the tenant broke only its own code that calls it.
    expect(await daemon.fetchText('promise-then', '/')).toMatchObject({ status: 200, text: 'ok' });
    expect(await daemon.fetchText('promise-then', '/')).toMatchObject({ status: 200, text: 'ok' });
    expect(instancePid(daemon, 'promise-then')).toBe(broken);
    expect(daemon.logs).not.toContainEqual(expect.objectContaining({ source: 'child-stderr', worker: 'promise-then' }));
    await expectDaemonServes(daemon);
  });
});

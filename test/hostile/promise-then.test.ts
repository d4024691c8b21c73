/**
 * Attack: replace Promise.prototype.then, which the tenant shares with the
 * runner and with Node in the child's realm. A recording wrapper sees only
 * promises, never what they carry unless it calls the original; one that
 * throws breaks the runner's own dispatch: the instance exits 70, the request
 * gets 502 and the daemon's log says why, the next request gets a fresh
 * instance. Either way it is the tenant's own instance, and nobody else's.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('Promise.prototype.then replaced', () => {
  it('by a recorder: it is called on promises only, and the requests are served', async () => {
    const daemon = await startHostileDaemon(['promise-then']);
    expect(await attack(daemon, 'promise-then', '/record')).toMatchObject({ status: 200, text: 'recorded' });
    const receivers = await daemon.fetchText('promise-then', '/receivers');
    expect(JSON.parse(receivers.text)).toEqual(['Promise']);
    await expectDaemonServes(daemon);
  });

  it('by one that throws: its own instance ends with 502, the log says why, and a fresh instance serves the next request', async () => {
    const daemon = await startHostileDaemon(['promise-then']);
    expect(await attack(daemon, 'promise-then', '/break')).toMatchObject({ status: 200, text: 'broken' });
    const broken = instancePid(daemon, 'promise-then');
    expectErrorResponse(
      await attack(daemon, 'promise-then', '/'),
      502,
      "The worker's instance stopped while handling this request (the instance exited with code 70). Retry; a new instance will serve it.",
    );
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({
        source: 'child-stderr',
        worker: 'promise-then',
        msg: 'edgeproc runner: handling a frame from the daemon failed: Error: then is broken',
      }),
    );
    expect(await daemon.fetchText('promise-then', '/')).toMatchObject({ status: 200, text: 'ok' });
    expect(instancePid(daemon, 'promise-then')).not.toBe(broken);
    await expectDaemonServes(daemon);
  });
});

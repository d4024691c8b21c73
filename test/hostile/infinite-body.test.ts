/**
 * Attack: a response body that never ends, to a client that reads a few MiB
 * and leaves. Flow control keeps the child from running ahead of the client;
 * when the client goes, the tenant's stream is cancelled with the reason, and
 * the instance serves on.
 */
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { expectDaemonServes, instancePid, neighbourDuring, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('an endless response body', () => {
  it('streams until the client leaves, then is cancelled with the reason', async () => {
    const daemon = await startHostileDaemon(['infinite-body']);
    expect(await daemon.fetchText('infinite-body', '/cancelled')).toMatchObject({ status: 200, text: 'not cancelled' });
    const pid = instancePid(daemon, 'infinite-body');
    const reading = (async () => {
      const res = await request(`${daemon.url}/forever`, { headers: { host: `infinite-body.localhost:${daemon.port}` } });
      let bytes = 0;
      for await (const chunk of res.body) {
        bytes += (chunk as Buffer).byteLength;
        if (bytes >= 4 * 1024 * 1024) break; // leaving the loop destroys the body: the client disconnects
      }
      return { status: res.statusCode, atLeast4MiB: bytes >= 4 * 1024 * 1024 };
    })();
    for (const res of await neighbourDuring(daemon, reading)) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    expect(await reading).toEqual({ status: 200, atLeast4MiB: true });
    await expect.poll(async () => (await daemon.fetchText('infinite-body', '/cancelled')).text).toBe('cancelled: the client disconnected');
    expect(instancePid(daemon, 'infinite-body')).toBe(pid);
    await expectDaemonServes(daemon);
  });
});

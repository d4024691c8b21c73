/**
 * Attack: a response body whose pull() throws, at once or after two chunks.
 * At once: the runner starts the first read before it sends the head, and a
 * body that fails within that turn is answered as a handler error, a clean
 * 500 (before, the head and the failure reached the daemon together, and the
 * client got its connection closed with no status at all). Later: the head is
 * out, so the only honest signal left is to cut the response; the client sees
 * an incomplete body, never a clean end and never a hang, and the log names
 * the error. The instance serves on.
 */
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, type TestDaemon } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, instancePid, neighbourDuring, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

/** Status and whatever body arrived before the response was cut (or `complete`). */
async function readCut(daemon: TestDaemon, path: string): Promise<{ status: number; body: string; cut: boolean }> {
  const res = await request(`${daemon.url}${path}`, { headers: { host: `body-pull-throws.localhost:${daemon.port}` } });
  let body = '';
  try {
    for await (const chunk of res.body) body += chunk;
    return { status: res.statusCode, body, cut: false };
  } catch {
    return { status: res.statusCode, body, cut: true };
  }
}

describe('a response body whose pull() throws', () => {
  it('at once gets a clean 500; after two chunks is cut after its head, with the error in the log', async () => {
    const daemon = await startHostileDaemon(['body-pull-throws']);
    expect(await daemon.fetchText('body-pull-throws', '/')).toMatchObject({ status: 200, text: 'ok' });
    const pid = instancePid(daemon, 'body-pull-throws');

    expectErrorResponse(await attack(daemon, 'body-pull-throws', '/first'), 500, 'Worker threw exception: Error: pull failed at once');

    const cut = readCut(daemon, '/later');
    for (const res of await neighbourDuring(daemon, cut)) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    expect(await cut).toEqual({ status: 200, body: 'chunk 1\nchunk 2\n', cut: true });
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({ msg: 'response body failed mid-stream', worker: 'body-pull-throws', reason: 'pull failed after two chunks' }),
    );
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({ source: 'tenant', worker: 'body-pull-throws', msg: 'response body failed after the headers were sent: Error: pull failed after two chunks' }),
    );

    expect(await daemon.fetchText('body-pull-throws', '/')).toMatchObject({ status: 200, text: 'ok' });
    expect(instancePid(daemon, 'body-pull-throws')).toBe(pid);
    await expectDaemonServes(daemon);
  });
});

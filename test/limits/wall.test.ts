import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { hostileTarget, instancePid, neighbourDuring, requestIdOf, warmNeighbour } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('wall time per request (--wall-ms)', () => {
  it('answers 504 when the handler never responds, and the worker keeps serving', async () => {
    const daemon = await startTestDaemon(hostileTarget('never-responds'), { wallMs: 500, warmPool: 2, drainTimeout: 1000 });
    await warmNeighbour(daemon);
    const started = Date.now();
    const waiting = daemon.fetchText('never-responds', '/');
    for (const res of await neighbourDuring(daemon, waiting)) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    const res = await waiting;
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.status).toBe(504);
    expect(res.text).toBe(`Worker "never-responds" did not respond within 500 ms (--wall-ms).\n\nrequest id: ${requestIdOf(res)}\n`);
    expect(await daemon.fetchText('never-responds', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    expect(daemon.broker.stats().find((w) => w.name === 'neighbour')).toMatchObject({ errors: 0 });
    // drainTimeout 1000: the abandoned handler stays in flight in its child, so closing waits the drain out.
  });
});

describe('the instance of a request that got 504', () => {
  it('is replaced: new requests go to a fresh instance, the stuck child is killed after the drain timeout', async () => {
    const daemon = await startTestDaemon(hostileTarget('never-responds'), { wallMs: 500, warmPool: 2, drainTimeout: 1000 });
    expect(await daemon.fetchText('never-responds', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    const [stuck] = daemon.broker.instances().filter((i) => i.worker === 'never-responds');
    expect((await daemon.fetchText('never-responds', '/')).status).toBe(504);
    // Out of service at once: the next request does not queue behind the abandoned handler.
    expect(daemon.broker.instances()).not.toContain(stuck);
    expect(await daemon.fetchText('never-responds', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    expect(daemon.broker.instances().filter((i) => i.worker === 'never-responds')).toHaveLength(1);
    // Its handler never settles, so the drain ends in a kill after drainTimeout (1 s).
    const outcome = await stuck!.exited;
    expect(outcome.killed).toBe(true);
    expect(daemon.logs.some((l) => l.msg === 'recycling instance' && l.instance === stuck!.id && /did not respond within 500 ms/.test(String(l.reason)))).toBe(true);
  });
});

describe('a request whose client leaves before the response head', () => {
  it('does not count against the wall limit: its instance is not recycled wallMs later', async () => {
    // Found under wrk: the connections a run closes with requests in flight recycled the
    // worker's healthy instance 60 s later, as if their handlers had hung.
    const dir = writeScripts({
      'slow.mjs': `export default {
        async fetch(request) {
          if (new URL(request.url).pathname === '/slow') await new Promise((resolve) => setTimeout(resolve, 300));
          return new Response('done');
        },
      };`,
    });
    const daemon = await startTestDaemon(dir, { wallMs: 800, warmPool: 1 });
    expect(await daemon.fetchText('slow', '/')).toMatchObject({ status: 200, text: 'done' });
    const pid = instancePid(daemon, 'slow');
    const leaving = new AbortController();
    const abandoned = request(`${daemon.url}/slow`, { headers: { host: `slow.localhost:${daemon.port}` }, signal: leaving.signal });
    setTimeout(() => leaving.abort(), 50);
    await expect(abandoned).rejects.toThrow();
    // Past the wall limit of the abandoned request, with room for a loaded machine.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(daemon.logs.filter((l) => l.msg === 'recycling instance')).toEqual([]);
    expect(daemon.logs.some((l) => l.msg === 'request' && l.status === 0)).toBe(true);
    expect(await daemon.fetchText('slow', '/')).toMatchObject({ status: 200, text: 'done' });
    expect(instancePid(daemon, 'slow')).toBe(pid);
  });
});

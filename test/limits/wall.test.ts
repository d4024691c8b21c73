import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon } from '../helpers/daemon.js';
import { hostileTarget, neighbourDuring, requestIdOf, warmNeighbour } from '../helpers/hostile.js';

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

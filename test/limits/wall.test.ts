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

// FAILS today (issue 3, item 5: "its instance is recycled if it stays busy"): after the 504 the
// handler stays in flight in its child for good. Nothing recycles the instance; it counts as busy
// for load balancing and idle eviction, and every drain (redeploy, shutdown) waits drainTimeoutMs.
it.todo('recycles the instance of a request that got 504 and stays busy');

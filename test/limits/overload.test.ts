import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon } from '../helpers/daemon.js';
import { hostileTarget, requestIdOf, warmNeighbour } from '../helpers/hostile.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

let origin: Origin | null = null;
afterEach(async () => {
  await closeDaemons();
  await origin?.close();
  origin = null;
});

describe('requests in flight per worker (--max-inflight)', () => {
  it('sheds the request past the bound at once with 503 and Retry-After; other workers are not counted', async () => {
    origin = await startOrigin();
    const daemon = await startTestDaemon(hostileTarget('gated'), { maxInflight: 2, warmPool: 2, drainTimeout: 1000, egressAllow: '127.0.0.1/32' });
    await warmNeighbour(daemon);
    const query = `origin=${encodeURIComponent(origin.url)}`;
    const held = [daemon.fetchText('gated', `/?gate=a&${query}`), daemon.fetchText('gated', `/?gate=b&${query}`)];
    await Promise.all([origin.arrived('a'), origin.arrived('b')]);

    const [shed, ...neighbours] = await Promise.all([
      daemon.fetchText('gated', '/'),
      // The bound is per worker: the neighbour's own two in flight are within it.
      ...Array.from({ length: 2 }, () => daemon.fetchText('neighbour')),
    ]);
    expect(shed.status).toBe(503);
    expect(shed.headers['retry-after']).toBe('1');
    expect(shed.text).toBe(
      `Worker "gated" is overloaded: 2 requests are already in flight (limit 2, --max-inflight). Retry shortly.\n\nrequest id: ${requestIdOf(shed)}\n`,
    );
    for (const res of neighbours) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({ msg: 'limit exceeded', worker: 'gated', limit: 'maxInflightPerWorker', value: 2, max: 2 }),
    );

    origin.release('a', 'A');
    origin.release('b', 'B');
    expect(await Promise.all(held)).toMatchObject([
      { status: 200, text: 'gate a: A' },
      { status: 200, text: 'gate b: B' },
    ]);
    expect(await daemon.fetchText('gated', '/')).toMatchObject({ status: 200, text: 'ok' });
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon } from '../helpers/daemon.js';
import { hostileTarget, neighbourDuring, warmNeighbour } from '../helpers/hostile.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

let origin: Origin | null = null;
afterEach(async () => {
  await closeDaemons();
  await origin?.close();
  origin = null;
});

describe('subrequests per request (--subrequests)', () => {
  it('rejects the fetch past the limit inside the tenant, which catches it; the next request starts afresh', async () => {
    let served = 0;
    origin = await startOrigin((_req, res) => {
      served++;
      res.end('hello');
    });
    const daemon = await startTestDaemon(hostileTarget('subrequests'), { subrequests: 3, warmPool: 2, egressAllow: '127.0.0.1/32' });
    await warmNeighbour(daemon);
    const query = `origin=${encodeURIComponent(origin.url)}`;

    const greedy = daemon.fetchText('subrequests', `/?n=5&${query}`);
    for (const res of await neighbourDuring(daemon, greedy)) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    expect(await greedy).toMatchObject({
      status: 200,
      text: 'made 3; then TypeError: Too many subrequests: this request already made 3; the limit is 3 per request (--subrequests).',
    });
    // The rejected fetch never reached the origin.
    expect(served).toBe(3);
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({ msg: 'limit exceeded', worker: 'subrequests', limit: 'subrequests', value: 4, max: 3 }),
    );
    // The count is per request.
    expect(await daemon.fetchText('subrequests', `/?n=3&${query}`)).toMatchObject({ status: 200, text: 'made 3' });
    expect(daemon.broker.stats().find((w) => w.name === 'neighbour')).toMatchObject({ errors: 0 });
  });
});

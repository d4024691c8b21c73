import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon } from '../helpers/daemon.js';
import { hostileTarget, neighbourDuring, requestIdOf, warmNeighbour } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('memory per instance (--memory-mb)', () => {
  it('answers a memory bomb with 503 naming the memory limit, and replaces the instance', async () => {
    const daemon = await startTestDaemon(hostileTarget('memory-bomb'), { cpuMs: 10_000, memoryMb: 64, warmPool: 2 });
    await warmNeighbour(daemon);
    const bomb = daemon.fetchText('memory-bomb', '/');
    const neighbours = await neighbourDuring(daemon, bomb);
    for (const res of neighbours) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    const res = await bomb;
    expect(res.status).toBe(503);
    const id = requestIdOf(res);
    // Whichever comes first: the RSS watchdog, or V8 running out of heap.
    expect(res.text).toMatch(
      new RegExp(
        `^Worker "memory-bomb" exceeded its memory limit: (the instance used \\d+ MiB|its V8 heap ran out); the limit is 64 MiB per instance \\(--memory-mb\\)\\.\\n\\nrequest id: ${id}\\n$`,
      ),
    );
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({ msg: 'limit exceeded', worker: 'memory-bomb', limit: 'memoryMb', max: 64 }),
    );
    expect(await daemon.fetchText('memory-bomb', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    expect(daemon.broker.stats().find((w) => w.name === 'neighbour')).toMatchObject({ errors: 0 });
  });
});

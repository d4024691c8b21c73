import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon } from '../helpers/daemon.js';
import { hostileTarget, neighbourDuring, requestIdOf, warmNeighbour } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('CPU time of the global scope at load (--startup-cpu-ms)', () => {
  it('stops a script that burns three seconds while loading with 503 naming the startup limit', async () => {
    const daemon = await startTestDaemon(hostileTarget('startup-burn'), { startupCpuMs: 100, warmPool: 2 });
    await warmNeighbour(daemon);
    const started = Date.now();
    const loading = daemon.fetchText('startup-burn', '/');
    for (const res of await neighbourDuring(daemon, loading)) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    const res = await loading;
    // Stopped, not finished: its burn would take 3 s (generous, for a loaded machine at 100 ms of CPU).
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(res.status).toBe(503);
    const match = res.text.match(
      new RegExp(
        `^Worker "startup-burn" exceeded its startup CPU limit: its global scope used (\\d+) ms of CPU while loading; the limit is 100 ms \\(--startup-cpu-ms\\)\\.\\n\\nrequest id: ${requestIdOf(res)}\\n$`,
      ),
    );
    expect(match).not.toBeNull();
    expect(Number(match![1])).toBeGreaterThan(100);
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({ msg: 'limit exceeded', worker: 'startup-burn', limit: 'startupCpuMs', max: 100 }),
    );
    expect(await daemon.fetchText('neighbour')).toMatchObject({ status: 200, text: 'neighbour ok' });
    expect(daemon.broker.stats().find((w) => w.name === 'neighbour')).toMatchObject({ errors: 0 });
  });
});

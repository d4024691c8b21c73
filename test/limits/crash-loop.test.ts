import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon } from '../helpers/daemon.js';
import { hostileTarget, requestIdOf, warmNeighbour } from '../helpers/hostile.js';

afterEach(closeDaemons);

// A child killed by a signal mid-request (502, replaced, neighbours unharmed) is covered in
// test/broker/errors.test.ts: "answers 502 when the child is killed mid-request…".

describe('a script whose global scope throws (crash loop at load)', () => {
  it('answers 500 each time without spawning a child per request', async () => {
    const daemon = await startTestDaemon(hostileTarget('throws-at-load'), { warmPool: 2 });
    await warmNeighbour(daemon);
    const first = await daemon.fetchText('throws-at-load', '/');
    const expected = (id: string) =>
      new RegExp(
        `^Worker "throws-at-load" failed to load: Error: cannot start \\(at .*throws-at-load\\.mjs:2:\\d+\\)\\n\\nrequest id: ${id}\\n$`,
      );
    expect(first.status).toBe(500);
    expect(first.text).toMatch(expected(requestIdOf(first)));

    // The pool refills the child the first attempt used; count from when it is full again.
    await daemon.pool.filled();
    const spawned = daemon.pool.stats().spawned;
    const tries = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? daemon.fetchText('neighbour') : daemon.fetchText('throws-at-load', '/'))),
    );
    for (const [i, res] of tries.entries()) {
      if (i % 2) {
        expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
      } else {
        expect(res.status).toBe(500);
        expect(res.text).toMatch(expected(requestIdOf(res)));
      }
    }
    // Within the back-off (1 s) failing requests cost no child; on a loaded machine the ten may
    // outlast it, and one retry is then due. Never a child per request.
    expect(daemon.pool.stats().spawned - spawned).toBeLessThanOrEqual(1);
    expect(daemon.logs.filter((r) => r.msg === 'worker failed to load' && r.worker === 'throws-at-load').length).toBeLessThanOrEqual(2);
    expect(await daemon.fetchText('neighbour')).toMatchObject({ status: 200, text: 'neighbour ok' });
  });
});

describe('a child killed from outside while its script loads', () => {
  it('answers 502 saying to retry, and the next request loads the script at once (no back-off for one death)', async () => {
    const daemon = await startTestDaemon(hostileTarget('slow-load'), { warmPool: 2 });
    await warmNeighbour(daemon);
    const pending = daemon.fetchText('slow-load', '/');
    let loading: number | undefined;
    for (let i = 0; i < 200 && !loading; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      loading = daemon.broker.instances().find((instance) => instance.worker === 'slow-load' && instance.loading)?.pid;
    }
    expect(loading).toBeDefined();
    process.kill(loading!, 'SIGKILL');
    const killed = await pending;
    expect(killed.status).toBe(502);
    expect(killed.text).toBe(
      `The worker's instance stopped while handling this request (the instance was killed by SIGKILL). Retry; a new instance will serve it.\n\nrequest id: ${requestIdOf(killed)}\n`,
    );
    expect(await daemon.fetchText('slow-load', '/')).toMatchObject({ status: 200, text: 'loaded' });
    expect(await daemon.fetchText('neighbour')).toMatchObject({ status: 200, text: 'neighbour ok' });
    expect(daemon.broker.stats().find((w) => w.name === 'neighbour')).toMatchObject({ errors: 0 });
  });
});

/**
 * Children SIGKILLed from outside while they boot (found by the kills-under-load
 * experiment: random kills during a cold start tripped the crash-loop breaker,
 * and every worker needing a new instance got 503 for seconds).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Instance } from '../../src/pool/instance.js';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

afterEach(closeDaemons);

const APP = { 'app.mjs': `export default { fetch() { return new Response('app'); } };` };

/** SIGKILLs the next child seen booting (its pid known, not yet ready), and waits for it to be gone. */
async function killNextBooting(daemon: TestDaemon): Promise<Instance> {
  for (let i = 0; i < 5_000; i++) {
    const booting = [...daemon.pool.live].find((instance) => instance.state === 'booting' && instance.pid);
    if (booting) {
      process.kill(booting.pid!, 'SIGKILL');
      const outcome = await booting.exited;
      expect(outcome).toMatchObject({ signal: 'SIGKILL', killed: false, duringBoot: true });
      return booting;
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error('no child was seen booting');
}

describe('children killed from outside while they boot', () => {
  it('give the request waiting for one another child instead of a 503', async () => {
    const daemon = await startTestDaemon(writeScripts(APP), { warmPool: 0 });
    const answer = daemon.fetchText('app');
    await killNextBooting(daemon);
    expect(await answer).toMatchObject({ status: 200, text: 'app' });
    expect(daemon.pool.stats()).toMatchObject({ misses: 1, bootFailures: 1 });
  });

  it('do not trip the crash-loop breaker: the pool refills and serves without a back-off', async () => {
    const daemon = await startTestDaemon(writeScripts(APP), { warmPool: 1 });
    const [warm] = [...daemon.pool.live];
    process.kill(warm!.pid!, 'SIGKILL');
    await warm!.exited;
    // Each replacement killed in turn: more in a row than the breaker allows (bootFailuresBeforeBackoff,
    // 3) for children that fail on their own.
    for (let i = 0; i < 4; i++) await killNextBooting(daemon);
    await daemon.pool.filled();
    expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'app' });
    expect(daemon.pool.stats()).toMatchObject({ bootFailures: 4 });
    expect(daemon.logs.filter((record) => record.msg.startsWith('children keep dying while booting'))).toEqual([]);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { startOrigin, type Origin } from '../helpers/origin.js';
import { until } from '../helpers/until.js';

let origin: Origin | null = null;
afterEach(async () => {
  await closeDaemons();
  await origin?.close();
  origin = null;
});

describe('a busy worker gets more instances, up to its cap', () => {
  it('starts another instance when every instance has --scale-out-concurrency requests in flight, and stops at --max-instances', async () => {
    origin = await startOrigin();
    const dir = writeScripts({
      'busy.mjs': `export default { async fetch(request) {
        const n = new URL(request.url).searchParams.get('n');
        const held = await fetch('${origin.url}/gate/' + n);
        return new Response('done ' + n + ' ' + (await held.text()));
      } };`,
    });
    const daemon = await startTestDaemon(dir, { warmPool: 2, scaleOutConcurrency: 2, maxInstances: 3, egressAllow: '127.0.0.1/32' });
    const requests = Array.from({ length: 10 }, (_, n) => daemon.fetchText('busy', `/?n=${n}`));
    await Promise.all(Array.from({ length: 10 }, (_, n) => origin!.arrived(String(n))));
    await until(() => daemon.broker.stats()[0]!.instances === 3, 'three instances');
    const pids = new Set(daemon.broker.instances().map((i) => i.pid));
    expect(pids.size).toBe(3);
    for (let n = 0; n < 10; n++) origin.release(String(n), 'ok');
    const answers = await Promise.all(requests);
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(answers.map((a) => a.text)).toEqual(Array.from({ length: 10 }, (_, n) => `done ${n} ok`));
    // The cap held: never more than three instances for the worker.
    expect(daemon.broker.stats()[0]!.instances).toBe(3);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

describe('graceful recycling', () => {
  it('replaces an instance after --recycle-after requests, letting its waitUntil work finish first', async () => {
    const dir = writeScripts({
      'counter.mjs': `let served = 0;
        export default { fetch(request, env, ctx) {
          served++;
          ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 100)).then(() => console.log('background done ' + served)));
          return new Response(String(served));
        } };`,
    });
    const daemon = await startTestDaemon(dir, { recycleAfter: 3, warmPool: 1 });
    const answers = [];
    const pids = [];
    for (let i = 0; i < 4; i++) {
      answers.push((await daemon.fetchText('counter', '/')).text);
      pids.push(daemon.broker.instances()[0]?.pid);
    }
    // Three requests on the first instance; the third retired it; the fourth started afresh.
    expect(answers).toEqual(['1', '2', '3', '1']);
    expect(pids[0]).toBe(pids[1]);
    expect(pids[2]).toBeUndefined(); // retired after its third request: no live instance until the next
    expect(pids[3]).toBeDefined();
    expect(pids[3]).not.toBe(pids[0]);
    const recycled = daemon.logs.find((r) => r.msg === 'recycling instance');
    expect(recycled?.reason).toBe('it served 3 requests (recycleAfterRequests)');
    // The retired instance finished its background work before it exited.
    const deadline = Date.now() + 5000;
    while (!daemon.logs.some((r) => r.msg === 'background done 3') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(daemon.logs.some((r) => r.msg === 'background done 3')).toBe(true);
  });
});

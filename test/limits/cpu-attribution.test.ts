/**
 * The watchdog samples a child's CPU from outside and cannot tell which request a
 * turn ran for, so it splits what it measures among the requests in flight. The
 * child's own count of each request arrives when the request settles; what the
 * watchdog had charged to the others for that request's turns is taken back then.
 * Without that, a request that waits while its neighbours on the same instance
 * work was charged a share of every one of their turns, and a cheap request was
 * stopped by the CPU limit: CI saw a hello-world request get 503 for the work of
 * the requests queued ahead of it on a fresh instance.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

const CPU_MS = 50;
const BURNERS = 30;
const BURN_MS = 30;

// `/wait` answers once every burner has; each burner runs its 30 ms in a timer turn of its
// own, so the child's count charges each burn to its own request, and the watchdog (which
// sees one busy child) splits each one among the requests in flight.
const SCRIPT = `
let finished = 0;
let allDone;
const done = new Promise((resolve) => (allDone = resolve));
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/wait') {
      console.log('waiting');
      await done;
      return new Response('waited');
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    const until = Date.now() + ${BURN_MS};
    while (Date.now() < until) {}
    if (++finished === ${BURNERS}) allDone();
    return new Response('burned');
  },
};
`;

describe('CPU attribution among requests on one instance', () => {
  it('does not charge a waiting request for the turns of its neighbours', { timeout: 60_000 }, async () => {
    const daemon = await startTestDaemon(writeScripts({ 'busy.mjs': SCRIPT }), { cpuMs: CPU_MS, maxInstances: 1, warmPool: 1 });
    // The instance is live and its code compiled before the measured requests (this burns once).
    expect(await daemon.fetchText('busy', '/warm-up')).toMatchObject({ status: 200, text: 'burned' });
    const waiting = daemon.fetchText('busy', '/wait');
    const burners = Array.from({ length: BURNERS - 1 }, () => daemon.fetchText('busy', '/'));
    const results = await Promise.all([waiting, ...burners]);
    // Each request used at most BURN_MS of CPU; together, far more than the limit.
    expect(results.map((r) => `${r.status} ${r.text}`)).toEqual(['200 waited', ...burners.map(() => '200 burned')]);
    expect(daemon.logs.filter((r) => r.msg === 'limit exceeded')).toEqual([]);
    // The waiting request's accounting line (found by the id on its console line): what the
    // watchdog charged it stays near what it used, not a share of 29 burns of 30 ms (45 ms
    // before the fix).
    const requestId = daemon.logs.find((r) => r.source === 'tenant' && r.msg === 'waiting')?.requestId;
    const waited = daemon.logs.find((r) => r.msg === 'request' && r.requestId === requestId);
    expect(waited).toMatchObject({ status: 200 });
    expect(waited!.cpuMs as number).toBeLessThan(CPU_MS / 2);
  });
});

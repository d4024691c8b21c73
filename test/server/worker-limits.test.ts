import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

afterEach(closeDaemons);

async function deploy(daemon: TestDaemon, path: string, body: string) {
  const res = await request(`${daemon.adminUrl}${path}`, { method: 'PUT', body });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, any> };
}

// A fixed amount of work first (~170 ms of CPU here), then wall time: 300 ms of wall time alone
// came to less than the 50 ms limit's worth of CPU on a loaded machine (a full run on a clean
// clone answered 200 where 503 was due).
const BURN = `export default { fetch() {
  let x = 0;
  for (let i = 0; i < 3e7; i++) x = (x * 31 + i) | 0;
  const until = Date.now() + 300;
  while (Date.now() < until) {}
  return new Response(x === 0.5 ? '' : 'burned 300 ms');
} };`;

describe('limits per worker, set when deploying', () => {
  it('lets one worker have more CPU than the daemon default while another keeps the default', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'hello.js': `addEventListener('fetch', e => e.respondWith(new Response('hi')))` }), {
      cpuMs: 50,
    });
    const generous = await deploy(daemon, '/workers/generous?cpuMs=2000', BURN);
    expect(generous).toMatchObject({ status: 201, json: { name: 'generous', limits: { cpuMs: 2000 } } });
    const strict = await deploy(daemon, '/workers/strict', BURN);
    expect(strict.status).toBe(201);

    expect(await daemon.fetchText('generous', '/')).toMatchObject({ status: 200, text: 'burned 300 ms' });
    const stopped = await daemon.fetchText('strict', '/');
    expect(stopped.status).toBe(503);
    expect(stopped.text).toMatch(
      /^Worker "strict" exceeded its CPU time limit: this request used \d+ ms of CPU; the limit is 50 ms per request \(--cpu-ms\)\./,
    );
  });

  it('rejects an unknown or invalid per-worker limit with 400 and changes nothing', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'hello.js': `addEventListener('fetch', e => e.respondWith(new Response('hi')))` }));
    const unknown = await deploy(daemon, '/workers/x?warmPoolSize=3', BURN);
    expect(unknown.status).toBe(400);
    expect(unknown.json.error.message).toBe(
      '"warmPoolSize" is not a limit a worker can set; per-worker limits: cpuMs, startupCpuMs, memoryMb, subrequests, kvOperations, cacheBytes, wallMs, waitUntilMs, maxInflightPerWorker, maxWebSocketsPerWorker, recycleAfterRequests, recycleRssMb',
    );
    const invalid = await deploy(daemon, '/workers/x?cpuMs=-5', BURN);
    expect(invalid.status).toBe(400);
    expect(invalid.json.error.message).toBe('limits.cpuMs must be an integer ≥ 1, got -5');
    expect((await daemon.fetchText('x', '/')).status).toBe(404);
  });
});

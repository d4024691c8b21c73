import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { waitForLog } from '../helpers/origin.js';

afterEach(closeDaemons);

const ID = /^[0-9a-f]{16}$/;

describe('tenant failures become clear error responses', () => {
  it('maps a synchronous throw to 500 with the error text and a request id that is also logged', async () => {
    const daemon = await startTestDaemon(
      writeScripts({ 'sync.js': `addEventListener('fetch', () => { throw new Error('boom sync'); });` }),
    );
    const res = await daemon.fetchText('sync');
    expect(res.status).toBe(500);
    const id = res.headers['edgeproc-request-id'] as string;
    expect(id).toMatch(ID);
    expect(res.text).toBe(`Worker threw exception: Error: boom sync\n\nrequest id: ${id}\n`);
    const record = await waitForLog(daemon.logs, (r) => r.requestId === id && r.msg === 'worker threw an exception');
    expect(record).toMatchObject({ level: 'error', worker: 'sync', error: 'Error: boom sync' });
    expect(record.stack).toContain('boom sync');
  });

  it('maps an async rejection to 500 the same way', async () => {
    const daemon = await startTestDaemon(
      writeScripts({
        'async.mjs': `export default { async fetch() { await new Promise((r) => setTimeout(r, 1)); throw new RangeError('boom async'); } };`,
      }),
    );
    const res = await daemon.fetchText('async');
    expect(res.status).toBe(500);
    const id = res.headers['edgeproc-request-id'] as string;
    expect(res.text).toBe(`Worker threw exception: RangeError: boom async\n\nrequest id: ${id}\n`);
    await waitForLog(daemon.logs, (r) => r.requestId === id && r.error === 'RangeError: boom async');
  });

  it('answers 500 with a clear message when the handler returns something other than a Response', async () => {
    const daemon = await startTestDaemon(
      writeScripts({
        'str.mjs': `export default { fetch() { return 'hello'; } };`,
        'none.js': `addEventListener('fetch', () => {});`,
      }),
    );
    const str = await daemon.fetchText('str');
    expect(str.status).toBe(500);
    expect(str.text).toContain(
      'Worker threw exception: TypeError: the handler must return a Response (or a Promise of one), it returned a string ("hello")',
    );
    const none = await daemon.fetchText('none');
    expect(none.status).toBe(500);
    expect(none.text).toContain('Worker threw exception: TypeError: No response: no fetch listener called event.respondWith()');
  });

  it('answers 500 naming the error, line and column for a script that fails to load', async () => {
    const daemon = await startTestDaemon(
      writeScripts({
        'throws.mjs': `const a = 1;\nundefinedThing.call();\nexport default { fetch() { return new Response('x'); } };\n`,
      }),
    );
    // `serve` refuses a script that does not parse (workers/check.ts), and so does a deploy; a
    // SyntaxError reported by a runner child is still handled, so publish such a version directly.
    const limits = daemon.registry.get('throws')!.limits;
    const broken = `addEventListener('fetch', (e) => {\n  e.respondWith(new Response('x'));\n  let = ;\n});\n`;
    daemon.registry.publish(daemon.registry.prepare('syntax', broken, 'syntax.js', {}, limits));
    const syntax = await daemon.fetchText('syntax');
    expect(syntax.status).toBe(500);
    expect(syntax.text).toMatch(/^Worker "syntax" failed to load: SyntaxError: .+ \(at .*syntax\.js:3:\d+\)\n\nrequest id: [0-9a-f]{16}\n$/);
    const throws = await daemon.fetchText('throws');
    expect(throws.status).toBe(500);
    expect(throws.text).toMatch(
      /^Worker "throws" failed to load: ReferenceError: undefinedThing is not defined \(at .*throws\.mjs:2:1\)\n/,
    );
    // It stays failed, without spending a warm child per request.
    const spawned = daemon.pool.stats().spawned;
    expect((await daemon.fetchText('syntax')).status).toBe(500);
    expect(daemon.pool.stats().spawned).toBe(spawned);
  });

  it('answers 500 saying what to add when a script has no handler', async () => {
    const daemon = await startTestDaemon(
      writeScripts({ 'nohandler.mjs': `export default { hello() {} };`, 'nolistener.js': `const x = 1;` }),
    );
    const mod = await daemon.fetchText('nohandler');
    expect(mod.status).toBe(500);
    expect(mod.text).toContain(
      'Worker "nohandler" failed to load: the script exports no fetch() handler: add `export default { fetch(request, env, ctx) { … } }`',
    );
    const sw = await daemon.fetchText('nolistener');
    expect(sw.status).toBe(500);
    expect(sw.text).toContain('Worker "nolistener" failed to load: the script registered no event handlers');
  });

  it('answers 502 when the child is killed mid-request, then serves from a replacement; neighbours see nothing', async () => {
    const daemon = await startTestDaemon(
      writeScripts({
        'victim.mjs': `
          const pid = crypto.randomUUID();
          export default {
            async fetch(request) {
              if (new URL(request.url).pathname === '/hang') {
                console.log('hanging');
                // Pending work (a timer) keeps it a request that may still answer, not a stalled one.
                await new Promise(() => setInterval(() => {}, 1000));
              }
              return new Response('alive ' + pid);
            },
          };`,
        'neighbour.mjs': `export default { fetch() { return new Response('neighbour ok'); } };`,
      }),
      { warmPool: 2 },
    );
    expect(await daemon.fetchText('neighbour')).toMatchObject({ status: 200, text: 'neighbour ok' });
    const first = await daemon.fetchText('victim');
    expect(first.status).toBe(200);
    const hanging = daemon.fetchText('victim', '/hang');
    await waitForLog(daemon.logs, (r) => r.msg === 'hanging' && r.worker === 'victim');
    const victim = daemon.broker.instances().find((i) => i.worker === 'victim')!;
    process.kill(victim.pid!, 'SIGKILL');

    const res = await hanging;
    expect(res.status).toBe(502);
    const id = res.headers['edgeproc-request-id'] as string;
    expect(res.text).toBe(
      `The worker's instance stopped while handling this request (the instance was killed by SIGKILL). Retry; a new instance will serve it.\n\nrequest id: ${id}\n`,
    );
    expect(daemon.logs.find((r) => r.requestId === id && r.msg === 'instance died with a request in flight')).toMatchObject({
      worker: 'victim',
      signal: 'SIGKILL',
    });

    const next = await daemon.fetchText('victim');
    expect(next.status).toBe(200);
    expect(next.text).not.toBe(first.text);
    expect(daemon.broker.instances().find((i) => i.worker === 'victim')!.pid).not.toBe(victim.pid);
    expect(await daemon.fetchText('neighbour')).toMatchObject({ status: 200, text: 'neighbour ok' });
    expect(daemon.broker.stats().find((w) => w.name === 'neighbour')).toMatchObject({ errors: 0 });
  });

  it('keeps serving when a tenant throws outside a request (timer, unhandled rejection)', async () => {
    const daemon = await startTestDaemon(
      writeScripts({
        'wild.mjs': `
          export default {
            fetch() {
              setTimeout(() => { throw new Error('from a timer'); }, 0);
              Promise.reject(new Error('nobody listens'));
              return new Response('fine');
            },
          };`,
      }),
    );
    expect(await daemon.fetchText('wild')).toMatchObject({ status: 200, text: 'fine' });
    await waitForLog(daemon.logs, (r) => r.msg === 'Uncaught Error: from a timer');
    await waitForLog(daemon.logs, (r) => r.msg === 'Unhandled rejection: Error: nobody listens');
    expect(await daemon.fetchText('wild')).toMatchObject({ status: 200, text: 'fine' });
  });
});

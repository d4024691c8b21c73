import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

let origin: Origin | null = null;
afterEach(async () => {
  await closeDaemons();
  await origin?.close();
  origin = null;
});

const NEVER = 'The script will never generate a response: its handler is waiting, and no timer, fetch, request body or other work is left that could settle it.';

describe('a handler that can never settle', () => {
  it('is answered 500 at once, as Workers does, and the instance keeps serving', async () => {
    const dir = writeScripts({
      'never.mjs': `export default { async fetch(request) {
        if (new URL(request.url).pathname === '/ok') return new Response('ok');
        await new Promise(() => {});
      } };`,
      'sw.js': `addEventListener('fetch', (e) => e.respondWith(new Promise(() => {})));`,
    });
    const daemon = await startTestDaemon(dir, { wallMs: 20_000 });
    const started = Date.now();
    const stuck = await daemon.fetchText('never', '/');
    expect(stuck.status).toBe(500);
    expect(stuck.text).toBe(`Worker "never": ${NEVER}\n\nrequest id: ${stuck.headers['edgeproc-request-id']}\n`);
    // Far sooner than the wall-time limit.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await daemon.fetchText('never', '/ok')).toMatchObject({ status: 200, text: 'ok' });
    expect((await daemon.fetchText('sw', '/')).text).toContain(NEVER);
  });

  it('is not mistaken for a stall while a timer, a fetch or the request body could still settle it', async () => {
    origin = await startOrigin();
    const dir = writeScripts({
      'timer.mjs': `export default { fetch() { return new Promise((resolve) => setTimeout(() => resolve(new Response('timer')), 600)); } };`,
      'fetcher.mjs': `export default { async fetch() { const r = await fetch('${origin.url}/gate/slow'); return new Response('fetched ' + await r.text()); } };`,
    });
    const daemon = await startTestDaemon(dir, { wallMs: 20_000, egressAllow: '127.0.0.1/32' });
    const fetched = daemon.fetchText('fetcher', '/');
    await origin.arrived('slow');
    // Held at the origin for longer than two stall checks.
    await new Promise((resolve) => setTimeout(resolve, 500));
    origin.release('slow', 'late');
    expect(await fetched).toMatchObject({ status: 200, text: 'fetched late' });
    expect(await daemon.fetchText('timer', '/')).toMatchObject({ status: 200, text: 'timer' });
  });
});

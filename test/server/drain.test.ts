import { Client } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

afterEach(closeDaemons);

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});
afterAll(() => origin.close());

describe('front door while draining', () => {
  it('finishes in-flight requests with Connection: close, so no client reuses a connection about to be cut', async () => {
    const daemon = await startTestDaemon(
      writeScripts({
        'a.mjs': `
          export default {
            async fetch(request, env, ctx) {
              await fetch('${origin.url}/gate/slow');
              ctx.waitUntil(fetch('${origin.url}/gate/background'));
              return new Response('slow done');
            },
          };`,
      }),
      { egressAllow: '127.0.0.1/32' },
    );
    const client = new Client(daemon.url);
    try {
      const slow = client.request({ path: '/', method: 'GET', headers: { host: 'a.localhost' } });
      await origin.arrived('slow');
      const closing = daemon.close();
      origin.release('slow');
      const res = await slow;
      expect(res.statusCode).toBe(200);
      expect(res.headers.connection).toBe('close');
      expect(await res.body.text()).toBe('slow done');
      // waitUntil work still holds the drain; the front door takes nothing new meanwhile.
      await origin.arrived('background');
      await expect(client.request({ path: '/', method: 'GET', headers: { host: 'a.localhost' } })).rejects.toMatchObject({
        code: 'ECONNREFUSED',
      });
      origin.release('background');
      await closing;
    } finally {
      await client.close();
    }
  });
});

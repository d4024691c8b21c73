/**
 * Attack: a response with a mebibyte of headers. Node writes any head it is
 * given, and a client's parser gives up on it mid-response (undici after 16
 * KiB: a socket error, not a status). The daemon bounds a worker's response
 * headers at 128 KiB, Workers' limit: past it the client gets a clean 500.
 */
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('huge response headers', () => {
  it('get a clean 500 past 128 KiB, and are delivered under it', async () => {
    const daemon = await startHostileDaemon(['huge-headers']);
    expectErrorResponse(
      await attack(daemon, 'huge-headers', '/huge'),
      500,
      'The worker returned a response the daemon cannot send: its headers take more than 131072 bytes (2 headers), the most a response may carry.',
    );
    // 100 KiB is within the limit; a client that accepts that much gets it whole.
    const client = new Agent({ maxHeaderSize: 256 * 1024 });
    try {
      const res = await request(`${daemon.url}/large`, { headers: { host: `huge-headers.localhost:${daemon.port}` }, dispatcher: client });
      expect({ status: res.statusCode, length: String(res.headers['x-big']).length, body: await res.body.text() }).toEqual({
        status: 200,
        length: 100 * 1024,
        body: 'delivered',
      });
    } finally {
      await client.close();
    }
    await expectDaemonServes(daemon);
  });
});

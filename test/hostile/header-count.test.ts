/**
 * Attack: twenty thousand headers on one response. The same 128 KiB bound on
 * a worker's response headers counts each one (name, value, ": " and CRLF),
 * so the client gets a clean 500; a thousand small ones are delivered.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

/** Not a CPU test: building twenty thousand headers took over the battery's 200 ms of CPU on a slow machine. */
const ROOMY_CPU = { cpuMs: 5000 };

describe('a huge number of response headers', () => {
  it('gets a clean 500 past the byte limit, and a thousand are delivered', async () => {
    const daemon = await startHostileDaemon(['header-count'], ROOMY_CPU);
    expectErrorResponse(
      await attack(daemon, 'header-count', '/many'),
      500,
      'The worker returned a response the daemon cannot send: its headers take more than 131072 bytes (20001 headers), the most a response may carry.',
    );
    const thousand = await attack(daemon, 'header-count', '/thousand');
    expect(thousand).toMatchObject({ status: 200, text: '1000 headers' });
    expect(Object.keys(thousand.headers).filter((name) => name.startsWith('x-h'))).toHaveLength(1000);
    await expectDaemonServes(daemon);
  });
});

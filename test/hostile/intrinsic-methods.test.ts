/**
 * Attack: wrap every writable method of the language prototypes (they stay
 * writable so libraries can override them) and watch what the runner and Node
 * pass through them during a request that uses fetch, streams in both
 * directions, crypto, compression, MessageChannel, timers and console. No Node
 * object with powers (process, a socket, a libuv handle, a module) may show up.
 * (Before Array.prototype was frozen, a wrapped pop() received Node's stack of
 * async resources: the process object, the channel's Pipe, its WriteWraps.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

let origin: Origin | null = null;
afterEach(async () => {
  await closeDaemons();
  await origin?.close();
  origin = null;
});

describe('the language prototypes’ methods, wrapped by a tenant', () => {
  it('never see a Node object with powers', async () => {
    origin = await startOrigin((req, res) => req.resume().on('end', () => res.end('origin body')));
    const daemon = await startHostileDaemon(['intrinsic-methods'], {
      egressAllow: '127.0.0.1/32',
      // Every call of every language method goes through the wrappers: slow, and not the point here.
      cpuMs: 10_000,
      wallMs: 20_000,
    });
    const res = await attack(daemon, 'intrinsic-methods', `/?origin=${encodeURIComponent(origin.url)}`, { method: 'POST', body: 'request body' });
    expect({ status: res.status, length: res.text.length }).toEqual({ status: 200, length: 500_000 });
    const report = await daemon.fetchText('intrinsic-methods', '/report');
    const { wrapped, called, found } = JSON.parse(report.text) as { wrapped: Record<string, number>; called: boolean; found: object };
    // Array.prototype is frozen (Node calls its methods, pop among them, on arrays holding process and
    // libuv handles); every other prototype's methods were wrapped, and were called.
    expect(Object.entries(wrapped).filter(([, n]) => n === 0).map(([name]) => name)).toEqual(['Array']);
    expect({ called, found }).toEqual({ called: true, found: {} });
    await expectDaemonServes(daemon);
  });
});

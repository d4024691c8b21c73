/**
 * Attack: subvert the runner's flow control. The runner cuts a body chunk to its credit
 * with the chunk's own subarray(), and the tenant's chunk carries one that ignores the
 * cut, so the runner sends more than the daemon granted, chunk after chunk of an
 * endless body, and the daemon, writing to a client that reads at its own pace, would
 * buffer all of it. The daemon holds every child to the window it granted: past it, the
 * response is cut and the log says why. (Until 2026-12-06 the fixture forged
 * DataView.prototype.getUint32, with which the runner then read the credit of the
 * daemon's WINDOW frames; it reads them byte by byte now.)
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { expectDaemonServes, neighbourDuring, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a child that ignores its flow-control window', () => {
  it('has its response cut instead of the daemon buffering it', async () => {
    // CPU generous: the flood costs the child CPU, and only the daemon's window check should end it.
    const daemon = await startHostileDaemon(['flow-control-forgery'], { cpuMs: 10_000 });
    expect(await daemon.fetchText('flow-control-forgery', '/loaded')).toMatchObject({ status: 200, text: 'loaded' });
    // A client that reads nothing until the daemon has cut the response, then everything until the
    // connection closes: the daemon must not hold what the child sends meanwhile.
    const violation = {
      msg: 'response body failed mid-stream',
      worker: 'flow-control-forgery',
      reason: 'the instance sent more of the response body than its flow-control window allows (262144 bytes unacknowledged)',
    };
    const socket = connect(daemon.port, '127.0.0.1');
    const reading = new Promise<{ status: string; closed: boolean }>((resolve, reject) => {
      let received = '';
      socket.on('connect', () => {
        socket.write(`GET / HTTP/1.1\r\nhost: flow-control-forgery.localhost:${daemon.port}\r\n\r\n`);
        socket.pause();
      });
      socket.on('data', (chunk) => (received += chunk.toString('latin1', 0, Math.min(chunk.length, 64))));
      socket.on('error', reject);
      socket.on('close', () => resolve({ status: received.slice(0, received.indexOf('\r\n')), closed: true }));
    });
    const cut = expect.poll(() => daemon.logs, { timeout: 10_000 }).toContainEqual(expect.objectContaining(violation));
    for (const res of await neighbourDuring(daemon, cut)) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    await cut;
    socket.resume();
    // The head went out, then the connection was closed mid-body: the endless body never ends otherwise.
    expect(await reading).toEqual({ status: 'HTTP/1.1 200 OK', closed: true });
    await expectDaemonServes(daemon);
  });
});

/**
 * Attack: subvert the runner's flow control. DataView.prototype.getUint32 is writable and
 * the runner reads the credit of the daemon's WINDOW frames with it, so the tenant
 * grants its own response body unlimited credit: the runner then pumps an
 * endless body as fast as it can, and the daemon, writing to a client that
 * reads at its own pace, would buffer all of it. The daemon holds every child
 * to the window it granted: past it, the response is cut and the log says why.
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

/**
 * Attack: HTTP response smuggling with nothing but the Response API: a
 * stream body behind `content-length: 5` that goes on with a whole second
 * response. Node writes what it is given, so a keep-alive client read the
 * injected response as the answer to its next request. The daemon now holds
 * every body to the Content-Length the client was told: longer or shorter,
 * the response is cut; a Content-Length on no body, or one that is not a
 * number, is dropped.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, type TestDaemon } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

/** Two requests pipelined on one connection; everything the daemon wrote on it until it closed (or 2 s). */
function pipelined(daemon: TestDaemon, first: string, second: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(daemon.port, '127.0.0.1');
    const host = `content-length-mismatch.localhost:${daemon.port}`;
    let received = '';
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.on('connect', () => socket.write(`GET ${first} HTTP/1.1\r\nhost: ${host}\r\n\r\nGET ${second} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`));
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
}

describe('a body that does not match its Content-Length', () => {
  it('cannot smuggle a response into a kept-alive connection', async () => {
    const daemon = await startHostileDaemon(['content-length-mismatch']);
    const wire = await pipelined(daemon, '/longer', '/real');
    expect(wire).not.toContain('smuggled');
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({
        msg: 'response body failed mid-stream',
        worker: 'content-length-mismatch',
        reason: 'the response body is longer than the 5 bytes its Content-Length header promised',
      }),
    );
    // An honest exchange on the same kind of connection is untouched.
    const honest = await pipelined(daemon, '/exact', '/real');
    expect(honest).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nexactHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nthe real response$/);
    await expectDaemonServes(daemon);
  });

  it('is cut when shorter, and a Content-Length with no body or no number is dropped', async () => {
    const daemon = await startHostileDaemon(['content-length-mismatch']);
    await expect(attack(daemon, 'content-length-mismatch', '/shorter')).rejects.toThrow();
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({
        msg: 'response body failed mid-stream',
        reason: 'the response body ended after 5 of the 100 bytes its Content-Length header promised',
      }),
    );
    const noBody = await attack(daemon, 'content-length-mismatch', '/no-body');
    expect({ status: noBody.status, text: noBody.text, length: noBody.headers['content-length'] }).toEqual({ status: 200, text: '', length: undefined });
    const notANumber = await attack(daemon, 'content-length-mismatch', '/not-a-number');
    expect({ status: notANumber.status, text: notANumber.text, length: notANumber.headers['content-length'] }).toEqual({ status: 200, text: 'body', length: undefined });
    await expectDaemonServes(daemon);
  });
});

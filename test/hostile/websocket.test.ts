/**
 * Attack: open a WebSocket from a tenant to loopback, switch the client's connection to
 * another protocol with a 101 that holds no WebSocket of the runtime's, or answer an
 * Upgrade request with a plain response. A WebSocket the worker opens is a subrequest under
 * the egress policy (a `new WebSocket` to loopback fires error and close 1006, a fetch with
 * `Upgrade` rejects saying why), a 101 takes one end of a WebSocketPair or the Response
 * constructor refuses it, and an Upgrade request the worker answers with a plain response
 * gets that response on a connection that stays HTTP.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('WebSockets', () => {
  it('cannot reach loopback, or switch protocols without a WebSocketPair', async () => {
    const daemon = await startHostileDaemon(['websocket']);
    const res = await attack(daemon, 'websocket', '/open');
    expect(JSON.parse(res.text)).toEqual({
      'new WebSocket': 'error, close 1006',
      'fetch with Upgrade':
        'TypeError: fetch to http://127.0.0.1:1/ denied: 127.0.0.1 is a loopback address; workers may not reach loopback, private, link-local or metadata addresses (allow a range with --egress-allow)',
      WebSocketPair: 'function',
      'status 101': 'TypeError: Response: webSocket must be a WebSocket (one end of a WebSocketPair)',
    });
    // An Upgrade request is answered as plain HTTP: 200 from the worker, no 101, no switch.
    const wire = await new Promise<string>((resolve, reject) => {
      const socket = connect(daemon.port, '127.0.0.1');
      let received = '';
      socket.on('connect', () =>
        socket.write(
          `GET /chat HTTP/1.1\r\nhost: websocket.localhost:${daemon.port}\r\nconnection: upgrade\r\nupgrade: websocket\r\n` +
            'sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        ),
      );
      socket.on('data', (chunk) => {
        received += chunk.toString('latin1');
        if (received.endsWith('plain response to upgrade: websocket')) socket.end();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(received));
    });
    expect(wire.slice(0, wire.indexOf('\r\n'))).toBe('HTTP/1.1 200 OK');
    expect(wire.slice(wire.indexOf('\r\n\r\n') + 4)).toBe('plain response to upgrade: websocket');
    expect(wire.slice(0, wire.indexOf('\r\n\r\n')).toLowerCase()).not.toMatch(/^(upgrade|connection: upgrade)/m);
    await expectDaemonServes(daemon);
  });
});

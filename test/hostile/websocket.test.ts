/**
 * Attack: open an outbound WebSocket from a tenant, switch the client's connection to
 * another protocol with a 101 that holds no WebSocket of the runtime's, or answer an
 * Upgrade request with a plain response. An outbound WebSocket is not supported yet (the
 * constructor throws a TypeError saying so), a 101 takes one end of a WebSocketPair or the
 * Response constructor refuses it, and an Upgrade request the worker answers with a plain
 * response gets that response on a connection that stays HTTP.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('WebSockets', () => {
  it('cannot be opened outbound, or switched to without a WebSocketPair', async () => {
    const daemon = await startHostileDaemon(['websocket']);
    const res = await attack(daemon, 'websocket', '/open');
    expect(JSON.parse(res.text)).toEqual({
      'new WebSocket':
        'TypeError: WebSocket: outbound WebSockets (new WebSocket(url), or fetch() with Upgrade: websocket) are not supported by edgeproc yet; a worker can accept WebSockets with new WebSocketPair()',
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

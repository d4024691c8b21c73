/**
 * Attack: a worker that floods a WebSocket whose client reads nothing, or loops in a message
 * handler. The stream's window keeps the backlog in the worker's own child, so its memory limit
 * stops it, not the daemon's memory; a runaway handler is stopped at the CPU limit. Either way
 * the client's socket closes with 1011 and the limit's reason, and the neighbour, served all
 * the while, sees no error.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { expectDaemonServes, HOSTILE_LIMITS, neighbourDuring, startHostileDaemon } from '../helpers/hostile.js';
import { openSocket } from '../helpers/websocket-client.js';

afterEach(closeDaemons);

describe('a WebSocket worker gone wrong', () => {
  it('that floods a client which does not read is stopped by its own memory limit', async () => {
    const daemon = await startHostileDaemon(['websocket-flood'], { cpuMs: 10_000 });
    const socket = await openSocket(daemon, 'websocket-flood');
    socket.ws.pause();
    const before = process.memoryUsage().arrayBuffers;
    const stopped = (async () => {
      while (!daemon.logs.some((line) => line.msg === 'limit exceeded' && line.limit === 'memoryMb')) await new Promise((resolve) => setTimeout(resolve, 20));
    })();
    const neighbours = await neighbourDuring(daemon, stopped);
    for (const res of neighbours) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    // The daemon (in this process) held the window, not the child's 64 MiB and more.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan((HOSTILE_LIMITS.memoryMb * 1024 * 1024) / 4);
    // Reading again, the client gets what the window let through, then the close frame.
    socket.ws.resume();
    const { code, reason } = await socket.closed;
    expect(code).toBe(1011);
    expect(reason).toMatch(/^Worker "websocket-flood" exceeded its memory limit/);
    await expectDaemonServes(daemon);
  });

  it('that loops in a message handler is stopped at the CPU limit', async () => {
    const daemon = await startHostileDaemon(['websocket-flood']);
    const socket = await openSocket(daemon, 'websocket-flood', '/spin');
    socket.ws.send('go');
    const neighbours = await neighbourDuring(daemon, socket.closed);
    for (const res of neighbours) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
    const { code, reason } = await socket.closed;
    expect(code).toBe(1011);
    expect(reason).toMatch(/^Worker "websocket-flood" exceeded its CPU time limit: this request used \d+ ms/);
    await expectDaemonServes(daemon);
  });
});

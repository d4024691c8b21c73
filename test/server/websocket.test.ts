/**
 * Workers' server-side WebSockets end to end: a real client (`ws`) upgrades through the front
 * door, the worker accepts one end of a WebSocketPair in its child and returns the other in a
 * 101, and messages, closes, limits and failures cross the daemon (src/broker/websocket-bridge.ts,
 * runner/websocket.ts).
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';
import { openSocket } from '../helpers/websocket-client.js';
import { until } from '../helpers/until.js';

const CHAT = `
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (request.headers.get('upgrade') !== 'websocket') {
      if (url.pathname === '/101') return new Response(null, { status: 101, webSocket: new WebSocketPair()[0] });
      if (url.pathname === '/accepted') { const pair = new WebSocketPair(); pair[0].accept(); return new Response(null, { status: 101, webSocket: pair[0] }); }
      return new Response('expected a WebSocket', { status: 426 });
    }
    if (url.pathname === '/lazy') {
      // Accepts a second late: what the client sent meanwhile waits, and is counted as it comes.
      const { 0: client, 1: server } = new WebSocketPair();
      setTimeout(() => {
        let waited = 0, total = 0, inOrder = true, burst = true;
        server.accept();
        setTimeout(() => (burst = false), 0);
        server.addEventListener('message', (event) => {
          if (new Uint8Array(event.data)[0] !== total % 251) inOrder = false;
          total++;
          if (burst) waited++;
          if (total === 512) server.send(JSON.stringify({ waited, inOrder }));
        });
      }, 1000);
      return new Response(null, { status: 101, webSocket: client });
    }
    if (url.pathname === '/deny') return new Response('no entry', { status: 401, headers: { 'www-authenticate': 'Bearer' } });
    const { 0: client, 1: server } = new WebSocketPair();
    server.accept();
    server.send('hello from ' + request.headers.get('sec-websocket-protocol'));
    server.addEventListener('message', (event) => {
      const data = event.data;
      if (data instanceof Blob) return void server.send('blob of ' + data.size);
      if (typeof data !== 'string') return server.send(new Uint8Array(data).reverse());
      const [command, arg] = data.split(' ');
      if (command === 'echo') server.send(arg);
      else if (command === 'blobs') { server.binaryType = 'blob'; server.send('ok'); }
      else if (command === 'close') server.close(Number(arg), 'bye');
      else if (command === 'burn') { const end = Date.now() + Number(arg); while (Date.now() < end); server.send('burnt'); }
      else if (command === 'spin') for (;;);
      else if (command === 'flood') { for (let i = 0; i < Number(arg); i++) server.send(new Uint8Array(65536).fill(i % 251)); server.send('done'); }
      else if (command === 'fetch') fetch('http://127.0.0.1:1/').catch((error) => server.send('fetch: ' + error.message));
    });
    server.addEventListener('close', (event) => {
      console.log('closed ' + event.code + ' ' + event.reason + ' ' + event.wasClean);
      ctx.waitUntil(scheduler.wait(20).then(() => console.log('waitUntil after close')));
    });
    return new Response(null, { status: 101, webSocket: client, headers: { 'sec-websocket-protocol': 'chat.v1', 'x-worker': 'chat' } });
  },
};
`;

const API = `
export default {
  async fetch() {
    const attempt = (f) => { try { f(); return 'ok'; } catch (error) { return error.name + ': ' + error.message; } };
    const pair = new WebSocketPair();
    const [a, b] = Object.values(pair);
    const out = {
      ends: [a instanceof WebSocket, b instanceof WebSocket, a.readyState, WebSocket.OPEN, a !== b],
      sendBeforeAccept: attempt(() => a.send('x')),
    };
    a.accept();
    out.badCode = attempt(() => a.close(1001));
    out.longReason = attempt(() => a.close(1000, 'x'.repeat(124)));
    out.tooBig = attempt(() => a.send(new Uint8Array(1024 * 1024 + 1)));
    out.notData = attempt(() => a.send({}));
    out.notASocket = attempt(() => new Response(null, { status: 101, webSocket: {} }));
    out.wrongStatus = attempt(() => new Response(null, { status: 200, webSocket: b }));
    out.plain101 = attempt(() => new Response(null, { status: 101 }));
    const answer = new Response(null, { status: 101, webSocket: b });
    out.response = [answer.status, answer.webSocket === b, new Response('x').webSocket];
    out.notWs = attempt(() => new WebSocket('ftp://example.com/'));
    const local = new WebSocketPair();
    const [c, d] = [local[0], local[1]];
    c.send === d.send;
    c.accept();
    const got = new Promise((resolve) => d.addEventListener('message', (event) => resolve(event.data)));
    c.send('before accept');
    await scheduler.wait(5);
    d.accept();
    out.waitedForAccept = await got;
    const closing = new Promise((resolve) => c.addEventListener('close', (event) => resolve([event.code, event.reason, event instanceof CloseEvent])));
    d.close(1000, 'done');
    out.localClose = await closing;
    out.states = [c.readyState, d.readyState];
    out.sendAfterClose = attempt(() => d.send('late'));
    return Response.json(out);
  },
};
`;

let daemon: TestDaemon;

// Sends as its handler returns: the second from a microtask (as a handler that relays what it
// is sent does, its listeners called in microtasks), which ran just before the runtime took the
// client end, and whose message reached that end just after.
const GREETER = `
export default {
  fetch() {
    const { 0: client, 1: server } = new WebSocketPair();
    server.accept();
    server.send('one');
    queueMicrotask(() => server.send('two'));
    server.addEventListener('message', (event) => server.send('echo ' + event.data));
    return new Response(null, { status: 101, webSocket: client });
  },
};
`;

beforeAll(async () => {
  daemon = await startTestDaemon(writeScripts({ 'chat.mjs': CHAT, 'api.mjs': API, 'greeter.mjs': GREETER }));
});
afterAll(closeDaemons);

const logged = (text: string) => daemon.logs.some((line) => line.msg === text);

describe('WebSockets a worker accepts', () => {
  it('carry text and binary both ways, with the 101 the worker chose', async () => {
    const socket = await openSocket(daemon, 'chat', '/', ['chat.v2', 'chat.v1']);
    expect(socket.headers['x-worker']).toBe('chat');
    expect(socket.ws.protocol).toBe('chat.v1');
    // Sent before the worker returned its response: it arrives first.
    expect(await socket.next()).toBe('hello from chat.v2,chat.v1');
    socket.ws.send('echo ünïcode');
    expect(await socket.next()).toBe('ünïcode');
    socket.ws.send(Buffer.from([1, 2, 3]));
    expect(await socket.next()).toEqual(Buffer.from([3, 2, 1]));
    socket.ws.send('blobs');
    expect(await socket.next()).toBe('ok');
    socket.ws.send(Buffer.alloc(1000));
    expect(await socket.next()).toBe('blob of 1000');
    // A subrequest from a message handler is the request's, under its egress policy.
    socket.ws.send('fetch');
    expect(await socket.next()).toMatch(/^fetch: fetch to http:\/\/127\.0\.0\.1:1\/ denied: 127\.0\.0\.1 is a loopback address/);
    socket.ws.send('close 4000');
    expect(await socket.closed).toEqual({ code: 4000, reason: 'bye' });
    await until(() => logged('waitUntil after close'), 'the close handler and its waitUntil work');
    expect(logged('closed 4000 bye true')).toBe(true);
    const line = daemon.logs.find((l) => l.msg === 'request' && l.status === 101);
    expect(line).toMatchObject({ worker: 'chat', status: 101 });
  });

  it('carry what the worker sends as its handler returns, from a microtask too', async () => {
    const socket = await openSocket(daemon, 'greeter');
    expect(await socket.next()).toBe('one');
    expect(await socket.next()).toBe('two');
    socket.ws.send('three');
    expect(await socket.next()).toBe('echo three');
    socket.ws.close();
    await socket.closed;
  });

  it('tell the worker when the client closes or goes away', async () => {
    const polite = await openSocket(daemon, 'chat');
    await polite.next();
    polite.ws.close(3001, 'see you');
    expect(await polite.closed).toEqual({ code: 3001, reason: 'see you' });
    await until(() => logged('closed 3001 see you true'), "the worker's close event");

    const rude = await openSocket(daemon, 'chat');
    await rude.next();
    rude.ws.terminate();
    await until(() => logged('closed 1006  false'), 'a close event for a lost connection');
    // Nothing stays in flight: the requests ended with their sockets.
    await until(() => daemon.broker.inflight === 0, 'the requests to end');
  });

  it("count in /metrics as a 101 whose duration is the handshake's, not the socket's life", async () => {
    const before = await metric(daemon, 'edgeproc_request_duration_seconds_sum', { worker: 'chat' });
    const count = await metric(daemon, 'edgeproc_requests_total', { worker: 'chat', status: '101' });
    const socket = await openSocket(daemon, 'chat');
    await socket.next();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    socket.ws.close();
    await socket.closed;
    await until(() => daemon.broker.inflight === 0, 'the request to end');
    expect(await metric(daemon, 'edgeproc_requests_total', { worker: 'chat', status: '101' })).toBe(count + 1);
    // Held open 1.5 s; its handshake took milliseconds.
    expect((await metric(daemon, 'edgeproc_request_duration_seconds_sum', { worker: 'chat' })) - before).toBeLessThan(1);
  });

  it('are closed with 1001 when the daemon shuts down, and their close handlers still run', async () => {
    const own = await startTestDaemon(writeScripts({ 'chat.mjs': CHAT }));
    const socket = await openSocket(own, 'chat');
    await socket.next();
    const closing = own.close();
    expect(await socket.closed).toEqual({ code: 1001, reason: 'the server is shutting down' });
    await closing;
    expect(own.logs.some((line) => line.msg === 'closed 1001 the server is shutting down true')).toBe(true);
    expect(own.logs.some((line) => line.msg === 'waitUntil after close')).toBe(true);
  });

  it('keep messages in order through backpressure, without buffering them in the daemon', async () => {
    const socket = await openSocket(daemon, 'chat');
    await socket.next();
    const before = process.memoryUsage().arrayBuffers;
    // The client stops reading; the worker sends 32 MiB at once.
    socket.ws.send('flood 512');
    socket.ws.pause();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const grown = process.memoryUsage().arrayBuffers - before;
    // The window (256 KiB) and the sockets' buffers, not the 32 MiB the worker holds.
    expect(grown).toBeLessThan(12 * 1024 * 1024);
    socket.ws.resume();
    for (let i = 0; i < 512; i++) {
      const message = (await socket.next()) as Buffer;
      expect(message.byteLength).toBe(65536);
      expect(message[0]).toBe(i % 251);
    }
    expect(await socket.next()).toBe('done');
    socket.ws.close();
    await socket.closed;
  });

  it("hold a client that sends faster than the worker takes its messages", async () => {
    const socket = await openSocket(daemon, 'chat', '/lazy');
    for (let i = 0; i < 512; i++) socket.ws.send(Buffer.alloc(65536, i % 251));
    // Of the 32 MiB sent during the worker's second without accept(), only the stream's window
    // (256 KiB: four messages, and one under way) reached its instance; the rest waited at the client.
    const { waited, inOrder } = JSON.parse((await socket.next()) as string);
    expect(inOrder).toBe(true);
    expect(waited).toBeLessThanOrEqual(8);
    socket.ws.close();
    await socket.closed;
  });

  it('refuse what the WebSocket API refuses, with Workers errors', async () => {
    const res = await daemon.fetchText('api');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      ends: [true, true, 1, 1, true],
      sendBeforeAccept: 'TypeError: WebSocket: you must call accept() on this WebSocket before sending messages.',
      badCode: 'InvalidAccessError: WebSocket: the close code must be 1000 or from 3000 to 4999, not 1001',
      longReason: 'SyntaxError: WebSocket: a close reason takes at most 123 bytes of UTF-8',
      tooBig: 'RangeError: WebSocket: a message of 1048577 bytes is over the limit of 1048576 bytes (1 MiB), as on Workers',
      notData: 'TypeError: WebSocket: send() takes a string, an ArrayBuffer or an ArrayBufferView',
      notASocket: 'TypeError: Response: webSocket must be a WebSocket (one end of a WebSocketPair)',
      wrongStatus: 'TypeError: Response: a Response with a webSocket must have status 101',
      plain101: 'RangeError: init["status"] must be in the range of 200 to 599, inclusive.',
      response: [101, true, null],
      notWs: "SyntaxError: WebSocket: the URL's scheme must be ws: or wss:, not ftp:",
      waitedForAccept: 'before accept',
      localClose: [1000, 'done', true],
      states: [3, 3],
      sendAfterClose: "TypeError: WebSocket: can't call send() after close().",
    });
  });

  it('answer a plain response, a bad handshake or a misplaced 101 over HTTP, saying why', async () => {
    await expect(openSocket(daemon, 'chat', '/deny')).rejects.toMatchObject({ status: 401, body: 'no entry' });
    const noKey = await rawRequest(daemon, 'chat', 'connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n');
    expect(noKey).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(noKey).toContain('Bad WebSocket handshake: its Sec-WebSocket-Key header is missing or is not 16 bytes in base64.');
    const oldVersion = await rawRequest(daemon, 'chat', 'connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 7\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n');
    expect(oldVersion).toMatch(/^HTTP\/1\.1 426 Upgrade Required\r\n/);
    expect(oldVersion.toLowerCase()).toContain('sec-websocket-version: 13\r\n');
    const misplaced = await daemon.fetchText('chat', '/101');
    expect(misplaced.status).toBe(500);
    expect(misplaced.text).toContain('The worker returned a WebSocket (status 101) to a request that did not ask for one');
    const accepted = await daemon.fetchText('chat', '/accepted');
    expect(accepted.status).toBe(500);
    expect(accepted.text).toContain("the Response's webSocket was accept()ed: return the end you did not accept");
  });
});

describe('a WebSocket under the limits', () => {
  let limited: TestDaemon;
  beforeAll(async () => {
    limited = await startTestDaemon(writeScripts({ 'chat.mjs': CHAT }), { cpuMs: 150, maxInflight: 1, maxWebsockets: 2 });
  });

  it('counts against --max-websockets, not --max-inflight: past it an upgrade gets 503, plain requests still pass', async () => {
    const first = await openSocket(limited, 'chat');
    const second = await openSocket(limited, 'chat');
    await Promise.all([first.next(), second.next()]);
    expect(limited.broker.stats()[0]).toMatchObject({ name: 'chat', webSockets: 2 });
    // Two idle sockets, and --max-inflight 1: a plain request is still served.
    expect(await limited.fetchText('chat')).toMatchObject({ status: 426, text: 'expected a WebSocket' });
    const third = await openSocket(limited, 'chat').catch((error: Error & { status?: number; body?: string }) => error);
    expect(third).toMatchObject({ status: 503 });
    expect((third as { body: string }).body).toMatch(/^Worker "chat" has 2 WebSockets open already \(limit 2, --max-websockets\)\. Retry shortly\./);
    first.ws.close();
    await first.closed;
    await until(() => limited.broker.stats()[0]!.webSockets === 1, 'the closed socket to leave the count');
    const again = await openSocket(limited, 'chat');
    expect(await again.next()).toMatch(/^hello/);
    for (const socket of [second, again]) socket.ws.close();
    await Promise.all([second.closed, again.closed]);
  });

  it('has the CPU limit per message, and a runaway handler closes it with 1011 saying why', async () => {
    const socket = await openSocket(limited, 'chat');
    await socket.next();
    // 8 × 60 ms: far over 150 ms in all, each message well under it.
    for (let i = 0; i < 8; i++) {
      socket.ws.send('burn 60');
      expect(await socket.next()).toBe('burnt');
    }
    socket.ws.send('spin');
    const { code, reason } = await socket.closed;
    expect(code).toBe(1011);
    expect(reason).toMatch(/^Worker "chat" exceeded its CPU time limit/);
    // The worker serves again, from a new instance.
    const again = await openSocket(limited, 'chat');
    expect(await again.next()).toMatch(/^hello/);
    again.ws.close();
    await again.closed;
  });
});

/** One sample of the daemon's /metrics (0 when absent); labels match whatever their order. */
async function metric(target: TestDaemon, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${target.adminUrl}/metrics`)).text();
  for (const line of text.split('\n')) {
    const match = /^([a-z_:][a-z0-9_:]*)\{(.*)\} (\S+)$/i.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...match[2]!.matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/gi)].map((m) => [m[1], m[2]]));
    if (Object.keys(found).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return 0;
}

/** Sends a GET with `headers` on a raw connection and returns all the daemon wrote before closing it. */
function rawRequest(target: TestDaemon, worker: string, headers: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(target.port, '127.0.0.1');
    let received = '';
    socket.on('connect', () => socket.write(`GET / HTTP/1.1\r\nhost: ${worker}.localhost:${target.port}\r\n${headers}\r\n`));
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
  });
}

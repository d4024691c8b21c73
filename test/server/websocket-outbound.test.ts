/**
 * WebSockets a worker opens itself: fetch() with `Upgrade: websocket` (the Response's webSocket),
 * and `new WebSocket(url)`, both carried by the daemon as a `ws` client under the egress policy
 * (src/broker/websocket-client.ts), against a real WebSocket origin on loopback.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';
import { openSocket } from '../helpers/websocket-client.js';
import { until } from '../helpers/until.js';

const RELAY = `
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const origin = url.searchParams.get('origin');
    if (url.pathname === '/refused') {
      const res = await fetch(origin + '/refuse', { headers: { upgrade: 'websocket' } });
      return new Response(res.status + ' ' + (await res.text()) + ' ' + res.webSocket);
    }
    if (url.pathname === '/denied') {
      try {
        await fetch('http://169.254.169.254/', { headers: { upgrade: 'websocket' } });
        return new Response('connected');
      } catch (error) {
        return new Response(error.message);
      }
    }
    if (url.pathname === '/client') {
      const ws = new WebSocket(origin.replace('http', 'ws') + '/echo', ['chat.v1']);
      const events = ['constructed ' + ws.readyState + ' ' + ws.url];
      await new Promise((resolve) => {
        ws.addEventListener('open', () => { events.push('open ' + ws.protocol + ' ' + ws.readyState); ws.send('ping'); });
        ws.addEventListener('message', (event) => { events.push('message ' + event.data); ws.close(1000, 'done'); });
        ws.addEventListener('error', () => events.push('error'));
        ws.addEventListener('close', (event) => { events.push('close ' + event.code); resolve(); });
      });
      const refused = new WebSocket(origin.replace('http', 'ws') + '/refuse');
      await new Promise((resolve) => {
        refused.addEventListener('error', () => events.push('refused: error'));
        refused.addEventListener('close', (event) => { events.push('refused: close ' + event.code + ' ' + refused.readyState); resolve(); });
      });
      return Response.json(events);
    }
    if (url.pathname === '/greeted') {
      // What a server that speaks first sends, gathered for a while after accept() (or open).
      const heard = [];
      let socket;
      if (url.searchParams.has('constructor')) {
        socket = new WebSocket(origin.replace('http', 'ws') + '/greet');
        socket.addEventListener('message', (event) => heard.push(event.data));
      } else {
        const upstream = await fetch(origin + (url.searchParams.has('close') ? '/greet-close' : '/greet'), { headers: { upgrade: 'websocket' } });
        socket = upstream.webSocket;
        socket.addEventListener('message', (event) => heard.push(event.data));
        socket.addEventListener('close', (event) => heard.push('close ' + event.code + ' ' + event.reason));
        await scheduler.wait(Number(url.searchParams.get('wait') ?? 0));
        socket.accept();
      }
      await scheduler.wait(300);
      socket.close(1000, 'done');
      return Response.json(heard);
    }
    // A relay, as Workers' WebSocket proxy example: the client's socket piped to the origin's.
    // /feed: the origin pushes messages, each of which costs the worker 25 ms of CPU.
    const feed = url.pathname === '/feed';
    const upstream = await fetch(origin + (feed ? '/feed' : '/echo'), { headers: { upgrade: 'websocket', 'x-token': 'secret' } });
    const backend = upstream.webSocket;
    backend.accept();
    const { 0: client, 1: server } = new WebSocketPair();
    server.accept();
    server.addEventListener('message', (event) => backend.send(event.data));
    backend.addEventListener('message', (event) => {
      if (feed) { const end = Date.now() + 25; while (Date.now() < end); }
      server.send(event.data);
    });
    server.addEventListener('close', () => backend.close(1000, 'the client left'));
    backend.addEventListener('close', () => server.close(1000, 'the origin closed'));
    return new Response(null, { status: 101, webSocket: client });
  },
};
`;

let origin: Server;
let originUrl: string;
const heard: Array<{ token: string | undefined; protocol: string | undefined }> = [];
const originCloses: Array<{ code: number; reason: string }> = [];
let daemon: TestDaemon;

beforeAll(async () => {
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => (offered.has('chat.v1') ? 'chat.v1' : false) });
  origin = createServer((_req, res) => res.end('a WebSocket origin'));
  origin.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 6\r\nconnection: close\r\n\r\nno way');
      return;
    }
    heard.push({ token: req.headers['x-token'] as string | undefined, protocol: req.headers['sec-websocket-protocol'] as string | undefined });
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (req.url === '/greet') {
        ws.send('welcome');
        ws.send('second');
      }
      if (req.url === '/greet-close') {
        ws.send('only');
        ws.close(1000, 'that is all');
      }
      if (req.url === '/feed') {
        let sent = 0;
        const timer = setInterval(() => (++sent <= 12 ? ws.send(`tick ${sent}`) : clearInterval(timer)), 30);
        ws.on('close', () => clearInterval(timer));
      }
      ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `origin: ${String(data)}`, { binary: isBinary }));
      ws.on('close', (code, reason) => originCloses.push({ code, reason: reason.toString() }));
    });
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  daemon = await startTestDaemon(writeScripts({ 'relay.mjs': RELAY }), { egressAllow: '127.0.0.1/32' });
});
afterAll(async () => {
  await closeDaemons();
  origin.closeAllConnections();
  await new Promise((resolve) => origin.close(resolve));
});

describe('a WebSocket a worker opens', () => {
  it('relays a client to an origin both ways, with the headers the worker sent, and closes with it', async () => {
    const socket = await openSocket(daemon, 'relay', `/?origin=${encodeURIComponent(originUrl)}`);
    expect(heard.at(-1)).toEqual({ token: 'secret', protocol: undefined });
    socket.ws.send('hello');
    expect(await socket.next()).toBe('origin: hello');
    socket.ws.send(Buffer.from([7, 8, 9]));
    expect(await socket.next()).toEqual(Buffer.from([7, 8, 9]));
    socket.ws.close(1000, 'bye');
    await socket.closed;
    await until(() => originCloses.some((c) => c.reason === 'the client left'), 'the origin to see the relay close');
    await until(() => daemon.broker.inflight === 0, 'the request to end');
  });

  it('delivers what a server sends the moment it accepts, before the worker has its socket', async () => {
    // The origin's first messages came in the read that brought its 101, before the worker's
    // fetch had resolved and made the socket they go to, and were dropped.
    for (const how of ['wait=0', 'wait=200', 'constructor']) {
      const res = await daemon.fetchText('relay', `/greeted?${how}&origin=${encodeURIComponent(originUrl)}`);
      expect({ how, status: res.status, heard: JSON.parse(res.text) }).toEqual({ how, status: 200, heard: ['welcome', 'second'] });
    }
    // One that says its piece and closes at once: the worker hears both, in order.
    const res = await daemon.fetchText('relay', `/greeted?close&origin=${encodeURIComponent(originUrl)}`);
    expect(JSON.parse(res.text)).toEqual(['only', 'close 1000 that is all']);
  });

  it("has the CPU limit per message of the origin's too: a feed relayed for longer than the limit in all is not stopped", async () => {
    const limited = await startTestDaemon(writeScripts({ 'relay.mjs': RELAY }), { egressAllow: '127.0.0.1/32', cpuMs: 150 });
    const socket = await openSocket(limited, 'relay', `/feed?origin=${encodeURIComponent(originUrl)}`);
    // 12 × 25 ms of the worker's CPU, twice the limit, none of it prompted by the client.
    for (let i = 1; i <= 12; i++) expect(await socket.next()).toBe(`tick ${i}`);
    socket.ws.close();
    expect((await socket.closed).code).toBe(1005);
    expect(limited.logs.filter((line) => line.msg === 'limit exceeded')).toEqual([]);
  });

  it('as new WebSocket(url): open, messages, close; a refused one fires error and close 1006', async () => {
    const res = await daemon.fetchText('relay', `/client?origin=${encodeURIComponent(originUrl)}`);
    expect(res.status).toBe(200);
    const wsUrl = `${originUrl.replace('http', 'ws')}/echo`;
    expect(JSON.parse(res.text)).toEqual([
      `constructed 0 ${wsUrl}`,
      'open chat.v1 1',
      'message origin: ping',
      'close 1000',
      'refused: error',
      'refused: close 1006 3',
    ]);
    expect(heard.at(-1)).toEqual({ token: undefined, protocol: 'chat.v1' });
  });

  it('gets a refusal as a plain Response, and is held to the egress policy', async () => {
    expect(await daemon.fetchText('relay', `/refused?origin=${encodeURIComponent(originUrl)}`)).toMatchObject({ status: 200, text: '403 no way null' });
    const denied = await daemon.fetchText('relay', '/denied');
    expect(denied.text).toMatch(/^fetch to http:\/\/169\.254\.169\.254\/ denied: 169\.254\.169\.254 is the instance metadata service/);
  });
});

/**
 * A second reference for the throughput benchmark: the least that edgeproc's
 * design can do per request. A bare `node:http` front process hands each request
 * to one child process over a socket pair, as length-prefixed binary frames (the
 * head as JSON: method, URL, raw headers), and the child answers each with a
 * frame holding the status and the hello example's body, which the front writes
 * out. No Request or Response objects, no streaming, no limits, no log line:
 * just the daemon → child → daemon hop that a process per tenant costs. Where
 * this serves less than a target asks of edgeproc, no code of edgeproc's can
 * reach that target on this machine with a process between the front door and
 * the tenant.
 */
import { answering, freePort, start, type RunningServer } from './processes.js';

/** Frames both ways: u32 length of what follows, u32 request id, then the payload. */
const FRONT = `
const http = require('node:http');
const { spawn } = require('node:child_process');
const child = spawn(process.execPath, ['-e', process.argv[2]], { env: {}, stdio: ['ignore', 'inherit', 'inherit', 'pipe'] });
child.on('exit', (code, signal) => { console.error('hop child exited', code, signal); process.exit(1); });
const channel = child.stdio[3];
const waiting = new Map();
let nextId = 0;
let pending = Buffer.alloc(0);
channel.on('data', (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  let at = 0;
  while (pending.length - at >= 8 && pending.length - at >= 4 + pending.readUInt32LE(at)) {
    const length = pending.readUInt32LE(at);
    const id = pending.readUInt32LE(at + 4);
    const status = pending.readUInt16LE(at + 8);
    const body = pending.subarray(at + 10, at + 4 + length);
    const res = waiting.get(id);
    waiting.delete(id);
    res.writeHead(status, { 'content-type': 'text/plain;charset=UTF-8', 'content-length': body.length });
    res.end(body);
    at += 4 + length;
  }
  pending = pending.subarray(at);
});
http.createServer((req, res) => {
  const id = ++nextId >>> 0;
  waiting.set(id, res);
  const head = Buffer.from(JSON.stringify({ method: req.method, url: req.url, headers: req.rawHeaders }));
  const frame = Buffer.allocUnsafe(8 + head.length);
  frame.writeUInt32LE(4 + head.length, 0);
  frame.writeUInt32LE(id, 4);
  head.copy(frame, 8);
  channel.write(frame);
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

/** The child: parses each head (the least a runtime must do to hand a tenant its request) and answers. */
const CHILD = `
const net = require('node:net');
const channel = new net.Socket({ fd: 3, readable: true, writable: true });
const body = Buffer.from('Hello from edgeproc!\\n');
let pending = Buffer.alloc(0);
channel.on('data', (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  let at = 0;
  // Every answer to one read goes out in one write, as edgeproc's runner batches its frames.
  channel.cork();
  while (pending.length - at >= 8 && pending.length - at >= 4 + pending.readUInt32LE(at)) {
    const length = pending.readUInt32LE(at);
    const id = pending.readUInt32LE(at + 4);
    const head = JSON.parse(pending.toString('utf8', at + 8, at + 4 + length));
    const frame = Buffer.allocUnsafe(10 + body.length);
    frame.writeUInt32LE(6 + body.length, 0);
    frame.writeUInt32LE(id, 4);
    frame.writeUInt16LE(head.method === 'GET' ? 200 : 405, 8);
    body.copy(frame, 10);
    channel.write(frame);
    at += 4 + length;
  }
  channel.uncork();
  pending = pending.subarray(at);
});
`;

export async function startBareHop(logPath: string): Promise<RunningServer> {
  const port = await freePort();
  return answering(start(process.execPath, ['-e', FRONT, String(port), CHILD], logPath), `http://127.0.0.1:${port}`);
}

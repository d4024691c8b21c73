import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

afterEach(closeDaemons);

const MiB = 1024 * 1024;
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const bigBody = randomBytes(3 * MiB);
const gzipText = 'compressed hello '.repeat(1000);

let origin: Origin;
let endlessClosedResolve!: () => void;
const endlessClosed = new Promise<void>((resolve) => (endlessClosedResolve = resolve));
beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://origin');
    switch (url.pathname) {
      case '/echo-headers': {
        req.resume();
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
        return;
      }
      case '/hash': {
        const hash = createHash('sha256');
        let bytes = 0;
        req.on('data', (chunk: Buffer) => {
          bytes += chunk.byteLength;
          hash.update(chunk);
        });
        req.on('end', () => res.end(`${req.method} ${req.headers['transfer-encoding']} ${bytes} ${hash.digest('hex')}`));
        return;
      }
      case '/big': {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        // Written in pieces, so the body reaches the tenant as a stream, not one buffer.
        let at = 0;
        const next = () => {
          while (at < bigBody.byteLength) {
            const piece = bigBody.subarray(at, at + 64 * 1024);
            at += piece.byteLength;
            if (!res.write(piece)) return void res.once('drain', next);
          }
          res.end();
        };
        next();
        return;
      }
      case '/redirect':
        req.resume();
        res.writeHead(302, { location: '/final?from=redirect' }).end();
        return;
      case '/final':
        req.resume();
        res.end(`final ${url.search}`);
        return;
      case '/endless':
        // Headers and a first piece, then nothing: the body never ends unless someone cancels it.
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('x'.repeat(1000));
        res.on('close', () => endlessClosedResolve());
        return;
      case '/gzip':
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
        res.end(gzipSync(gzipText));
        return;
      default:
        req.resume();
        res.writeHead(404).end('no such origin path');
    }
  });
});
afterAll(() => origin.close());

async function daemonWith(source: string): Promise<TestDaemon> {
  // The origin is on loopback, which tenant fetch may reach only when allowed.
  return startTestDaemon(writeScripts({ 'out.mjs': source.replaceAll('ORIGIN', origin.url) }), { egressAllow: '127.0.0.1/32' });
}

/** A port nothing listens on: bound, noted and closed again. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('outbound fetch from a tenant', () => {
  it('performs a GET with the tenant\'s headers', async () => {
    const daemon = await daemonWith(`
      export default {
        async fetch() {
          const res = await fetch('ORIGIN/echo-headers?a=1', { headers: { 'x-tenant': 'yes', accept: 'application/json' } });
          return new Response(res.status + ' ' + res.headers.get('content-type') + ' ' + await res.text());
        },
      };`);
    const res = await daemon.fetchText('out');
    expect(res.status).toBe(200);
    const [status, type, json] = splitTwo(res.text);
    expect(status).toBe('200');
    expect(type).toBe('application/json');
    const echoed = JSON.parse(json);
    expect(echoed).toMatchObject({ method: 'GET', url: '/echo-headers?a=1' });
    expect(echoed.headers).toMatchObject({ 'x-tenant': 'yes', accept: 'application/json', host: `127.0.0.1:${origin.port}` });
  });

  it('POSTs a body the tenant streams from a ReadableStream', async () => {
    const daemon = await daemonWith(`
      export default {
        async fetch() {
          let i = 0;
          const body = new ReadableStream({
            pull(controller) {
              if (i === 40) return controller.close();
              controller.enqueue(new Uint8Array(50000).fill(i++));
            },
          });
          const res = await fetch('ORIGIN/hash', { method: 'POST', body, duplex: 'half' });
          return new Response(await res.text());
        },
      };`);
    const expected = Buffer.concat(Array.from({ length: 40 }, (_, i) => Buffer.alloc(50000, i)));
    const res = await daemon.fetchText('out');
    expect(res).toMatchObject({ status: 200, text: `POST chunked ${expected.byteLength} ${sha256(expected)}` });
  });

  it('streams an origin response back through the tenant to the client intact', async () => {
    const daemon = await daemonWith(`
      export default {
        async fetch() {
          const res = await fetch('ORIGIN/big');
          return new Response(res.body, { headers: { 'x-origin-status': String(res.status) } });
        },
      };`);
    const res = await request(`${daemon.url}/`, { headers: { host: 'out.localhost' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-origin-status']).toBe('200');
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(body.byteLength).toBe(bigBody.byteLength);
    expect(sha256(body)).toBe(sha256(bigBody));
  });

  it('follows a redirect and reports where it ended', async () => {
    const daemon = await daemonWith(`
      export default {
        async fetch() {
          const res = await fetch('ORIGIN/redirect');
          const manual = await fetch('ORIGIN/redirect', { redirect: 'manual' });
          return new Response([res.status, res.redirected, res.url, await res.text(), manual.status, manual.headers.get('location')].join('|'));
        },
      };`);
    const res = await daemon.fetchText('out');
    expect(res).toMatchObject({
      status: 200,
      text: `200|true|${origin.url}/final?from=redirect|final ?from=redirect|302|/final?from=redirect`,
    });
  });

  it('rejects with a TypeError the tenant can catch when the connection is refused', async () => {
    const port = await closedPort();
    const daemon = await daemonWith(`
      export default {
        async fetch() {
          try {
            await fetch('http://127.0.0.1:${port}/nothing');
            return new Response('no error?');
          } catch (error) {
            return new Response((error instanceof TypeError) + ' ' + error.name + ': ' + error.message);
          }
        },
      };`);
    const res = await daemon.fetchText('out');
    expect(res).toMatchObject({
      status: 200,
      text: `true TypeError: fetch http://127.0.0.1:${port}/nothing failed: connect ECONNREFUSED 127.0.0.1:${port}`,
    });
    // The failed subrequest leaves the instance healthy.
    expect((await daemon.fetchText('out')).status).toBe(200);
  });

  it('decodes a gzip-encoded origin response for .text()', async () => {
    const daemon = await daemonWith(`
      export default {
        async fetch(request) {
          const res = await fetch('ORIGIN/gzip');
          if (new URL(request.url).pathname === '/pass') return res;
          const text = await res.text();
          return new Response(text.length + ':' + text.slice(0, 17));
        },
      };`);
    const res = await daemon.fetchText('out');
    expect(res).toMatchObject({ status: 200, text: `${gzipText.length}:compressed hello ` });
    // Passed through unchanged, the body is compressed again on the way out and matches its headers.
    const passed = await request(`${daemon.url}/pass`, { headers: { host: 'out.localhost' } });
    expect(passed.statusCode).toBe(200);
    expect(passed.headers['content-encoding']).toBe('gzip');
    const raw = Buffer.from(await passed.body.arrayBuffer());
    if (passed.headers['content-length'] !== undefined) expect(Number(passed.headers['content-length'])).toBe(raw.byteLength);
    expect(gunzipSync(raw).toString()).toBe(gzipText);
  });
});

describe('outbound fetch, cut short', () => {
  it('cancels a subresponse body the tenant never read once its request is done', async () => {
    const daemon = await daemonWith(`
      export default {
        async fetch() {
          const res = await fetch('ORIGIN/endless');
          return new Response('origin said ' + res.status);
        },
      };`);
    expect(await daemon.fetchText('out')).toMatchObject({ status: 200, text: 'origin said 200' });
    // Without cancellation the origin connection stays open until the instance dies.
    await endlessClosed;
    expect(daemon.logs.filter((r) => r.level === 'warn' || r.level === 'error')).toEqual([]);
    expect(await daemon.fetchText('out')).toMatchObject({ status: 200, text: 'origin said 200' });
  });

  it('aborts the origin request when the tenant aborts its fetch', async () => {
    const daemon = await daemonWith(`
      export default {
        async fetch() {
          const controller = new AbortController();
          const pending = fetch('ORIGIN/gate/abort-me', { signal: controller.signal });
          await (await fetch('ORIGIN/gate/trigger')).text();
          controller.abort();
          try {
            await pending;
            return new Response('not aborted');
          } catch (error) {
            return new Response(error.name);
          }
        },
      };`);
    const res = daemon.fetchText('out');
    await origin.arrived('abort-me');
    await origin.arrived('trigger');
    origin.release('trigger');
    expect(await res).toMatchObject({ status: 200, text: 'AbortError' });
    await origin.closed('abort-me');
  });
});

function splitTwo(text: string): [string, string, string] {
  const first = text.indexOf(' ');
  const second = text.indexOf(' ', first + 1);
  return [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
}

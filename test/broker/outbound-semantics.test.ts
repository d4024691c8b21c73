/**
 * What a tenant's fetch does on the wire, now that the daemon carries it out on undici's
 * dispatcher instead of undici's fetch (src/broker/dispatch-fetch.ts): the headers sent, the
 * response as the tenant sees it, decoding, redirects and what fetch refuses, and flow control
 * back to the origin. One daemon serves every tenant of this file.
 */
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

const TEXT = 'decoded hello '.repeat(200);
const MiB = 1024 * 1024;
/** Bytes the /flood origin managed to write before the client stopped reading it. */
let flooded = 0;
let floodDone!: () => void;
const floodClosed = new Promise<void>((resolve) => (floodDone = resolve));

let origin: Origin;
/** A second origin (another port: another origin to fetch), where redirects land. */
let other: Origin;
let daemon: TestDaemon;

const echoHeaders = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
  let body = '';
  req.on('data', (chunk: Buffer) => (body += chunk));
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  });
};

beforeAll(async () => {
  other = await startOrigin(echoHeaders);
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://origin');
    const coded = (coding: string, bytes: Buffer) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': coding });
      res.end(bytes);
    };
    switch (url.pathname) {
      case '/echo-headers':
        return echoHeaders(req, res);
      case '/made': {
        req.resume();
        res.statusCode = 201;
        res.statusMessage = 'Made It';
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.setHeader('x-multi', ['1', '2']);
        res.end('made');
        return;
      }
      case '/deflate':
        return coded('deflate', deflateSync(TEXT));
      case '/deflate-raw':
        return coded('deflate', deflateRawSync(TEXT));
      case '/br':
        return coded('br', brotliCompressSync(TEXT));
      case '/gzip-then-br':
        return coded('gzip, br', brotliCompressSync(gzipSync(TEXT)));
      case '/unknown':
        return coded('x-custom', Buffer.from('as it came'));
      case '/see-other':
        req.resume();
        res.writeHead(303, { location: '/echo-headers?after=303' }).end();
        return;
      case '/temporary':
        req.resume();
        res.writeHead(307, { location: '/echo-headers' }).end();
        return;
      case '/elsewhere':
        req.resume();
        res.writeHead(302, { location: `${other.url}/echo-headers` }).end();
        return;
      case '/loop':
        req.resume();
        res.writeHead(302, { location: '/loop' }).end();
        return;
      case '/to-file':
        req.resume();
        res.writeHead(302, { location: 'file:///etc/passwd' }).end();
        return;
      case '/flood': {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 7);
        const more = () => {
          // Bounded, so that a broken flow control fails the test instead of filling memory.
          while (flooded < 256 * MiB) {
            flooded += chunk.byteLength;
            if (!res.write(chunk)) return void res.once('drain', more);
          }
          res.end();
        };
        res.on('close', floodDone);
        more();
        return;
      }
      default:
        req.resume();
        res.writeHead(404).end('no such origin path');
    }
  });
  const tenants: Record<string, string> = {
    'headers.mjs': `export default { async fetch() {
      const get = await fetch('ORIGIN/echo-headers', { headers: { host: 'elsewhere.example', 'user-agent': 'tenant-agent/1', 'x-tenant': 'yes' } });
      const post = await fetch('ORIGIN/echo-headers', { method: 'POST' });
      return Response.json({ get: await get.json(), post: await post.json() });
    } };`,
    'uploads.mjs': `export default { async fetch() {
      const seen = async (init) => {
        const echoed = await (await fetch('ORIGIN/echo-headers', init)).json();
        return { length: echoed.headers['content-length'] ?? null, chunked: echoed.headers['transfer-encoding'] ?? null, type: echoed.headers['content-type'] ?? null, body: echoed.body };
      };
      const fixed = new FixedLengthStream(11);
      const writer = fixed.writable.getWriter();
      writer.write(new TextEncoder().encode('hello world')).then(() => writer.close());
      return Response.json({
        text: await seen({ method: 'PUT', body: 'hello' }),
        form: await seen({ method: 'POST', body: new URLSearchParams({ a: '1', b: 'two' }) }),
        fixed: await seen({ method: 'POST', body: fixed.readable, duplex: 'half' }),
        stream: await seen({ method: 'POST', body: new Blob(['blob']).stream(), duplex: 'half' }),
      });
    } };`,
    'response.mjs': `export default { async fetch() {
      const res = await fetch('ORIGIN/made');
      const head = await fetch('ORIGIN/made', { method: 'HEAD' });
      return new Response([res.status, res.statusText, res.headers.getSetCookie().join(';'), res.headers.get('x-multi'), await res.text(),
        head.status, head.statusText, JSON.stringify(await head.text())].join('|'));
    } };`,
    'decode.mjs': `export default { async fetch() {
      const out = [];
      for (const path of ['deflate', 'deflate-raw', 'br', 'gzip-then-br', 'unknown']) {
        const res = await fetch('ORIGIN/' + path);
        const text = await res.text();
        out.push(path + ':' + (text === ${JSON.stringify(TEXT)} ? 'decoded' : text) + ':' + res.headers.get('content-encoding'));
      }
      return new Response(out.join('\\n'));
    } };`,
    'redirects.mjs': `export default { async fetch() {
      const seeOther = await fetch('ORIGIN/see-other', { method: 'POST', body: 'posted', headers: { 'content-type': 'text/plain' } });
      const elsewhere = await fetch('ORIGIN/elsewhere', { headers: { authorization: 'Bearer secret', cookie: 'session=1', 'x-keep': 'kept' } });
      const temporary = await fetch('ORIGIN/temporary', { method: 'PUT', body: JSON.stringify({ sent: 'twice' }), headers: { 'content-type': 'application/json' } });
      return Response.json({ seeOther: await seeOther.json(), seeOtherUrl: seeOther.url, seeOtherRedirected: seeOther.redirected,
        elsewhere: await elsewhere.json(), elsewhereUrl: elsewhere.url, temporary: await temporary.json() });
    } };`,
    'refused.mjs': `export default { async fetch() {
      const out = [];
      const attempt = async (label, url, init) => {
        try { const res = await fetch(url, init); out.push(label + ': ' + res.status); }
        catch (error) { out.push(label + ': ' + error.name + ': ' + error.message); }
      };
      await attempt('error mode', 'ORIGIN/see-other', { redirect: 'error' });
      await attempt('streamed 307', 'ORIGIN/temporary', { method: 'PUT', body: new Blob(['once only']).stream(), duplex: 'half' });
      await attempt('loop', 'ORIGIN/loop');
      await attempt('to file', 'ORIGIN/to-file');
      const res = await fetch('ORIGIN/echo-headers');
      out.push('after: ' + res.status);
      return new Response(out.join('\\n'));
    } };`,
    'slow.mjs': `export default { async fetch() {
      const res = await fetch('ORIGIN/flood');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const reader = res.body.getReader();
      const { value } = await reader.read();
      await reader.cancel();
      return new Response('read ' + value.byteLength);
    } };`,
  };
  for (const name of Object.keys(tenants)) tenants[name] = tenants[name]!.replaceAll('ORIGIN', origin.url);
  daemon = await startTestDaemon(writeScripts(tenants), { egressAllow: '127.0.0.1/32' });
});
afterAll(async () => {
  await closeDaemons();
  await Promise.all([origin.close(), other.close()]);
});

describe('outbound fetch on the wire', () => {
  it("sends the tenant's headers and fetch's defaults, but not the tenant's Host", async () => {
    const res = await daemon.fetchText('headers');
    expect(res.status).toBe(200);
    const { get, post } = JSON.parse(res.text);
    expect(get.headers).toMatchObject({
      host: `127.0.0.1:${origin.port}`,
      'user-agent': 'tenant-agent/1',
      'x-tenant': 'yes',
      accept: '*/*',
      'accept-encoding': 'gzip, deflate',
    });
    // A POST without a body says so, as fetch does.
    expect(post).toMatchObject({ method: 'POST', body: '' });
    expect(post.headers['content-length']).toBe('0');
    expect(post.headers['user-agent']).toBeTruthy();
  });

  it('sends a body of known length with its Content-Length, as fetch does, and only a stream chunked', async () => {
    const res = await daemon.fetchText('uploads');
    expect(res.status).toBe(200);
    // Chunked uploads are refused by many origins (object stores answer 411 Length Required).
    expect(JSON.parse(res.text)).toEqual({
      text: { length: '5', chunked: null, type: 'text/plain;charset=UTF-8', body: 'hello' },
      form: { length: '9', chunked: null, type: 'application/x-www-form-urlencoded;charset=UTF-8', body: 'a=1&b=two' },
      fixed: { length: '11', chunked: null, type: null, body: 'hello world' },
      stream: { length: null, chunked: 'chunked', type: null, body: 'blob' },
    });
  });

  it('gives the tenant the status text, every repeated header and a HEAD without a body', async () => {
    const res = await daemon.fetchText('response');
    expect(res).toMatchObject({ status: 200, text: '201|Made It|a=1;b=2|1, 2|made|201|Made It|""' });
  });

  it('decodes deflate (zlib and raw), br and stacked codings, and passes an unknown coding as it came', async () => {
    const res = await daemon.fetchText('decode');
    expect(res.status).toBe(200);
    expect(res.text.split('\n')).toEqual([
      'deflate:decoded:deflate',
      'deflate-raw:decoded:deflate',
      'br:decoded:br',
      'gzip-then-br:decoded:gzip, br',
      'unknown:as it came:x-custom',
    ]);
  });

  it('follows a 303 after a POST as a GET without the body, a 307 with the body again, and drops credentials on the way to another origin', async () => {
    const res = await daemon.fetchText('redirects');
    expect(res.status).toBe(200);
    const { seeOther, seeOtherUrl, seeOtherRedirected, elsewhere, elsewhereUrl, temporary } = JSON.parse(res.text);
    // A body the tenant gave whole is sent again after a 307, method and all, as fetch does.
    expect(temporary).toMatchObject({ method: 'PUT', url: '/echo-headers', body: '{"sent":"twice"}' });
    expect(temporary.headers).toMatchObject({ 'content-type': 'application/json', 'content-length': '16' });
    expect(seeOther).toMatchObject({ method: 'GET', url: '/echo-headers?after=303', body: '' });
    expect(seeOther.headers['content-type']).toBeUndefined();
    expect(seeOtherUrl).toBe(`${origin.url}/echo-headers?after=303`);
    expect(seeOtherRedirected).toBe(true);
    expect(elsewhereUrl).toBe(`${other.url}/echo-headers`);
    expect(elsewhere.headers).toMatchObject({ 'x-keep': 'kept', host: `127.0.0.1:${other.port}` });
    expect(elsewhere.headers.authorization).toBeUndefined();
    expect(elsewhere.headers.cookie).toBeUndefined();
  });

  it('rejects, with a reason, what fetch refuses to follow, and the instance fetches on', async () => {
    const res = await daemon.fetchText('refused');
    expect(res.status).toBe(200);
    const lines = res.text.split('\n');
    expect(lines[0]).toMatch(/^error mode: TypeError: .*redirected \(303\).*redirect mode is 'error'/);
    expect(lines[1]).toMatch(/^streamed 307: TypeError: .*redirected \(307\) a request whose body was streamed.*redirect: 'manual'/);
    expect(lines[2]).toMatch(/^loop: TypeError: .*redirect count exceeded/);
    expect(lines[3]).toMatch(/^to file: TypeError: .*redirected to file:/);
    expect(lines[4]).toBe('after: 200');
  });

  it('stops reading from the origin while the tenant does not read its body', async () => {
    const res = await daemon.fetchText('slow');
    expect(res).toMatchObject({ status: 200, text: expect.stringMatching(/^read \d+$/) });
    await floodClosed;
    // A 256 KiB window to the child, plus what the loopback sockets hold; without flow control
    // the daemon would have read the whole 256 MiB in the second the tenant waited.
    expect(flooded).toBeLessThan(32 * MiB);
  });
});

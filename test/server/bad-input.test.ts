/**
 * Bad input on both ports gets a clear error and changes nothing else
 * (DESIGN invariant 6): malformed HTTP, oversized headers and bodies on the
 * front door, and every kind of invalid admin request. Each test also checks
 * that GET /workers reads the same afterwards and the deployed worker still
 * answers as before.
 */
import { connect } from 'node:net';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

afterAll(closeDaemons);

const SCRIPTS = {
  'app.mjs': `export default { fetch() { return new Response('app v1'); } };`,
  'upload.mjs': `export default { async fetch(request) { return new Response('got ' + (await request.arrayBuffer()).byteLength); } };`,
};

interface WorkerRow {
  name: string;
  requests: number;
  inflight: number;
  [key: string]: unknown;
}

async function admin(daemon: TestDaemon, method: string, path: string, body?: string | Buffer | AsyncIterable<Buffer>, headers: Record<string, string> = {}) {
  const res = await request(`${daemon.adminUrl}${path}`, { method: method as 'GET', body, headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** GET /workers' rows once nothing is in flight (a request cut short is in flight until its child lets go of it). */
async function workers(daemon: TestDaemon, headers: Record<string, string> = {}): Promise<WorkerRow[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const rows = (await admin(daemon, 'GET', '/workers', undefined, headers)).json().workers as WorkerRow[];
    if (rows.every((w) => w.inflight === 0) || Date.now() > deadline) return rows;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A daemon serving SCRIPTS with an instance of each already started, so that what follows changes
 * none. Without flags, one daemon serves every test of the file, each checking that its bad input
 * changed nothing: a daemon each (with its pool and two instances) took most of the file's ~58 s
 * in CI, beside the heaviest files.
 */
let shared: Promise<TestDaemon> | null = null;
function start(flags: Parameters<typeof startTestDaemon>[1] = {}): Promise<TestDaemon> {
  if (Object.keys(flags).length > 0) return startWith(flags);
  // Never evicted while the file runs (a worker idle for the default 60 s would be).
  return (shared ??= startWith({ idleTimeout: 600_000 }));
}

async function startWith(flags: Parameters<typeof startTestDaemon>[1] = {}): Promise<TestDaemon> {
  const daemon = await startTestDaemon(writeScripts(SCRIPTS), flags);
  const auth = flags.adminToken ? { authorization: `Bearer ${flags.adminToken}` } : {};
  expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'app v1' });
  expect(await daemon.fetchText('upload', '/', { method: 'POST', body: 'warm' })).toMatchObject({ status: 200, text: 'got 4' });
  expect((await workers(daemon, auth)).map((w) => w.instances)).toEqual([1, 1]);
  return daemon;
}

/**
 * Nothing changed: GET /workers reads as `before` but for the requests the bad
 * input itself made on `counted` workers (each one more request, and its CPU
 * time), and app answers as before.
 */
async function expectUnchanged(daemon: TestDaemon, before: WorkerRow[], counted: string[] = [], headers: Record<string, string> = {}) {
  const expected = before.map((w) => (counted.includes(w.name) ? { ...w, requests: w.requests + 1, cpuMs: expect.any(Number) } : w));
  expect(await workers(daemon, headers)).toEqual(expected);
  expect(await daemon.fetchText('app')).toMatchObject({ status: 200, text: 'app v1' });
}

interface RawAnswer {
  status: number;
  head: string;
  body: string;
  /** The server ended the connection (FIN or reset) rather than the client giving up. */
  closed: boolean;
}

/**
 * Writes `bytes` on a new connection and reads what comes back until the server closes it, or
 * with `oneAnswer`, until one whole response is in (the connection may stay open: waiting out
 * `waitMs` for each cost these tests ~10 s in all).
 */
function raw(port: number, bytes: string | Buffer, waitMs = 5_000, oneAnswer = false): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body: split < 0 ? '' : text.slice(split + 4), closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (oneAnswer && isWholeResponse(Buffer.concat(chunks).toString('latin1'))) finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.write(bytes);
  });
}

/** One whole HTTP/1.1 response, framed by Content-Length or chunked. */
function isWholeResponse(text: string): boolean {
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) return false;
  const head = text.slice(0, split);
  const body = text.slice(split + 4);
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (length) return body.length >= Number(length[1]);
  return /\r\ntransfer-encoding: *chunked/i.test(head) && body.endsWith('0\r\n\r\n');
}

describe('malformed HTTP on the front door', () => {
  it.each([
    ['a garbage request line', 'GARBAGE\r\n\r\n', 'Invalid method encountered (HPE_INVALID_METHOD)'],
    ['an unknown HTTP version', 'GET / HTTP/7.1\r\nHost: app.localhost\r\n\r\n', 'Invalid HTTP version (HPE_INVALID_VERSION)'],
    ['a header line without a colon', 'GET / HTTP/1.1\r\nHost: app.localhost\r\nBad Header\r\n\r\n', 'Invalid header token (HPE_INVALID_HEADER_TOKEN)'],
    [
      'both Content-Length and Transfer-Encoding',
      'POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      "Transfer-Encoding can't be present with Content-Length (HPE_INVALID_TRANSFER_ENCODING)",
    ],
    [
      'two different Content-Lengths',
      'POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
      'Duplicate Content-Length (HPE_UNEXPECTED_CONTENT_LENGTH)',
    ],
    ['a Content-Length that is not a number', 'POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5x\r\n\r\nhello', 'Invalid character in Content-Length (HPE_INVALID_CONTENT_LENGTH)'],
    ['a bad chunk size', 'POST / HTTP/1.1\r\nHost: upload.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', 'Invalid character in chunk size (HPE_INVALID_CHUNK_SIZE)'],
  ])('answers %s with 400 and the parser’s reason, closes the connection, and serves on', async (_what, bytes, reason) => {
    const daemon = await start();
    const before = await workers(daemon);
    const answer = await raw(daemon.port, bytes);
    expect(answer).toMatchObject({ status: 400, closed: true });
    expect(answer.head).toMatch(/\r\nConnection: close(\r\n|$)/);
    expect(answer.body).toBe(`Bad request: the request is not valid HTTP/1.1: ${reason}. The connection is closed.\n`);
    // The bad chunk size reached the worker (its head was valid) and was cut off there.
    await expectUnchanged(daemon, before, bytes.includes('zz') ? ['upload'] : []);
  });

  it('answers a valid request before a malformed one on the same connection, then 400 and close', async () => {
    const daemon = await start();
    const before = await workers(daemon);
    const answer = await raw(daemon.port, 'GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\nGET / HTTP/1.1\r\nHost: app.localhost\r\nBad Header\r\n\r\n');
    expect(answer.status).toBe(200);
    expect(answer.closed).toBe(true);
    const second = answer.body.slice(answer.body.indexOf('HTTP/1.1 '));
    expect(answer.body.startsWith('app v1')).toBe(true);
    expect(second).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(second).toContain('Invalid header token (HPE_INVALID_HEADER_TOKEN)');
    await expectUnchanged(daemon, before, ['app']);
  });

  it('answers headers past Node’s limit with 431 saying so', async () => {
    const daemon = await start();
    const before = await workers(daemon);
    const answer = await raw(daemon.port, `GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(answer).toMatchObject({ status: 431, closed: true });
    expect(answer.body).toBe(
      "Request header fields too large: the request line and headers together exceed 16384 bytes (Node's --max-http-header-size). Send fewer or smaller headers.\n",
    );
    await expectUnchanged(daemon, before);
  });

  it.each([
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: upload.localhost\r\n\r\n', 'The request has 2 Host headers; send exactly one.'],
    ['no Host header', 'GET / HTTP/1.1\r\n\r\n', 'The request has no Host header (HTTP/1.1 requires one); it names the worker, as NAME.localhost:PORT.'],
    ['a Host that is not a host', 'GET / HTTP/1.1\r\nHost: app.localhost:99999:x\r\n\r\n', 'The Host header "app.localhost:99999:x" is not a valid host[:port].'],
    ['the asterisk target', 'OPTIONS * HTTP/1.1\r\nHost: app.localhost\r\n\r\n', 'The request target "*" (OPTIONS *) is not supported: send a path.'],
    ['an absolute target that is not a URL', 'GET http://[::1 HTTP/1.1\r\nHost: app.localhost\r\n\r\n', 'The request target "http://[::1" is not a valid URL or path.'],
  ])('answers %s with 400 before any worker sees it', async (_what, bytes, reason) => {
    const daemon = await start();
    const before = await workers(daemon);
    // Well framed, so the connection could stay open; the test closes it once the answer is in.
    const answer = await raw(daemon.port, bytes, 5_000, true);
    expect(answer.status).toBe(400);
    expect(answer.head).toMatch(/\r\nedgeproc-request-id: [0-9a-f]{16}\r\n/);
    expect(answer.body).toMatch(new RegExp(`^Bad request: ${reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n\nrequest id: [0-9a-f]{16}\n$`));
    await expectUnchanged(daemon, before);
  });

  it('judges every Host on its own, whatever Hosts came before it', async () => {
    // The daemon remembers Hosts that made a URL (request-url.ts); an empty Host makes one
    // with some paths only (`http:///x` parses, `http:///` does not), so it is never remembered.
    const daemon = await start();
    const empty = await raw(daemon.port, 'GET /x HTTP/1.1\r\nHost: \r\n\r\n', 5_000, true);
    expect(empty.status).toBe(404);
    const emptyRoot = await raw(daemon.port, 'GET / HTTP/1.1\r\nHost: \r\n\r\n', 5_000, true);
    expect(emptyRoot.status).toBe(400);
    expect(emptyRoot.body).toMatch(/^Bad request: The Host header "" is not a valid host\[:port\]\./);
    for (let i = 0; i < 2; i++) {
      const bad = await raw(daemon.port, 'GET / HTTP/1.1\r\nHost: app.localhost:99999\r\n\r\n', 5_000, true);
      expect(bad.status).toBe(400);
      const good = await raw(daemon.port, 'GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n', 5_000, true);
      expect(good.status).toBe(200);
    }
  });

  it('answers CONNECT with 501 instead of dropping the connection', async () => {
    const daemon = await start();
    const before = await workers(daemon);
    const answer = await raw(daemon.port, 'CONNECT app.localhost:443 HTTP/1.1\r\nHost: app.localhost:443\r\n\r\n');
    expect(answer).toMatchObject({ status: 501, closed: true, body: 'CONNECT is not supported: edgeproc serves workers, it is not a proxy.\n' });
    await expectUnchanged(daemon, before);
  });
});

describe('oversized request bodies', () => {
  const TOO_LARGE = 'The request body is larger than this worker accepts (1048576 bytes, --request-body-mb).';

  it('answers 413 from the Content-Length alone, without starting the worker', async () => {
    const daemon = await startTestDaemon(writeScripts(SCRIPTS), { requestBodyMb: 1 });
    const before = await workers(daemon);
    const res = await daemon.fetchText('upload', '/', { method: 'POST', body: Buffer.alloc(1024 * 1024 + 1) });
    expect(res.status).toBe(413);
    expect(res.text).toBe(`${TOO_LARGE}\n\nrequest id: ${res.headers['edgeproc-request-id']}\n`);
    // Counted as a request of upload, but it never got an instance: the body was refused before the request went anywhere.
    await expectUnchanged(daemon, before, ['upload']);
    expect((await workers(daemon)).find((w) => w.name === 'upload')).toMatchObject({ instances: 0, coldStarts: 0 });
    // Exactly at the limit is fine.
    expect(await daemon.fetchText('upload', '/', { method: 'POST', body: Buffer.alloc(1024 * 1024) })).toMatchObject({ status: 200, text: 'got 1048576' });
  });

  it('answers 413 when a chunked body grows past the limit, and the connection serves the next request', async () => {
    const daemon = await start({ requestBodyMb: 1 });
    const before = await workers(daemon);
    // 64 KiB chunks up to 4 MiB, with no Content-Length: the limit is found while streaming.
    const chunk = Buffer.alloc(64 * 1024, 1);
    const body = (async function* () {
      for (let i = 0; i < 64; i++) yield chunk;
    })();
    const res = await daemon.fetchText('upload', '/', { method: 'POST', body });
    expect(res.status).toBe(413);
    expect(res.text).toBe(`${TOO_LARGE}\n\nrequest id: ${res.headers['edgeproc-request-id']}\n`);
    await expectUnchanged(daemon, before, ['upload']);
    // The instance that was reading the body was not harmed: it serves the next upload.
    expect(await daemon.fetchText('upload', '/', { method: 'POST', body: 'again' })).toMatchObject({ status: 200, text: 'got 5' });
    expect((await workers(daemon)).find((w) => w.name === 'upload')).toMatchObject({ instances: 1, coldStarts: 1, errors: 0 });
  });

  it('answers 413 to a raw chunked upload that keeps going, and reads on to the next request', async () => {
    const daemon = await start({ requestBodyMb: 1 });
    const before = await workers(daemon);
    const chunk = `10000\r\n${'a'.repeat(0x10000)}\r\n`;
    const bytes =
      'POST / HTTP/1.1\r\nHost: upload.localhost\r\nTransfer-Encoding: chunked\r\n\r\n' +
      chunk.repeat(40) +
      '0\r\n\r\nGET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n';
    const answer = await raw(daemon.port, bytes);
    expect(answer.status).toBe(413);
    expect(answer.body).toContain(TOO_LARGE);
    expect(answer.body).toMatch(/HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\napp v1$/);
    await expectUnchanged(daemon, before, ['upload', 'app']);
  });
});

describe('invalid admin requests', () => {
  it('answers an unknown route with 404 and a wrong method with 405 and Allow', async () => {
    const daemon = await start();
    const before = await workers(daemon);
    const unknown = await admin(daemon, 'GET', '/nothing/here');
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toEqual({ error: { code: 'ERR_NOT_FOUND', message: 'no admin endpoint /nothing/here; try GET /workers' } });
    const post = await admin(daemon, 'POST', '/workers', 'x');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET');
    expect(post.json().error).toEqual({ code: 'ERR_METHOD', message: 'method not allowed here; allowed: GET' });
    const patch = await admin(daemon, 'PATCH', '/workers/app', 'x');
    expect(patch.status).toBe(405);
    expect(patch.headers.allow).toBe('GET, PUT, DELETE');
    await expectUnchanged(daemon, before);
  });

  it('answers an invalid worker name and an empty script with 400 naming the problem', async () => {
    const daemon = await start();
    const before = await workers(daemon);
    const name = await admin(daemon, 'PUT', '/workers/Bad_Name', SCRIPTS['app.mjs']);
    expect(name.status).toBe(400);
    expect(name.json()).toEqual({
      error: { code: 'ERR_WORKER_NAME', message: 'invalid worker name "Bad_Name": use 1–63 lower-case letters, digits and dashes (it becomes a host label)' },
    });
    const empty = await admin(daemon, 'PUT', '/workers/app', '');
    expect(empty.status).toBe(400);
    expect(empty.json()).toEqual({ error: { code: 'ERR_BAD_REQUEST', message: 'the request body is empty: send the script as the body' } });
    await expectUnchanged(daemon, before);
  });

  it.each([
    ['cpuMs=abc', 'query parameter cpuMs must be a whole number, got "abc"'],
    ['memoryMb=', 'query parameter memoryMb must be a whole number, got ""'],
    ['wallMs=1.5', 'limits.wallMs must be an integer ≥ 1, got 1.5'],
    ['cpuMs=0', 'limits.cpuMs must be an integer ≥ 1, got 0'],
    ['warmPoolSize=3', '"warmPoolSize" is not a limit a worker can set; per-worker limits: cpuMs, startupCpuMs, memoryMb, subrequests, kvOperations, cacheBytes, wallMs, waitUntilMs, maxInflightPerWorker, maxWebSocketsPerWorker, recycleAfterRequests, recycleRssMb'],
  ])('answers a bad limits query (%s) with 400 naming the parameter', async (query, message) => {
    const daemon = await start();
    const before = await workers(daemon);
    const put = await admin(daemon, 'PUT', `/workers/app?${query}`, `export default { fetch() { return new Response('app v2'); } };`);
    expect(put.status).toBe(400);
    expect(put.json()).toEqual({ error: { code: 'ERR_CONFIG', message } });
    await expectUnchanged(daemon, before);
  });

  it('answers a script that does not parse with 400, line and column, and keeps the running version', async () => {
    const daemon = await start();
    const before = await workers(daemon);
    const put = await admin(daemon, 'PUT', '/workers/app', `export default {\n  fetch() {\n    return new Response('x';\n  },\n};\n`);
    expect(put.status).toBe(400);
    expect(put.json().error).toMatchObject({ code: 'ERR_SCRIPT_LOAD', kind: 'SyntaxError', message: 'SyntaxError: missing ) after argument list', line: 3, column: 28 });
    await expectUnchanged(daemon, before);
  });

  it('answers a script over the size limit with 413, whether its length is declared or not', async () => {
    const daemon = await start();
    const before = await workers(daemon);
    const tooBig = `// ${'x'.repeat(10 * 1024 * 1024)}\n`;
    const message = { error: { code: 'ERR_SCRIPT_TOO_LARGE', message: 'the script is larger than the limit of 10485760 bytes' } };
    const declared = await admin(daemon, 'PUT', '/workers/app', tooBig);
    expect(declared.status).toBe(413);
    expect(declared.json()).toEqual(message);
    const streamed = await admin(daemon, 'PUT', '/workers/app', (async function* () {
      yield Buffer.from(tooBig);
    })());
    expect(streamed.status).toBe(413);
    expect(streamed.json()).toEqual(message);
    await expectUnchanged(daemon, before);
  });

  it('answers a missing or wrong token with 401 and the scheme to use, when a token is set', async () => {
    const daemon = await start({ adminToken: 's3cret' });
    const auth = { authorization: 'Bearer s3cret' };
    const before = await workers(daemon, auth);
    const unauthorised = { error: { code: 'ERR_UNAUTHORIZED', message: 'missing or wrong admin token: send "Authorization: Bearer TOKEN"' } };
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 's3cret' }, { authorization: 'Basic czNjcmV0' }]) {
      const put = await admin(daemon, 'PUT', '/workers/app', `export default { fetch() { return new Response('app v2'); } };`, headers);
      expect(put.status).toBe(401);
      expect(put.headers['www-authenticate']).toBe('Bearer realm="edgeproc admin"');
      expect(put.json()).toEqual(unauthorised);
    }
    await expectUnchanged(daemon, before, [], auth);
  });

  it('answers malformed HTTP on the admin port with 400 and the reason', async () => {
    const daemon = await start();
    const before = await workers(daemon);
    const answer = await raw(daemon.adminPort, 'PUT /workers/app HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd');
    expect(answer).toMatchObject({ status: 400, closed: true });
    expect(answer.body).toBe('Bad request: the request is not valid HTTP/1.1: Duplicate Content-Length (HPE_UNEXPECTED_CONTENT_LENGTH). The connection is closed.\n');
    await expectUnchanged(daemon, before);
  });
});

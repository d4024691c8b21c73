/**
 * Workers' own byte streams and `scheduler.wait`, inside real children: a streamed
 * response through a FixedLengthStream reaches the client with Content-Length, and
 * each misuse fails as on Workers (runner/workers-streams.ts, runner/scheduler.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

const STREAMS = `
const bytes = (s) => new TextEncoder().encode(s);
const failure = (e) => e.constructor.name + ': ' + e.message;

async function identity() {
  const { readable, writable } = new IdentityTransformStream();
  const writer = writable.getWriter();
  const written = Promise.all([writer.write(bytes('hello ')), writer.write(bytes('world').buffer), writer.close()]);
  const text = await new Response(readable).text();
  await written;
  const strings = new IdentityTransformStream();
  const refused = await strings.writable.getWriter().write('a string').then(() => 'accepted', failure);
  return { text, refused, isTransform: new IdentityTransformStream() instanceof TransformStream };
}

async function misuse() {
  const out = {};
  const over = new FixedLengthStream(3);
  over.readable.pipeTo(new WritableStream()).catch(() => {});
  out.tooMany = await over.writable.getWriter().write(bytes('four')).then(() => 'accepted', failure);
  const under = new FixedLengthStream(10n);
  under.readable.pipeTo(new WritableStream()).catch(() => {});
  const writer = under.writable.getWriter();
  await writer.write(bytes('short'));
  out.tooFew = await writer.close().then(() => 'closed', failure);
  try { new FixedLengthStream(-1); out.negative = 'constructed'; } catch (e) { out.negative = failure(e); }
  return out;
}

export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/identity') return Response.json(await identity());
    if (path === '/misuse') return Response.json(await misuse());
    if (path === '/fixed') {
      const { readable, writable } = new FixedLengthStream(11);
      const writer = writable.getWriter();
      (async () => {
        await writer.write(bytes('hello '));
        await scheduler.wait(5);
        await writer.write(bytes('world'));
        await writer.close();
      })();
      return new Response(readable, { headers: { 'content-type': 'text/plain' } });
    }
    if (path === '/wait') {
      const started = Date.now();
      await scheduler.wait(50);
      const waited = Date.now() - started;
      const controller = new AbortController();
      const aborted = scheduler.wait(10_000, { signal: controller.signal }).then(() => 'resolved', (e) => String(e));
      controller.abort('changed my mind');
      const already = await scheduler.wait(1, { signal: controller.signal }).then(() => 'resolved', (e) => String(e));
      return Response.json({ waited: waited >= 40, aborted: await aborted, already });
    }
    return new Response('not found', { status: 404 });
  },
};
`;

let daemon: TestDaemon;

beforeAll(async () => {
  daemon = await startTestDaemon(writeScripts({ 'streams.mjs': STREAMS }), { warmPool: 1 });
});
afterAll(closeDaemons);

describe("Workers' byte streams", () => {
  it('IdentityTransformStream passes bytes through unchanged and refuses anything else', async () => {
    const res = await daemon.fetchText('streams', '/identity');
    expect(res.status, res.text).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      text: 'hello world',
      refused: expect.stringMatching(/^TypeError: This IdentityTransformStream is a byte stream: it takes ArrayBuffer or ArrayBufferView chunks on its writable side, and was given string\./),
      isTransform: true,
    });
  });

  it('a FixedLengthStream body goes out with Content-Length, not chunked', async () => {
    const res = await daemon.fetchText('streams', '/fixed');
    expect(res).toMatchObject({ status: 200, text: 'hello world' });
    expect(res.headers['content-length']).toBe('11');
    expect(res.headers['transfer-encoding']).toBeUndefined();
  });

  it('a FixedLengthStream refuses more bytes than promised, a close before all of them, and a negative length', async () => {
    const res = await daemon.fetchText('streams', '/misuse');
    expect(res.status, res.text).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      tooMany: 'TypeError: Attempt to write too many bytes through a FixedLengthStream.',
      tooFew: 'TypeError: FixedLengthStream did not see all expected bytes before close().',
      negative: 'TypeError: FixedLengthStream: expectedLength must be a non-negative integer (a number or a bigint), got -1',
    });
  });
});

describe('scheduler.wait', () => {
  it('resolves after the delay, and rejects with the reason when its signal aborts', async () => {
    const res = await daemon.fetchText('streams', '/wait');
    expect(res.status, res.text).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ waited: true, aborted: 'changed my mind', already: 'changed my mind' });
  });
});

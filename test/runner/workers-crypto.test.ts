/**
 * Workers' non-standard `crypto.subtle.timingSafeEqual`, inside real children: Cloudflare's
 * own example for comparing secrets runs unchanged. And the order in which a tenant first
 * reads `SubtleCrypto` and `crypto` does not matter (reading `SubtleCrypto` first used to
 * freeze the prototype that `crypto`'s first read still had to change, and that read threw).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

const CHECKS = `export default {
  async fetch(request) {
    const out = {};
    const run = (name, f) => { try { out[name] = f(); } catch (e) { out[name] = e.constructor.name + ': ' + e.message; } };
    const bytes = (s) => new TextEncoder().encode(s);
    const subtle = crypto.subtle;
    run('equal', () => subtle.timingSafeEqual(bytes('s3cret'), bytes('s3cret')));
    run('last byte differs', () => subtle.timingSafeEqual(bytes('s3cret'), bytes('s3creT')));
    run('first byte differs', () => subtle.timingSafeEqual(bytes('s3cret'), bytes('S3cret')));
    run('empty', () => subtle.timingSafeEqual(new ArrayBuffer(0), new Uint8Array(0)));
    run('buffer and view', () => subtle.timingSafeEqual(bytes('abc').buffer, new DataView(bytes('xabcx').buffer, 1, 3)));
    run('views at offsets', () => subtle.timingSafeEqual(bytes('--abc').subarray(2), bytes('abc--').subarray(0, 3)));
    run('wider view', () => subtle.timingSafeEqual(new Uint16Array([1, 2]), new Uint8Array([1, 0, 2, 0])));
    run('lengths differ', () => subtle.timingSafeEqual(bytes('abc'), bytes('abcd')));
    run('a string', () => subtle.timingSafeEqual('abc', bytes('abc')));
    run('replace it', () => { 'use strict'; subtle.timingSafeEqual = () => true; return 'replaced'; });
    run('still the original', () => subtle.timingSafeEqual(bytes('a'), bytes('b')));
    // Cloudflare's example (developers.cloudflare.com/workers/examples/protect-against-timing-attacks/).
    const secret = 'open sesame'; // the example's env.MY_SECRET_VALUE
    const authToken = request.headers.get('Authorization') || '';
    if (authToken.length !== secret.length) out.example = 401;
    else out.example = subtle.timingSafeEqual(bytes(authToken), bytes(secret)) ? 200 : 401;
    return Response.json(out);
  },
};`;

// SubtleCrypto (and an instanceof check with it) in the global scope, before crypto is ever read.
const ORDER = `const isSubtle = (x) => x instanceof SubtleCrypto;
const methods = Object.getOwnPropertyNames(SubtleCrypto.prototype).length;
export default {
  async fetch() {
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode('x'));
    return Response.json({ isSubtle: isSubtle(crypto.subtle), methods: methods > 10, digest: digest.byteLength, safe: crypto.subtle.timingSafeEqual(new Uint8Array([1]), new Uint8Array([1])) });
  },
};`;

// Cloudflare's use: hash a body as it streams. Checked against crypto.subtle.digest of the whole.
const DIGEST_STREAM = `export default {
  async fetch() {
    const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
    const text = 'edgeproc '.repeat(10000);
    const out = {};
    for (const algorithm of ['SHA-256', 'sha-1', { name: 'SHA-512' }, 'MD5']) {
      const stream = new crypto.DigestStream(algorithm);
      await new Response(text).body.pipeTo(stream);
      const streamed = hex(await stream.digest);
      const name = typeof algorithm === 'string' ? algorithm : algorithm.name;
      out[name] = name === 'MD5' ? streamed.length : streamed === hex(await crypto.subtle.digest(name, new TextEncoder().encode(text)));
    }
    try { new crypto.DigestStream('SHA-3'); out.unsupported = 'constructed'; } catch (e) { out.unsupported = e.name + ': ' + e.message; }
    const strings = new crypto.DigestStream('SHA-256');
    out.string = await strings.getWriter().write('text').then(() => 'accepted', (e) => e.constructor.name + ': ' + e.message);
    out.instance = new crypto.DigestStream('SHA-256') instanceof WritableStream;
    return Response.json(out);
  },
};`;

let daemon: TestDaemon;

beforeAll(async () => {
  const dir = writeScripts({ 'checks.mjs': CHECKS, 'order.mjs': ORDER, 'digests.mjs': DIGEST_STREAM });
  daemon = await startTestDaemon(dir, { warmPool: 1 });
});
afterAll(closeDaemons);

describe('crypto.subtle.timingSafeEqual', () => {
  it('compares bytes as Workers does: booleans for equal lengths, a TypeError for different ones or non-buffers', async () => {
    const res = await daemon.fetchText('checks', '/', { headers: { authorization: 'open sesame' } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      equal: true,
      'last byte differs': false,
      'first byte differs': false,
      empty: true,
      'buffer and view': true,
      'views at offsets': true,
      'wider view': true,
      'lengths differ': 'TypeError: crypto.subtle.timingSafeEqual: the two buffers must have the same byte length (got 3 and 4)',
      'a string': 'TypeError: crypto.subtle.timingSafeEqual: argument 1 must be an ArrayBuffer or an ArrayBuffer view (a TypedArray or DataView)',
      'replace it': "TypeError: Cannot assign to read only property 'timingSafeEqual' of object '#<SubtleCrypto>'",
      'still the original': false,
      example: 200,
    });
    const wrong = await daemon.fetchText('checks', '/', { headers: { authorization: 'open sesamE' } });
    expect(JSON.parse(wrong.text).example).toBe(401);
  });

  it('works whichever of SubtleCrypto and crypto a script reads first', async () => {
    const res = await daemon.fetchText('order');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ isSubtle: true, methods: true, digest: 32, safe: true });
  });
});

describe('crypto.DigestStream', () => {
  it('hashes what is piped into it as crypto.subtle.digest hashes the whole, and refuses what Workers refuses', async () => {
    const res = await daemon.fetchText('digests');
    expect(res.status, res.text).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      'SHA-256': true,
      'sha-1': true,
      'SHA-512': true,
      MD5: 32,
      unsupported: 'NotSupportedError: DigestStream: unsupported algorithm SHA-3; use SHA-1, SHA-256, SHA-384, SHA-512 or MD5',
      string: 'TypeError: DigestStream: a chunk must be an ArrayBuffer or an ArrayBuffer view (a TypedArray or DataView)',
      instance: true,
    });
  });
});

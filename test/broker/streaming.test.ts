import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { waitForLog } from '../helpers/origin.js';

afterEach(closeDaemons);

const MiB = 1024 * 1024;
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Chunk i of the 4 MiB test body: 64 KiB, every byte (i * 31 + offset) & 0xff. */
function expectedBody(chunks: number, chunkBytes: number): Buffer {
  const out = Buffer.alloc(chunks * chunkBytes);
  for (let i = 0; i < chunks; i++) {
    for (let j = 0; j < chunkBytes; j++) out[i * chunkBytes + j] = (i * 31 + j) & 0xff;
  }
  return out;
}

describe('response bodies', () => {
  it('streams a 4 MiB body from a ReadableStream intact', async () => {
    const dir = writeScripts({
      'big.mjs': `
        export default {
          fetch() {
            let i = 0;
            const body = new ReadableStream({
              pull(controller) {
                if (i === 64) return controller.close();
                const chunk = new Uint8Array(65536);
                for (let j = 0; j < chunk.length; j++) chunk[j] = (i * 31 + j) & 0xff;
                controller.enqueue(chunk);
                i++;
              },
            });
            return new Response(body, { headers: { 'content-type': 'application/octet-stream' } });
          },
        };`,
    });
    const daemon = await startTestDaemon(dir);
    const res = await request(`${daemon.url}/`, { headers: { host: 'big.localhost' } });
    expect(res.statusCode).toBe(200);
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(body.byteLength).toBe(4 * MiB);
    expect(sha256(body)).toBe(sha256(expectedBody(64, 65536)));
  });

  it('does not let a slow reader make the child buffer without bound, and cancels the stream when the client leaves', async () => {
    // The tenant would produce 200 MiB as fast as it may; the client reads nothing.
    const dir = writeScripts({
      'endless.mjs': `
        let produced = 0;
        export default {
          fetch(request) {
            if (new URL(request.url).pathname === '/count') return new Response(String(produced));
            const chunk = new Uint8Array(65536).fill(120);
            const body = new ReadableStream({
              pull(controller) {
                if (produced === 3200) return controller.close();
                controller.enqueue(chunk.slice());
                produced++;
              },
              cancel(reason) { console.log('stream cancelled after ' + produced + ' chunks'); },
            });
            return new Response(body);
          },
        };`,
    });
    const daemon = await startTestDaemon(dir, { maxInstances: 1 });
    const res = await request(`${daemon.url}/stream`, { headers: { host: 'endless.localhost' } });
    expect(res.statusCode).toBe(200);
    // Do not read res.body: undici stops reading the socket once its small buffer fills.
    const count = async () => Number((await daemon.fetchText('endless', '/count')).text);
    // Wait until production stalls (the same count three polls in a row), failing if it runs away.
    let last = -1;
    let stable = 0;
    while (stable < 3) {
      const now = await count();
      expect(now * 64 * 1024).toBeLessThan(48 * MiB);
      stable = now === last ? stable + 1 : 0;
      last = now;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(last).toBeGreaterThan(0);
    const pid = daemon.broker.instances()[0]!.pid!;
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
    expect(rss).toBeLessThan(150 * MiB);

    // The client goes away: the tenant's stream is cancelled and the instance keeps serving.
    res.body.destroy();
    await waitForLog(daemon.logs, (r) => r.msg.startsWith('stream cancelled after'));
    expect(await count()).toBe(last);
    expect(daemon.broker.instances().map((i) => i.pid)).toEqual([pid]);
  });
});

describe('request bodies', () => {
  it('streams several MiB to a tenant that hashes them with crypto.subtle.digest', async () => {
    const dir = writeScripts({
      'hash.mjs': `
        export default {
          async fetch(request) {
            const digest = await crypto.subtle.digest('SHA-256', await request.arrayBuffer());
            const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
            return new Response(hex);
          },
        };`,
    });
    const daemon = await startTestDaemon(dir);
    const data = randomBytes(6 * MiB);
    async function* chunks() {
      for (let at = 0; at < data.byteLength; at += 100_000) yield data.subarray(at, at + 100_000);
    }
    const res = await daemon.fetchText('hash', '/', { method: 'POST', body: chunks() });
    expect(res).toMatchObject({ status: 200, text: sha256(data) });
  });

  it('streams a request body to a tenant reading it chunk by chunk, with a Content-Length', async () => {
    const dir = writeScripts({
      'count.mjs': `
        export default {
          async fetch(request) {
            let bytes = 0, chunks = 0;
            for await (const chunk of request.body) { bytes += chunk.byteLength; chunks++; }
            return new Response(bytes + ' ' + (chunks > 1));
          },
        };`,
    });
    const daemon = await startTestDaemon(dir);
    const data = randomBytes(3 * MiB);
    const res = await daemon.fetchText('count', '/', {
      method: 'PUT',
      body: data,
      headers: { 'content-length': String(data.byteLength) },
    });
    expect(res).toMatchObject({ status: 200, text: `${3 * MiB} true` });
  });

  it('hands a tenant that fell behind what arrived meanwhile in one read, not frame by frame', async () => {
    // Each frame used to be a read of its own: 20,000 small frames of an origin were 20,000
    // rewriter writes for an HTMLRewriter, however far behind it was.
    const dir = writeScripts({
      'late.mjs': `
        export default {
          async fetch(request) {
            const reader = request.body.getReader();
            await scheduler.wait(1500);
            const first = await reader.read();
            let bytes = first.value.byteLength;
            for (;;) {
              const { done, value } = await reader.read();
              if (done) break;
              bytes += value.byteLength;
            }
            return new Response(first.value.byteLength + ' ' + bytes);
          },
        };`,
    });
    const daemon = await startTestDaemon(dir);
    const data = randomBytes(MiB / 2);
    async function* small() {
      for (let at = 0; at < data.byteLength; at += 256) yield data.subarray(at, at + 256);
    }
    const res = await daemon.fetchText('late', '/', { method: 'POST', body: small() });
    expect(res.status).toBe(200);
    const [first, total] = res.text.split(' ').map(Number);
    expect(total).toBe(MiB / 2);
    // What arrived in 1.5 s, up to the flow-control window (256 KiB), not one socket read's worth.
    expect(first).toBeGreaterThan(64 * 1024);
  });
});

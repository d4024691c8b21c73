import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
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

describe('response bodies in small pieces', () => {
  /** The chunks of a chunked HTTP/1.1 response, as they came on the wire. */
  async function rawChunks(port: number, host: string, path: string): Promise<string[]> {
    const socket = connect(port, '127.0.0.1');
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    const parts: Buffer[] = [];
    for await (const part of socket) parts.push(part as Buffer);
    const raw = Buffer.concat(parts).toString('latin1');
    const headEnd = raw.indexOf('\r\n\r\n');
    expect(raw.slice(0, headEnd).toLowerCase()).toContain('transfer-encoding: chunked');
    const chunks: string[] = [];
    for (let at = headEnd + 4; ; ) {
      const lineEnd = raw.indexOf('\r\n', at);
      const size = parseInt(raw.slice(at, lineEnd), 16);
      if (size === 0) return chunks;
      chunks.push(raw.slice(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }

  it('sends many small chunks enqueued at once as a few, and a chunk followed by a wait at once', async () => {
    const dir = writeScripts({
      'pieces.mjs': `
        const piece = new TextEncoder().encode('<li><a href="/item/1">item 1</a></li>\\n');
        let release = null;
        export default {
          fetch(request) {
            const path = new URL(request.url).pathname;
            if (path === '/release') {
              release?.();
              return new Response('released');
            }
            if (path === '/trickle') {
              return new Response(new ReadableStream({
                async start(controller) {
                  controller.enqueue(new TextEncoder().encode('first\\n'));
                  // Only once the client has the first chunk (it asks for /release then).
                  await new Promise((resolve) => (release = resolve));
                  controller.enqueue(new TextEncoder().encode('second\\n'));
                  controller.close();
                },
              }));
            }
            return new Response(new ReadableStream({
              start(controller) {
                for (let i = 0; i < 2000; i++) controller.enqueue(piece);
                controller.close();
              },
            }));
          },
        };`,
    });
    const daemon = await startTestDaemon(dir, { maxInstances: 1 });
    const piece = '<li><a href="/item/1">item 1</a></li>\n';
    const chunks = await rawChunks(daemon.port, 'pieces.localhost', '/many');
    expect(chunks.join('')).toBe(piece.repeat(2000));
    // One HTTP chunk per piece before they were held for the turn (2,000 frames, 2,000 writes).
    expect(chunks.length).toBeLessThan(20);

    const res = await request(`${daemon.url}/trickle`, { headers: { host: 'pieces.localhost' } });
    const reader = res.body[Symbol.asyncIterator]();
    const first = await reader.next();
    expect(Buffer.from(first.value as Buffer).toString()).toBe('first\n');
    expect((await daemon.fetchText('pieces', '/release')).text).toBe('released');
    let rest = '';
    for (let next = await reader.next(); !next.done; next = await reader.next()) rest += Buffer.from(next.value as Buffer).toString();
    expect(rest).toBe('second\n');
  });
});

describe('response bodies of many queued chunks', () => {
  it('sends 60,000 pieces enqueued at once within a CPU limit of 1 s, and still calls pull() once the queue is drained', async () => {
    const dir = writeScripts({
      'queued.mjs': `
        const piece = new TextEncoder().encode('<tr><td>row</td></tr>\\n');
        export default {
          fetch(request) {
            if (new URL(request.url).pathname === '/refill') {
              let refills = 0;
              return new Response(new ReadableStream({
                start(controller) { for (let i = 0; i < 3000; i++) controller.enqueue(piece); },
                pull(controller) {
                  if (refills++ === 3) return controller.close();
                  for (let i = 0; i < 3000; i++) controller.enqueue(piece);
                },
              }));
            }
            return new Response(new ReadableStream({
              start(controller) {
                for (let i = 0; i < 60000; i++) controller.enqueue(piece);
                controller.close();
              },
            }));
          },
        };`,
    });
    // Node 20's stream queue is shifted per read: read one at a time, 60,000 queued chunks took
    // ~1.9 s of CPU here (quadratic past 16,384), and this request was stopped with 503.
    const daemon = await startTestDaemon(dir, { cpuMs: 1000 });
    const piece = '<tr><td>row</td></tr>\n';
    const huge = await daemon.fetchText('queued', '/huge');
    expect(huge.status, huge.text.slice(0, 300)).toBe(200);
    expect(huge.text.length).toBe(piece.length * 60000);
    expect(huge.text).toBe(piece.repeat(60000));
    const refilled = await daemon.fetchText('queued', '/refill');
    expect(refilled.text).toBe(piece.repeat(12000));
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

/**
 * Runs synthetic requests through a throwaway Runtime whose channel discards
 * everything, so the code a real request takes is compiled and optimised
 * before any tenant arrives. Nothing tenant-specific exists yet: a warm child
 * holds no tenant data.
 */
import { FrameChannel } from '../protocol/channel.js';
import { FrameDecoder, encodeFrame, encodeJsonFrame, type Frame } from '../protocol/frames.js';
import { FrameType, type EchoMessage, type LoadMessage } from '../protocol/messages.js';
import { loadScript } from './loader.js';
import type { FetchEvent } from './events.js';
import { Runtime } from './runtime.js';
import { Response } from './web.js';

const WARM_REQUESTS = 30;

class NullChannel {
  sendJson(): void {}
  sendEmpty(): void {}
  sendData(): void {}
  sendWindow(): void {}
  send(): void {}
  close(): void {}
  get closed(): boolean {
    return false;
  }
}

const MODULE_SOURCE =
  'export default { async fetch(request) { const body = request.body ? await request.text() : ""; ' +
  'return new Response("warm " + body, { headers: { "content-type": "text/plain" } }); } }';

/**
 * Warms both syntaxes, the way a real tenant arrives: a module worker through
 * the Load frame (the path every specialisation takes), a service-worker
 * handler through FetchEvent. Warming only one left the other's first request
 * ~1 ms slower (bench/cold-start). Service-worker *scripts* cannot be loaded
 * here: their addEventListener() would reach the real runtime.
 */
export async function warmUp(): Promise<void> {
  await loadScript('void 0', 'warmup.js');

  const modules = new Runtime(new NullChannel() as unknown as FrameChannel);
  modules.onFrame(decodeOne(encodeJsonFrame(FrameType.Load, 0, { worker: 'warmup', version: 0, filename: 'warmup.mjs', source: MODULE_SOURCE, env: {}, bindings: [], waitUntilMs: 30_000 } satisfies LoadMessage)));

  const serviceWorker = new Runtime(new NullChannel() as unknown as FrameChannel);
  serviceWorker.addEventListener('fetch', (event: Event) => {
    const fetchEvent = event as FetchEvent;
    fetchEvent.respondWith(new Response('warm ' + new URL(fetchEvent.request.url).pathname));
  });
  serviceWorker.preload({ syntax: 'service-worker', exports: null });

  for (let round = 0; round < WARM_REQUESTS / 10; round++) {
    serveSynthetic(modules, round * 10, 5);
    serveSynthetic(serviceWorker, round * 10 + 5, 5);
    // Let the requests run to completion so the async paths warm too.
    await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setImmediate(resolve));
}

function serveSynthetic(runtime: Runtime, first: number, count: number): void {
  const feed = new FrameDecoder((frame) => runtime.onFrame(frame));
  const body = new TextEncoder().encode('ping');
  for (let i = first; i < first + count; i++) {
    const id = i * 2 + 1;
    const hasBody = i % 4 === 0;
    feed.push(
      encodeJsonFrame(FrameType.RequestHead, id, {
        method: hasBody ? 'POST' : 'GET',
        url: `http://warmup.localhost/path?i=${i}`,
        headers: [
          ['host', 'warmup.localhost'],
          ['accept', '*/*'],
        ],
        hasBody,
      }),
    );
    if (hasBody) {
      feed.push(encodeFrame(FrameType.Data, id, body));
      feed.push(encodeFrame(FrameType.End, id, new Uint8Array(0)));
    }
  }
}

function decodeOne(bytes: Uint8Array): Frame {
  let frame!: Frame;
  new FrameDecoder((decoded) => (frame = decoded)).push(bytes);
  return frame;
}

const ECHO_ROUNDS = 3;

/**
 * Warms the real channel to the daemon: the socket's write and read paths and FrameChannel's
 * own, which synthetic requests never touch. Each round sends what a response sends (a JSON
 * head, a body chunk, an end) and waits for the daemon's echo (a JSON head, a body chunk, an
 * end), so the first real request does not compile them (about half a millisecond of a cold
 * start: bench/cold-start). `echoed()` gives a promise of the next echo.
 */
export async function warmChannel(channel: FrameChannel, echoed: () => Promise<void>): Promise<void> {
  const body = new TextEncoder().encode('warm '.repeat(20));
  for (let round = 0; round < ECHO_ROUNDS; round++) {
    const echo = echoed();
    channel.sendData(0, body);
    channel.sendEmpty(FrameType.End, 0);
    channel.sendJson(FrameType.Echo, 0, { round } satisfies EchoMessage);
    await echo;
  }
}

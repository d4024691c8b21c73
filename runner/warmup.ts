/**
 * Runs synthetic requests through a throwaway Runtime whose channel discards
 * everything, so the code a real request takes is compiled and optimised
 * before any tenant arrives. Nothing tenant-specific exists yet: a warm child
 * holds no tenant data.
 */
import { FrameChannel } from '../protocol/channel.js';
import { FrameDecoder, encodeFrame, encodeJsonFrame } from '../protocol/frames.js';
import { FrameType } from '../protocol/messages.js';
import { loadScript } from './loader.js';
import { Runtime } from './runtime.js';

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

export async function warmUp(): Promise<void> {
  const runtime = new Runtime(new NullChannel() as unknown as FrameChannel);
  await loadScript('void 0', 'warmup.js');
  const module = await loadScript(
    'export default { async fetch(request) { const body = request.body ? await request.text() : ""; ' +
      'return new Response("warm " + body, { headers: { "content-type": "text/plain" } }); } }',
    'warmup.mjs',
  );
  runtime.preload(module);
  const feed = new FrameDecoder((frame) => runtime.onFrame(frame));
  const body = new TextEncoder().encode('ping');
  for (let i = 0; i < WARM_REQUESTS; i++) {
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
    // Let each request run to completion so the async paths warm too.
    if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Runs synthetic requests through a throwaway Runtime whose channel discards
 * everything, so the code a real request takes is compiled and optimised
 * before any tenant arrives. Nothing tenant-specific exists yet: a warm child
 * holds no tenant data.
 */
import { encodeRequestHeadFrame, encodeResponseHeader, encodeResponseHeadFrame } from '../protocol/heads.js';
import { FrameChannel } from '../protocol/channel.js';
import { FrameDecoder, encodeFrame, encodeHeader, encodeJsonFrame, encodeSettledFrame, encodeTurnFrame, encodeWindowFrame, type Frame } from '../protocol/frames.js';
import type { IdTable } from '../protocol/id-table.js';
import { FrameType, type EchoMessage, type HandlerErrorMessage, type LoadMessage, type ResponseHeadMessage, type SettledMessage } from '../protocol/messages.js';
import { monotonicMs } from './clock.js';
import { loadScript, type LoadedScript } from './loader.js';
import type { FetchEvent } from './events.js';
import { Runtime } from './runtime.js';
import { Response } from './web.js';

/** A tenant script's syntax, as the loader tells it. */
type Syntax = LoadedScript['syntax'];

const WARM_REQUESTS = 30;

/**
 * A channel that encodes what it is given (so the encoders are compiled too) and drops it.
 * It has every public member of FrameChannel, or this does not compile: a method it lacked
 * threw inside each synthetic request, and the warm-up warmed the error path instead.
 * A handler error is recorded: a warm-up whose requests fail is a broken runner.
 */
class NullChannel implements Public<FrameChannel> {
  readonly failures: string[] = [];
  /** Requests that settled: the warm-up waits for all of them. */
  settled = 0;
  sendJson(type: FrameType, stream: number, message: unknown): void {
    encodeJsonFrame(type, stream, message);
    if (type === FrameType.HandlerError) this.failures.push((message as HandlerErrorMessage).message);
  }
  sendResponse(stream: number, head: ResponseHeadMessage, body: Uint8Array): void {
    encodeResponseHeader(stream, head, body.byteLength);
  }
  sendResponseHead(stream: number, head: ResponseHeadMessage): void {
    encodeResponseHeadFrame(stream, head);
  }
  sendSettled(stream: number, message: SettledMessage): void {
    encodeSettledFrame(stream, message);
    this.settled++;
  }
  sendEmpty(type: FrameType, stream: number): void {
    encodeHeader(type, stream, 0);
  }
  sendTurn(stream: number, counts: IdTable<number>): void {
    encodeTurnFrame(stream, counts);
  }
  sendData(stream: number, chunk: Uint8Array): void {
    encodeHeader(FrameType.Data, stream, chunk.byteLength);
  }
  sendWindow(stream: number, bytes: number): void {
    encodeWindowFrame(FrameType.Window, stream, bytes);
  }
  sendWebSocketMessage(): void {}
  sendBytes(): void {}
  send(): void {}
  flush(): void {}
  close(): void {}
  end(): void {}
  get closed(): boolean {
    return false;
  }
  get sent(): number {
    return 0;
  }
}

type Public<T> = { [K in keyof T]: T[K] };

// Some requests wait for a timer, as most real handlers wait for something (a fetch, KV, a
// body): the stall watch and the tenant timers' path are then compiled too. Without them, the
// first request of a handler that awaited a timer used ~1 ms more CPU than its second.
const MODULE_SOURCE =
  'export default { async fetch(request) { const body = request.body ? await request.text() : ""; ' +
  'if (new URL(request.url).searchParams.has("wait")) await new Promise((resolve) => setTimeout(resolve, 1)); ' +
  'return new Response("warm " + body, { headers: { "content-type": "text/plain" } }); } }';
/** How long the warm-up waits for its waiting requests' timers, at most. */
const WARM_WAIT_LIMIT_MS = 1_000;

/**
 * Warms both syntaxes, the way a real tenant arrives (see syntheticRuntime). Warming only one
 * left the other's first request ~1 ms slower (bench/cold-start).
 */
export async function warmUp(): Promise<void> {
  // Twice: V8 runs a regular expression in its interpreter the first time and compiles it the
  // second, and the loader's test for module syntax runs once per load, so a tenant's load paid
  // that compile (~0.1 ms of every pool hit, timed in the child with bench/cold-start).
  await loadScript('void 0', 'warmup.js');
  await loadScript('void 0', 'warmup.js');

  const channels = [new NullChannel(), new NullChannel()] as const;
  const modules = syntheticRuntime('module', channels[0]);
  const serviceWorker = syntheticRuntime('service-worker', channels[1]);

  for (let round = 0; round < WARM_REQUESTS / 10; round++) {
    serveSynthetic(modules, round * 10, 5);
    serveSynthetic(serviceWorker, round * 10 + 5, 5);
    // Let the requests run to completion so the async paths warm too.
    await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setImmediate(resolve));
  // Some of them wait for a 1 ms timer.
  await settled(channels, WARM_REQUESTS, () => new Promise((resolve) => setTimeout(resolve, 1)));
}

/**
 * Waits until `count` synthetic requests have settled on `channels` (at most WARM_WAIT_LIMIT_MS,
 * pausing with `pause` between looks), and fails if any of them failed: a warm-up whose requests
 * fail is a broken runner.
 */
async function settled(channels: readonly NullChannel[], count: number, pause: () => Promise<unknown>): Promise<void> {
  const until = monotonicMs() + WARM_WAIT_LIMIT_MS;
  while (channels.reduce((n, c) => n + c.settled, 0) < count && monotonicMs() < until) await pause();
  const failures = channels.flatMap((c) => c.failures);
  if (failures.length > 0) throw new Error(`the warm-up's synthetic requests failed (${failures.length} of ${count}), first: ${failures[0]}`);
}

/**
 * The warm-up of a child spawned for a waiting request (a pool miss), which skips the one at boot
 * (60 ms its request would wait for): one request with a body and one without through the request
 * path of the tenant's syntax, run by the Runtime as part of the script's load, so that compiling
 * the runner's own request path counts as the script's startup, not as the first request's CPU.
 * Charged to that request it was 3-7 ms of CPU on a quiet machine, against ~0.3 warm, and once 78
 * ms, past the default 50 ms limit, on a machine the test suite loaded (`edgeproc bench`).
 */
export async function warmFirstRequest(syntax: Syntax): Promise<void> {
  const channel = new NullChannel();
  serveSynthetic(syntheticRuntime(syntax, channel), 0, 2);
  // None waits for a timer: a turn is enough, and the request waiting behind this load waits no longer.
  await settled([channel], 2, () => new Promise((resolve) => setImmediate(resolve)));
}

/**
 * A throwaway Runtime whose output `channel` drops, with a worker of `syntax` in it: a module
 * worker loaded through the Load frame (the path every specialisation takes), or a
 * service-worker handler given to it directly (a service-worker *script* cannot be loaded here:
 * its addEventListener() would reach the real runtime).
 */
function syntheticRuntime(syntax: Syntax, channel: NullChannel): Runtime {
  const runtime = new Runtime(channel as unknown as FrameChannel);
  if (syntax === 'module') {
    runtime.onFrame(decodeOne(encodeJsonFrame(FrameType.Load, 0, { worker: 'warmup', version: 0, filename: 'warmup.mjs', source: MODULE_SOURCE, env: {}, bindings: [], waitUntilMs: 30_000, cf: null, makeCodeCache: false } satisfies LoadMessage)));
  } else {
    runtime.addEventListener('fetch', (event: Event) => {
      const fetchEvent = event as FetchEvent;
      fetchEvent.respondWith(new Response('warm ' + new URL(fetchEvent.request.url).pathname));
    });
    runtime.preload({ syntax: 'service-worker', exports: null, codeCache: 'none' });
  }
  return runtime;
}

function serveSynthetic(runtime: Runtime, first: number, count: number): void {
  const feed = new FrameDecoder((frame) => runtime.onFrame(frame));
  const body = new TextEncoder().encode('ping');
  for (let i = first; i < first + count; i++) {
    const id = i * 2 + 1;
    const hasBody = i % 4 === 0;
    feed.push(
      encodeRequestHeadFrame(id, {
        method: hasBody ? 'POST' : 'GET',
        url: `http://warmup.localhost/path?i=${i}${i % 5 === 4 ? '&wait' : ''}`,
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
const WARM_HEAD: ResponseHeadMessage = { status: 200, statusText: '', headers: [['content-type', 'text/plain;charset=UTF-8']], hasBody: true, bodyLength: 100 };

/**
 * Warms the real channel to the daemon: the socket's write and read paths and FrameChannel's
 * own, which synthetic requests never touch. Each round sends what responses send (a whole
 * response in one frame, then Settled; a body chunk and an end, as a streamed one sends) on
 * stream 0, which the daemon ignores, and waits for the daemon's echo (a JSON head, a body
 * chunk, an end), so the first real request does not compile them (about half a millisecond
 * of a cold start: bench/cold-start). `echoed()` gives a promise of the next echo.
 */
export async function warmChannel(channel: FrameChannel, echoed: () => Promise<void>): Promise<void> {
  const body = new TextEncoder().encode('warm '.repeat(20));
  for (let round = 0; round < ECHO_ROUNDS; round++) {
    const echo = echoed();
    channel.sendResponse(0, WARM_HEAD, body);
    channel.sendSettled(0, { waitUntilFailures: 0, waitUntilTimedOut: false, cpuMs: 0 });
    channel.sendData(0, body);
    channel.sendEmpty(FrameType.End, 0);
    channel.sendJson(FrameType.Echo, 0, { round } satisfies EchoMessage);
    await echo;
  }
}

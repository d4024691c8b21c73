/**
 * The tenant side of the thread model: this module runs on each tenant's
 * worker thread. It imports the tenant's script from a `data:` URL, tells the
 * host whether that worked, then answers the host's request messages by
 * calling the script's fetch handler with Node's own Request and Response
 * (globals on worker threads too).
 *
 * The message types below are the whole protocol between the two sides;
 * thread-host.ts imports them as types only, so it never loads this module.
 */
import { parentPort, workerData } from 'node:worker_threads';

export interface ThreadData {
  source: string;
}

export interface ThreadRequest {
  id: number;
  method: string;
  url: string;
  headers: Record<string, string>;
}

/** Sent by the thread: first `loaded` or `load-failed` (once), then one `response` per request. */
export type ThreadMessage =
  | { type: 'loaded' }
  | { type: 'load-failed'; message: string }
  | { type: 'response'; id: number; status: number; headers: Record<string, string>; body: string };

interface FetchHandler {
  fetch(request: Request, env: object, ctx: object): unknown;
}

// Captured before the tenant's module runs: it shares this global scope and may replace them.
const port = parentPort!;
const { Request: NodeRequest, Response: NodeResponse } = globalThis;
const send = (message: ThreadMessage) => port.postMessage(message);

const handler = await load((workerData as ThreadData).source);
if (handler) port.on('message', (request: ThreadRequest) => void answer(handler, request).then(send));

async function load(source: string): Promise<FetchHandler | null> {
  try {
    const module = (await import(`data:text/javascript;charset=utf-8,${encodeURIComponent(source)}`)) as { default?: Partial<FetchHandler> };
    if (typeof module.default?.fetch !== 'function') throw new Error('the script has no default export with a fetch(request) method');
    send({ type: 'loaded' });
    return module.default as FetchHandler;
  } catch (error) {
    send({ type: 'load-failed', message: describe(error) });
    return null;
  }
}

// Hot path: once per request.
async function answer(handler: FetchHandler, { id, method, url, headers }: ThreadRequest): Promise<ThreadMessage> {
  try {
    const response = await handler.fetch(new NodeRequest(url, { method, headers }), {}, { waitUntil() {}, passThroughOnException() {} });
    if (!(response instanceof NodeResponse)) return failure(id, 'the fetch handler did not return a Response');
    const body = await response.text();
    return { type: 'response', id, status: response.status, headers: Object.fromEntries(response.headers), body };
  } catch (error) {
    return failure(id, `the fetch handler threw: ${describe(error)}`);
  }
}

function failure(id: number, message: string): ThreadMessage {
  return { type: 'response', id, status: 500, headers: { 'content-type': 'text/plain' }, body: `thread: ${message}\n` };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

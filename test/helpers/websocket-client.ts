/**
 * A WebSocket client for tests (the `ws` package, as a real client would connect): opens a
 * socket to a worker through the daemon's front door and hands out what arrives in order.
 */
import { WebSocket } from 'ws';
import type { TestDaemon } from './daemon.js';

/** Longest wait for one message: well inside vitest's 30 s per test, far past any test's own pace. */
const NEXT_TIMEOUT_MS = 15_000;

export interface TestSocket {
  ws: WebSocket;
  /** The 101's headers. */
  headers: Record<string, string | string[] | undefined>;
  /**
   * The next message (text as a string, binary as a Buffer), waiting for it if none is queued;
   * rejects once the socket has closed, or after NEXT_TIMEOUT_MS without one (a lost message
   * fails its test saying so, not at the test's timeout).
   */
  next(): Promise<string | Buffer>;
  /** Settles with the close code and reason once the socket has closed. */
  closed: Promise<{ code: number; reason: string }>;
}

export function openSocket(daemon: TestDaemon, worker: string, path = '/', protocols?: string[]): Promise<TestSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${daemon.port}${path}`, protocols, { headers: { host: `${worker}.localhost:${daemon.port}` } });
  const queue: Array<string | Buffer> = [];
  const waiting: Array<{ resolve: (message: string | Buffer) => void; reject: (error: Error) => void }> = [];
  let closedWith: Error | null = null;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const message = isBinary ? data : data.toString('utf8');
    const waiter = waiting.shift();
    if (waiter) waiter.resolve(message);
    else queue.push(message);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => {
      // A test waiting for a message learns that none will come, and why, instead of timing out.
      closedWith = new Error(`the socket closed (${code} ${reason.toString('utf8')}) before the message came`);
      for (const waiter of waiting.splice(0)) waiter.reject(closedWith);
      resolve({ code, reason: reason.toString('utf8') });
    }),
  );
  return new Promise((resolve, reject) => {
    let headers: TestSocket['headers'] = {};
    ws.on('upgrade', (res) => (headers = res.headers));
    ws.on('open', () =>
      resolve({
        ws,
        headers,
        closed,
        next: () => {
          if (queue.length > 0) return Promise.resolve(queue.shift()!);
          if (closedWith) return Promise.reject(closedWith);
          return new Promise((resolve, reject) => {
            const waiter = {
              resolve: (message: string | Buffer) => {
                clearTimeout(timer);
                resolve(message);
              },
              reject: (error: Error) => {
                clearTimeout(timer);
                reject(error);
              },
            };
            const timer = setTimeout(() => {
              waiting.splice(waiting.indexOf(waiter), 1);
              reject(new Error(`no message came within ${NEXT_TIMEOUT_MS} ms (${waiting.length} other waits pending, socket state ${ws.readyState})`));
            }, NEXT_TIMEOUT_MS);
            waiting.push(waiter);
          });
        },
      }),
    );
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body })));
    });
    ws.on('error', reject);
  });
}

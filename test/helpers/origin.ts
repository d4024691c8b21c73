/**
 * A local origin server on 127.0.0.1 for tests: tenants fetch from it, and it
 * doubles as a gate the test controls. A request to /gate/NAME is held until
 * the test calls release(NAME); arrived(NAME) resolves when it reaches the
 * origin, which is how a tenant tells the test "I got this far".
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type OriginHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface Origin {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  /** Resolves when a request for /gate/NAME arrived (it is held until release(NAME)). */
  arrived(name: string): Promise<void>;
  /** Resolves when the connection of the /gate/NAME request closed (after release, or the client gave up). */
  closed(name: string): Promise<void>;
  /** Answers the held /gate/NAME request with 200 and `body`. */
  release(name: string, body?: string): void;
  close(): Promise<void>;
}

export async function startOrigin(handler: OriginHandler = notFound): Promise<Origin> {
  type Gate = { arrived: Promise<void>; signal(): void; res: ServerResponse | null; closed: Promise<void>; onClose(): void };
  const gates = new Map<string, Gate>();
  const gate = (name: string) => {
    let entry = gates.get(name);
    if (!entry) {
      let signal!: () => void;
      let onClose!: () => void;
      const arrived = new Promise<void>((resolve) => (signal = resolve));
      const closed = new Promise<void>((resolve) => (onClose = resolve));
      entry = { arrived, signal, res: null, closed, onClose };
      gates.set(name, entry);
    }
    return entry;
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://origin').pathname;
    if (path.startsWith('/gate/')) {
      req.resume();
      const entry = gate(path.slice('/gate/'.length));
      entry.res = res;
      res.on('close', entry.onClose);
      entry.signal();
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    arrived: (name) => gate(name).arrived,
    closed: (name) => gate(name).closed,
    release: (name, body = 'released') => {
      const res = gate(name).res;
      if (!res) throw new Error(`nothing is waiting at /gate/${name}`);
      res.end(body);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function notFound(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(404).end('not found');
}

/** Waits until a log record matches (the daemon's log is the tenant's only other way to signal). */
export async function waitForLog<T extends { msg: string }>(
  logs: T[],
  match: (record: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = logs.find(match);
    if (found) return found;
    if (Date.now() > deadline) {
      throw new Error(`no matching log record within ${timeoutMs} ms; log:\n${logs.map((r) => JSON.stringify(r)).join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

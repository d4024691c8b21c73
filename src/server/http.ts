/**
 * The front door: a node:http server that routes each request to a worker
 * and hands it to the broker. Malformed HTTP and oversized headers are
 * caught by Node's parser before any of this runs and answered in
 * client-error.ts (400 / 431, with a reason); a request whose target or Host
 * makes no URL gets 400 here, before it reaches a worker.
 */
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Broker } from '../broker/broker.js';
import { nextRequestId } from '../broker/broker.js';
import { REQUEST_ID_HEADER, sendErrorResponse } from '../broker/outcome.js';
import { handshakeProblem, wantsWebSocket, type UpgradeRequest } from '../broker/websocket-bridge.js';
import type { WorkerRegistry } from '../workers/registry.js';
import { answerClientErrors, writeRawResponse } from './client-error.js';
import { requestUrl } from './request-url.js';
import { Router } from './router.js';

export interface FrontDoorOptions {
  broker: Broker;
  registry: WorkerRegistry;
  router: Router;
  /** `serve --test-scheduled`: the crons of a worker, for `GET /__scheduled` (absent: that path is the worker's). */
  testScheduled?: (worker: string) => readonly string[];
}

export function createFrontDoor({ broker, registry, router, testScheduled }: FrontDoorOptions): Server {
  // Once close() has stopped the listener the daemon is draining: every response from then on
  // says `Connection: close`, so no client sends another request on a connection about to be cut.
  class FrontDoorResponse extends ServerResponse {}
  const writeHead = ServerResponse.prototype.writeHead;
  FrontDoorResponse.prototype.writeHead = function (this: ServerResponse, ...args: Parameters<typeof writeHead>) {
    if (!server.listening) this.shouldKeepAlive = false;
    return writeHead.apply(this, args);
  } as typeof writeHead;
  const responses = new WeakMap<Duplex, ServerResponse>();
  // Hot path: every client request. `upgrade`: the connection of an `Upgrade: websocket` request.
  const serve = (req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeRequest): void => {
    if (!server.listening) {
      // A request on a kept-alive connection after the drain began: not accepted, and safe to retry.
      sendErrorResponse(res, 503, 'The daemon is shutting down; retry on a new connection.', nextRequestId());
      req.resume();
      return;
    }
    const target = requestUrl(req);
    if ('bad' in target) {
      sendErrorResponse(res, 400, `Bad request: ${target.bad}`, nextRequestId());
      req.resume();
      return;
    }
    const host = req.headers.host;
    const route = router.route(host, target.url);
    if ('notFound' in route || !registry.has(route.worker)) {
      const label = 'notFound' in route ? route.notFound : route.worker;
      const known = registry.list().map((w) => w.name);
      sendErrorResponse(
        res,
        404,
        `No worker named "${label}" (the first label of the Host header "${host ?? ''}"). ` +
          `Address a worker as NAME.localhost:PORT; workers here: ${known.join(', ') || 'none'}.`,
        nextRequestId(),
      );
      req.resume();
      return;
    }
    if (testScheduled && isScheduledTrigger(req, target.url)) {
      runTestScheduled(broker, route.worker, target.url, testScheduled(route.worker), res);
      req.resume();
      return;
    }
    broker.handle(req, res, route.worker, target.url, upgrade);
  };
  const server = createServer(
    // requireHostHeader: Node's own 400 for a missing Host has no body; request-url.ts says why.
    { keepAliveTimeout: 5_000, requestTimeout: 0, headersTimeout: 30_000, requireHostHeader: false, ServerResponse: FrontDoorResponse },
    (req: IncomingMessage, res: ServerResponse) => {
      responses.set(req.socket, res);
      serve(req, res);
    },
  );
  answerClientErrors(server, responses);
  // A request with `Connection: upgrade`: Node hands over its connection. It is served as any
  // request, on a response of its own over that connection, which closes after the response;
  // unless it asks for a WebSocket and the worker answers with one (src/broker/websocket-bridge.ts).
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const res = new FrontDoorResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    res.on('finish', () => socket.end());
    socket.on('error', () => socket.destroy());
    if (!wantsWebSocket(req)) {
      serve(req, res);
      return;
    }
    const problem = handshakeProblem(req);
    if (problem) {
      const extra: Record<string, string> = problem.status === 426 ? { 'sec-websocket-version': '13' } : {};
      sendErrorResponse(res, problem.status, `Bad WebSocket handshake: ${problem.reason}.`, nextRequestId(), extra);
      return;
    }
    serve(req, res, { socket, head });
  });
  // Without a listener Node drops a CONNECT without a word.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    writeRawResponse(socket, 501, 'CONNECT is not supported: edgeproc serves workers, it is not a proxy.');
    socket.destroy();
  });
  return server;
}

function isScheduledTrigger(req: IncomingMessage, url: string): boolean {
  return req.method === 'GET' && new URL(url).pathname === '/__scheduled';
}

/**
 * `GET /__scheduled?cron=PATTERN`, as `wrangler dev --test-scheduled` answers it: runs the
 * worker's scheduled handler once, now, with that cron (else the worker's first configured one,
 * else ""), and says 200 "Ran scheduled event", or 500 with what went wrong.
 */
function runTestScheduled(broker: Broker, worker: string, url: string, crons: readonly string[], res: ServerResponse): void {
  const cron = new URL(url).searchParams.get('cron') ?? crons[0] ?? '';
  broker.runScheduled(worker, cron, Date.now()).then((outcome) => {
    if (outcome.ok) {
      res.writeHead(200, { 'content-type': 'text/plain;charset=UTF-8', [REQUEST_ID_HEADER]: outcome.requestId }).end('Ran scheduled event');
    } else {
      sendErrorResponse(res, 500, `Scheduled event failed: ${outcome.error}`, outcome.requestId);
    }
  });
}

/**
 * The front door: a node:http server that routes each request to a worker
 * and hands it to the broker. Malformed HTTP and oversized headers are
 * caught by Node's parser before any of this runs and answered in
 * client-error.ts (400 / 431, with a reason); a request whose target or Host
 * makes no URL gets 400 here, before it reaches a worker.
 */
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Broker } from '../broker/broker.js';
import { nextRequestId } from '../broker/broker.js';
import { sendErrorResponse } from '../broker/outcome.js';
import type { WorkerRegistry } from '../workers/registry.js';
import { answerClientErrors, writeRawResponse } from './client-error.js';
import { requestUrl } from './request-url.js';
import { Router } from './router.js';

export interface FrontDoorOptions {
  broker: Broker;
  registry: WorkerRegistry;
  router: Router;
}

export function createFrontDoor({ broker, registry, router }: FrontDoorOptions): Server {
  // Once close() has stopped the listener the daemon is draining: every response from then on
  // says `Connection: close`, so no client sends another request on a connection about to be cut.
  class FrontDoorResponse extends ServerResponse {}
  const writeHead = ServerResponse.prototype.writeHead;
  FrontDoorResponse.prototype.writeHead = function (this: ServerResponse, ...args: Parameters<typeof writeHead>) {
    if (!server.listening) this.shouldKeepAlive = false;
    return writeHead.apply(this, args);
  } as typeof writeHead;
  const responses = new WeakMap<Duplex, ServerResponse>();
  const server = createServer(
    // requireHostHeader: Node's own 400 for a missing Host has no body; request-url.ts says why.
    { keepAliveTimeout: 5_000, requestTimeout: 0, headersTimeout: 30_000, requireHostHeader: false, ServerResponse: FrontDoorResponse },
    // Hot path: every client request.
    (req: IncomingMessage, res: ServerResponse) => {
      responses.set(req.socket, res);
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
      broker.handle(req, res, route.worker, target.url);
    },
  );
  answerClientErrors(server, responses);
  // Without a listener Node drops a CONNECT without a word.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    writeRawResponse(socket, 501, 'CONNECT is not supported: edgeproc serves workers, it is not a proxy.');
    socket.destroy();
  });
  return server;
}

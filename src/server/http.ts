/**
 * The front door: a node:http server that routes each request to a worker
 * and hands it to the broker. Malformed HTTP and oversized headers are
 * answered by Node's parser (400 / 431) before any of this runs.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Broker } from '../broker/broker.js';
import { nextRequestId } from '../broker/broker.js';
import { sendErrorResponse } from '../broker/outcome.js';
import type { WorkerRegistry } from '../workers/registry.js';
import { Router } from './router.js';

export interface FrontDoorOptions {
  broker: Broker;
  registry: WorkerRegistry;
  router: Router;
}

export function createFrontDoor({ broker, registry, router }: FrontDoorOptions): Server {
  const server = createServer(
    { keepAliveTimeout: 5_000, requestTimeout: 0, headersTimeout: 30_000 },
    // Hot path: every client request.
    (req: IncomingMessage, res: ServerResponse) => {
      const host = req.headers.host;
      const route = router.route(host);
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
      const url = req.url?.startsWith('/') ? `http://${host ?? 'localhost'}${req.url}` : (req.url ?? '/');
      broker.handle(req, res, route.worker, url);
    },
  );
  return server;
}

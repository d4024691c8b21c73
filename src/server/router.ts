/**
 * Which worker a request is for: a single-script target takes every request;
 * otherwise a route pattern from a wrangler config (routes.ts) that matches
 * the host and path, and failing that the first label of the Host header,
 * names the worker (`hello.localhost:8787` → `hello`).
 */
import { hostName, pathOf, RouteTable, type RouteRule } from './routes.js';

export type Route = { worker: string } | { notFound: string };

export class Router {
  readonly #single: string | null;
  readonly #routes: RouteTable;

  constructor(singleWorker: string | null, routes: readonly RouteRule[] = []) {
    this.#single = singleWorker;
    this.#routes = new RouteTable(routes);
  }

  // Hot path: one call per request.
  route(host: string | undefined, url = '/'): Route {
    if (this.#single) return { worker: this.#single };
    if (this.#routes.size > 0) {
      const routed = this.#routes.match(hostName(host ?? ''), pathOf(url));
      if (routed) return { worker: routed };
    }
    const label = firstLabel(host ?? '');
    return label ? { worker: label } : { notFound: '' };
  }
}

export function firstLabel(host: string): string {
  let end = host.length;
  const dot = host.indexOf('.');
  if (dot >= 0) end = dot;
  const colon = host.indexOf(':');
  if (colon >= 0 && colon < end) end = colon;
  return host.slice(0, end).toLowerCase();
}

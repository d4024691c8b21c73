/**
 * Which worker a request is for: a single-script target takes every request;
 * otherwise the first label of the Host header names the worker
 * (`hello.localhost:8787` → `hello`).
 */
export type Route = { worker: string } | { notFound: string };

export class Router {
  readonly #single: string | null;

  constructor(singleWorker: string | null) {
    this.#single = singleWorker;
  }

  // Hot path: one call per request.
  route(host: string | undefined): Route {
    if (this.#single) return { worker: this.#single };
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

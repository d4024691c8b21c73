/**
 * Route patterns from wrangler configs (`example.com/api/*`,
 * `*.example.com/*`) → the worker a request is for. As on Cloudflare, `*` may
 * start the host (`*.example.com`: subdomains only; `*example.com`: the
 * domain and its subdomains) and end the path (a prefix); the query string
 * never counts; the most specific pattern wins, whatever the order given.
 */
export interface RouteRule {
  pattern: string;
  worker: string;
}

interface Compiled extends RouteRule {
  hostExact: string | null;
  hostSuffix: string | null;
  path: string;
  pathPrefix: boolean;
}

export class RouteTable {
  readonly #rules: Compiled[];

  constructor(rules: readonly RouteRule[]) {
    this.#rules = rules.map(compile).sort(bySpecificity);
  }

  get size(): number {
    return this.#rules.length;
  }

  // Hot path: one call per request when any worker has routes.
  match(host: string, path: string): string | null {
    for (const rule of this.#rules) {
      if (rule.hostExact !== null ? host !== rule.hostExact : !host.endsWith(rule.hostSuffix!)) continue;
      if (rule.pathPrefix ? path.startsWith(rule.path) : path === rule.path) return rule.worker;
    }
    return null;
  }
}

function compile(rule: RouteRule): Compiled {
  const slash = rule.pattern.indexOf('/');
  const host = rule.pattern.slice(0, slash);
  const path = rule.pattern.slice(slash);
  const pathPrefix = path.endsWith('*');
  return {
    ...rule,
    hostExact: host.startsWith('*') ? null : host,
    // `*.example.com` → ".example.com"; `*example.com` → "example.com" (the apex too); `*` → "" (any host).
    hostSuffix: host.startsWith('*') ? host.slice(1) : null,
    path: pathPrefix ? path.slice(0, -1) : path,
    pathPrefix,
  };
}

function bySpecificity(a: Compiled, b: Compiled): number {
  const exact = Number(b.hostExact !== null) - Number(a.hostExact !== null);
  if (exact !== 0) return exact;
  const host = (b.hostExact ?? b.hostSuffix!).length - (a.hostExact ?? a.hostSuffix!).length;
  if (host !== 0) return host;
  const prefix = Number(a.pathPrefix) - Number(b.pathPrefix);
  if (prefix !== 0) return prefix;
  return b.path.length - a.path.length;
}

/** The Host header without its port, lower-case (`API.example.com:8787` → `api.example.com`). */
export function hostName(host: string): string {
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.lastIndexOf(':');
  return (end > 0 ? host.slice(0, end) : host).toLowerCase();
}

/** The path of a request URL (`http://h/a/b?q` → `/a/b`). */
export function pathOf(url: string): string {
  const start = url.startsWith('/') ? 0 : url.indexOf('/', url.indexOf('//') + 2);
  if (start < 0) return '/';
  const query = url.search(/[?#]/);
  return url.slice(start, query > start ? query : undefined);
}

/**
 * The workload scripts of the isolation lab, written once in Workers module
 * syntax and run unchanged by every model. Each needs only `Response`,
 * `request.url` and `JSON`: the least any model can offer (the `isolate` model
 * has no Web APIs of its own and gets a small Response shim for exactly this).
 */
export const WORKLOADS = {
  /** The warm path: a fixed text body. */
  hello: `export default {
  fetch(request) {
    return new Response('hello\\n', { headers: { 'content-type': 'text/plain' } });
  },
};
`,
  /** A little work per request: builds and serialises a small object. */
  json: `export default {
  fetch(request) {
    const url = new URL(request.url);
    const items = [];
    for (let i = 0; i < 50; i++) items.push({ id: i, path: url.pathname, square: i * i });
    return new Response(JSON.stringify({ items }), { headers: { 'content-type': 'application/json' } });
  },
};
`,
  /** Never yields: what is stopped, how fast, and what it costs the neighbours. */
  runaway: `export default {
  fetch(request) {
    for (;;) {}
  },
};
`,
  /** Allocates until the tenant (or the process hosting it) runs out of memory. */
  bomb: `const hoard = [];
export default {
  fetch(request) {
    for (;;) hoard.push(new Array(1 << 20).fill(Math.random()));
  },
};
`,
} as const;

export type WorkloadName = keyof typeof WORKLOADS;

/** Every workload answers GET / this way, except runaway and bomb, which never answer. */
export function expectedBody(name: 'hello' | 'json', path = '/'): string {
  if (name === 'hello') return 'hello\n';
  return JSON.stringify({ items: Array.from({ length: 50 }, (_, i) => ({ id: i, path, square: i * i })) });
}

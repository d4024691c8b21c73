/**
 * An HTTP load generator shared by the benchmarks and `edgeproc compare`, so
 * every model and every experiment is driven the same way: undici on loopback,
 * in a worker thread, either a fixed request rate (open loop: latency counts
 * from when a request was due, so a stall shows up in full) or a fixed number
 * of connections sending back to back (closed loop: throughput).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export interface LoadOptions {
  url: string;
  headers?: Record<string, string>;
  /**
   * Request i adds headerSets[i % length] to `headers`: one steady load spread over
   * several workers (a Host each) on one connection pool.
   */
  headerSets?: Array<Record<string, string>>;
  /** Read the body of every 5xx and count them by what it says (LoadResult.errorKinds). */
  classifyErrors?: boolean;
  mode: 'rate' | 'concurrency';
  /** Requests per second (mode 'rate'). */
  rate: number;
  /** Connections: the concurrency in mode 'concurrency', the most in flight in mode 'rate'. */
  connections: number;
  durationSec: number;
  /** A request with no complete response after this long counts as failed (default 10 s). */
  timeoutMs?: number;
}

export interface LoadResult {
  sent: number;
  elapsedMs: number;
  latenciesMs: number[];
  /** Responses by status code. */
  statuses: Record<string, number>;
  /** Requests that got no response, by error code. */
  failures: Record<string, number>;
  /**
   * With classifyErrors: complete 5xx responses by status and the first line of their
   * body, numbers and quoted names blanked ("502 The worker's instance stopped … (… SIGKILL) …").
   */
  errorKinds?: Record<string, number>;
}

/** The kind of a 5xx for LoadResult.errorKinds: its status and first body line, with the particulars blanked. */
export function errorKind(status: number, body: string): string {
  const line = body.split('\n', 1)[0]!.trim();
  if (!line) return `${status} (empty body)`;
  return `${status} ${line.replace(/"[^"]*"/g, '"…"').replace(/\d+(\.\d+)?/g, 'N')}`;
}

/** Requests that did not get a 2xx or 3xx response. */
export function errorCount(result: LoadResult): number {
  let errors = 0;
  for (const [status, n] of Object.entries(result.statuses)) if (Number(status) >= 400) errors += n;
  for (const n of Object.values(result.failures)) errors += n;
  return errors;
}

export function requestsPerSec(result: LoadResult): number {
  return (result.latenciesMs.length * 1000) / result.elapsedMs;
}

// Compiled next to this module in dist/; from the TypeScript sources (tests), use the build.
const WORKER_JS = [new URL('./load-worker.js', import.meta.url), new URL('../../dist/src/lab/load-worker.js', import.meta.url)]
  .map((url) => fileURLToPath(url))
  .find((path) => existsSync(path));

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  if (!WORKER_JS) return Promise.reject(new Error('the load generator is not built: run `npm run build`'));
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_JS, { workerData: options });
    worker.once('message', (message: { result?: LoadResult; error?: string }) => {
      if (message.result) resolve(message.result);
      else reject(new Error(`the load generator failed: ${message.error}`));
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

/**
 * The load generator's loop, run in a worker thread so that its timing is not
 * disturbed by whatever the benchmark's main thread does meanwhile (sending
 * hostile requests, killing children, sampling memory).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import { errorKind, type LoadOptions, type LoadResult } from './load.js';

async function run(options: LoadOptions): Promise<LoadResult> {
  const url = new URL(options.url);
  const pool = new Pool(url.origin, { connections: options.connections, pipelining: 1 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const errorKinds: Record<string, number> = {};
  let sent = 0;
  const path = url.pathname + url.search;
  const base = options.headers ?? {};
  const headerSets = options.headerSets?.map((set) => ({ ...base, ...set })) ?? [base];
  const one = async (scheduledAt: number): Promise<void> => {
    const headers = headerSets[sent % headerSets.length]!;
    sent++;
    try {
      // Bounds the whole request, time queued for a connection included: against a stalled
      // server, requests would otherwise wait behind one another for many times the timeout.
      const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000);
      const res = await pool.request({ method: 'GET', path, headers, signal });
      if (options.classifyErrors && res.statusCode >= 500) {
        const kind = errorKind(res.statusCode, await res.body.text());
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      } else {
        await res.body.dump({ limit: Number.POSITIVE_INFINITY, signal });
      }
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
    } catch (error) {
      const code = (error as { code?: string }).code ?? (error as Error).name;
      failures[code] = (failures[code] ?? 0) + 1;
    }
    latencies.push(performance.now() - scheduledAt);
  };

  const started = performance.now();
  const endAt = started + options.durationSec * 1000;
  const inflight = new Set<Promise<void>>();
  if (options.mode === 'rate') {
    // Open loop: request i is due at started + i / rate whether or not earlier ones came
    // back, and its latency counts from when it was due (no coordinated omission).
    const intervalMs = 1000 / options.rate;
    let next = started;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        while (next <= now && next < endAt) {
          const p = one(next);
          inflight.add(p);
          p.finally(() => inflight.delete(p));
          next += intervalMs;
        }
        if (next >= endAt) resolve();
        else setTimeout(tick, Math.max(0, Math.min(1, next - performance.now())));
      };
      tick();
    });
  } else {
    // Closed loop: `connections` clients, each sending its next request when the last one ends.
    const client = async () => {
      while (performance.now() < endAt) await one(performance.now());
    };
    await Promise.all(Array.from({ length: options.connections }, client));
  }
  await Promise.all(inflight);
  const elapsedMs = performance.now() - started;
  await pool.close();
  return { sent, elapsedMs, latenciesMs: latencies, statuses, failures, ...(options.classifyErrors ? { errorKinds } : {}) };
}

run(workerData as LoadOptions).then(
  (result) => parentPort!.postMessage({ result }),
  (error: Error) => parentPort!.postMessage({ error: error.stack ?? error.message }),
);

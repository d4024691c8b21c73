/**
 * Hostile tenants for the limits tests and the hostile battery (test/hostile/):
 * a daemon target holding the chosen fixtures of test/fixtures/hostile/ beside
 * the well-behaved neighbour, a neighbour load that runs for exactly as long as
 * the hostile request does, and the checks every attack ends with.
 */
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { ServeFlags } from '../../src/config.js';
import { startTestDaemon, type RequestOptions, type TestDaemon, type TextResult } from './daemon.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

/**
 * A fresh directory with `hostile/NAME.mjs` for each name, plus `neighbour.mjs`. A name
 * with an extension (`NAME.js`, a service-worker script) is copied as it is.
 */
export function hostileTarget(...names: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-hostile-'));
  copyFileSync(join(FIXTURES, 'neighbour.mjs'), join(dir, 'neighbour.mjs'));
  for (const name of names) {
    const file = /\.m?js$/.test(name) ? name : `${name}.mjs`;
    copyFileSync(join(FIXTURES, 'hostile', file), join(dir, file));
  }
  return dir;
}

/**
 * Limits small enough that every breach in the hostile battery ends within a
 * second or two on a loaded 2-core machine: CPU, waitUntil and drain in hundreds
 * of milliseconds, 64 MiB per instance. Wall time is 25 times the CPU limit: a
 * runaway demoted to background priority beside two busy test workers once got
 * less than a tenth of a CPU, and a 2 s wall limit answered it 504, not 503.
 */
export const HOSTILE_LIMITS = {
  cpuMs: 200,
  memoryMb: 64,
  wallMs: 5000,
  waitUntilMs: 500,
  drainTimeout: 1000,
  warmPool: 2,
} as const satisfies ServeFlags;

/** A daemon serving the named hostile fixtures beside the neighbour, with the neighbour's instance already up. */
export async function startHostileDaemon(names: string[], flags: ServeFlags = {}): Promise<TestDaemon> {
  const daemon = await startTestDaemon(hostileTarget(...names), { ...HOSTILE_LIMITS, ...flags });
  await warmNeighbour(daemon);
  return daemon;
}

/** Sends the hostile request while the neighbour is served beside it, and checks the neighbour saw only `200 neighbour ok`. */
export async function attack(daemon: TestDaemon, worker: string, path = '/', init?: RequestOptions): Promise<TextResult> {
  const hostile = daemon.fetchText(worker, path, init);
  const neighbours = await neighbourDuring(daemon, hostile);
  for (const res of neighbours) expect(res).toMatchObject({ status: 200, text: 'neighbour ok' });
  return hostile;
}

/** After an attack: the daemon still serves the neighbour, which has counted no error at all. */
export async function expectDaemonServes(daemon: TestDaemon): Promise<void> {
  expect(await daemon.fetchText('neighbour')).toMatchObject({ status: 200, text: 'neighbour ok' });
  expect(daemon.broker.stats().find((w) => w.name === 'neighbour')).toMatchObject({ errors: 0 });
}

/** The daemon's error response: exactly `status` and `reason`, then the request id the header names. */
export function expectErrorResponse(res: TextResult, status: number, reason: string): void {
  expect({ status: res.status, text: res.text }).toEqual({ status, text: `${reason}\n\nrequest id: ${requestIdOf(res)}\n` });
}

/** The daemon's 503 for a request stopped at the CPU limit of the hostile battery, naming the worker, the measured ms and the limit. */
export function expectCpuLimitResponse(res: TextResult, worker: string, limitMs: number = HOSTILE_LIMITS.cpuMs): void {
  expect(res.status).toBe(503);
  expect(res.text).toMatch(
    new RegExp(
      `^Worker "${worker}" exceeded its CPU time limit: this request used \\d+ ms of CPU; the limit is ${limitMs} ms per request \\(--cpu-ms\\)\\.\\n\\nrequest id: ${requestIdOf(res)}\\n$`,
    ),
  );
}

/** CPU time of process `pid`'s main thread so far, in ms, from /proc/PID/schedstat (as the watchdog reads it). */
export function mainThreadCpuMs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

/**
 * Where process `pid`'s main thread sleeps in the kernel (/proc/PID/wchan): `futex_do_wait` (or a
 * name like it) inside `Atomics.wait`, `do_epoll_wait` in libuv's poll; `0` while it runs.
 */
export function mainThreadWaitChannel(pid: number): string {
  return readFileSync(`/proc/${pid}/wchan`, 'utf8');
}

/** Pid of the worker's one live instance (undefined when it has none). */
export function instancePid(daemon: TestDaemon, worker: string): number | undefined {
  return daemon.broker.instances().find((instance) => instance.worker === worker)?.pid;
}

/**
 * Sends neighbour requests on `lanes` concurrent connections, back to back, until
 * `during` settles (each lane sends at least one), and returns every response.
 * The hostile request is thus always in flight while the neighbour is served.
 */
export async function neighbourDuring(daemon: TestDaemon, during: Promise<unknown>, lanes = 3): Promise<TextResult[]> {
  let settled = false;
  const done = during.then(
    () => (settled = true),
    () => (settled = true),
  );
  const results: TextResult[] = [];
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      do {
        results.push(await daemon.fetchText('neighbour'));
      } while (!settled);
    }),
  );
  await done;
  return results;
}

/** Brings the neighbour's instance up, so that its cold start does not race the hostile request. */
export async function warmNeighbour(daemon: TestDaemon): Promise<void> {
  const res = await daemon.fetchText('neighbour');
  if (res.status !== 200) throw new Error(`the neighbour answered ${res.status}: ${res.text}`);
}

/** The request id a response carries in its header, checked against the end of its body. */
export function requestIdOf(res: TextResult): string {
  const id = res.headers['edgeproc-request-id'];
  if (typeof id !== 'string' || !res.text.endsWith(`\n\nrequest id: ${id}\n`)) {
    throw new Error(`the response does not end with its request id (header ${String(id)}): ${JSON.stringify(res.text)}`);
  }
  return id;
}

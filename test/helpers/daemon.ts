/**
 * Starts a real daemon (in the test process; tenants run in real children)
 * on port 0 with its log captured, and makes sure nothing outlives the test:
 * closeDaemons() closes every daemon started and fails if any child process
 * it spawned is still alive.
 */
import type { ChildProcess, ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { request as undiciRequest } from 'undici';
import { buildServeConfig, type ServeFlags } from '../../src/config.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/daemon.js';
import { Logger, memorySink, type LogRecord } from '../../src/log.js';

export interface TestDaemon extends Daemon {
  logs: Array<LogRecord & { time: string }>;
  /** Sends a request to worker `worker` (by Host header) and reads the whole body as text. */
  fetchText(worker: string, path?: string, init?: RequestOptions): Promise<TextResult>;
  /** Every child pid this daemon's pool ever started (to check none is left behind). */
  pids: Set<number>;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array | AsyncIterable<Uint8Array>;
}

export interface TextResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

const started: TestDaemon[] = [];

/** Writes `files` (relative path → source) into a fresh temp directory and returns its path. */
export function writeScripts(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-test-'));
  for (const [name, source] of Object.entries(files)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, source);
  }
  return dir;
}

export async function startTestDaemon(target: string, flags: ServeFlags = {}, options: DaemonOptions = {}): Promise<TestDaemon> {
  const logs: Array<LogRecord & { time: string }> = [];
  // A generous CPU limit unless a test sets one: suites that are not about limits must not
  // depend on how fast a shared CI machine compiles a fresh child's code.
  const config = buildServeConfig(target, { port: 0, adminPort: 0, warmPool: 1, cpuMs: 2000, ...flags }, {});
  const daemon = await startDaemon(config, new Logger(memorySink(logs)), options);
  const pids = new Set<number>();
  const track = setInterval(() => {
    for (const instance of daemon.pool.live) if (instance.pid) pids.add(instance.pid);
  }, 5);
  track.unref();
  const close = daemon.close;
  const test: TestDaemon = Object.assign(daemon, {
    logs,
    pids,
    close: async () => {
      for (const instance of daemon.pool.live) if (instance.pid) pids.add(instance.pid);
      clearInterval(track);
      await close();
    },
    fetchText: async (worker: string, path = '/', init: RequestOptions = {}): Promise<TextResult> => {
      const res = await undiciRequest(`${daemon.url}${path}`, {
        method: (init.method ?? 'GET') as 'GET',
        headers: { host: `${worker}.localhost:${daemon.port}`, ...init.headers },
        body: init.body as string | undefined,
      });
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
    },
  });
  started.push(test);
  await daemon.pool.filled();
  for (const instance of daemon.pool.live) if (instance.pid) pids.add(instance.pid);
  return test;
}

/** Closes every daemon started by this file's tests; throws if any child process survived. */
export async function closeDaemons(): Promise<void> {
  const daemons = started.splice(0);
  await Promise.all(daemons.map((d) => d.close()));
  const survivors = daemons.flatMap((d) => [...d.pids]).filter(isAlive);
  if (survivors.length > 0) throw new Error(`child processes outlived their daemon: ${survivors.join(', ')}`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until an `edgeproc serve` process has printed its isolation layers (the last lines of
 * its start-up, the rlimits layer last) and resolves with its stderr up to then.
 */
/**
 * Where a `serve --port 0 --admin-port 0` listens, from the line it prints once it does: ports
 * picked by the daemon itself, where a port picked beforehand by the test (free then) could be
 * taken by another test's connection before the daemon bound it.
 */
export function servedAt(stderr: string): { url: string; adminUrl: string; port: number } {
  const match = / on (http:\/\/\S+) \(admin API (http:\/\/\S+)\)/.exec(stderr);
  if (!match) throw new Error(`serve printed no address: ${stderr}`);
  return { url: match[1]!, adminUrl: match[2]!, port: Number(new URL(match[1]!).port) };
}

/** Stops a `serve` process and waits for its exit, unless it has exited already (waiting would never end). */
export async function stopServe(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  await exited;
}

export function layersPrinted(proc: ChildProcessByStdio<null, null, Readable>): Promise<string> {
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  return new Promise<string>((resolve, reject) => {
    proc.stderr.on('data', (text: string) => {
      stderr += text;
      if (stderr.includes('rlimits')) resolve(stderr);
    });
    proc.once('exit', () => reject(new Error(`serve exited: ${stderr}`)));
  });
}

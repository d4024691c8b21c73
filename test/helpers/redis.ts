/**
 * A real redis-server for tests, on 127.0.0.1 and a free port, keeping nothing
 * on disk (--save '' --appendonly no) and running in the foreground so the test
 * owns the process. useRedisServer() starts one before a file's tests and stops
 * it after them; startRedisServer() gives a test a server of its own (one it
 * may stop, or one with a password).
 *
 * Without redis-server on PATH the Redis tests are skipped with a reason, except
 * under CI, where .ci/run installs it: there a missing server fails the file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { freePort } from '../../src/lab/ports.js';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly proc: ChildProcess;
  /** SIGTERM, then SIGKILL after 2 s; resolves when the process has exited. Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;

function findRedisServer(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

const REDIS_SERVER = findRedisServer();

/** Why this file's Redis tests do not run here, or null when they do. */
export const redisSkipReason: string | null = (() => {
  if (REDIS_SERVER) return null;
  if (process.env.CI) {
    throw new Error('redis-server is not on PATH under CI: .ci/run should have installed it (apt-get install -y redis-server); look at the start of its log');
  }
  return 'redis-server is not installed (apt-get install -y redis-server), so the Redis tests are skipped';
})();

/**
 * Starts redis-server and resolves once it accepts connections; `args` are added to its command
 * line. `port` restarts a server where a stopped one was; by default a free port is taken.
 */
export async function startRedisServer(args: string[] = [], port?: number): Promise<RedisServer> {
  if (!REDIS_SERVER) throw new Error(redisSkipReason ?? 'redis-server not found');
  if (port !== undefined) return startOnce(REDIS_SERVER, port, args);
  // A port free a moment ago may be taken by the time redis binds it: try another.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(REDIS_SERVER, await freePort(), args);
    } catch (error) {
      if (attempt >= 3 || !/Address already in use/.test((error as Error).message)) throw error;
    }
  }
}

function startOnce(binary: string, port: number, args: string[]): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-redis-'));
  const proc = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  void exited.then(() => rmSync(dir, { recursive: true, force: true }));
  let stopping: Promise<void> | null = null;
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    proc,
    stop() {
      stopping ??= (async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) return exited;
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 2000);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
  return new Promise<RedisServer>((resolve, reject) => {
    const timer = setTimeout(() => {
      void server.stop();
      reject(new Error(`redis-server on port ${port} was not ready within ${READY_TIMEOUT_MS} ms:\n${output}`));
    }, READY_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve(server);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`redis-server on port ${port} exited before it was ready:\n${output}`));
    });
  });
}

/**
 * One server for every test of the calling file, started before them and stopped after them.
 * Read `.url` inside tests or hooks, not at collection time.
 */
export function useRedisServer(): { readonly url: string } {
  let server: RedisServer | null = null;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return {
    get url() {
      if (!server) throw new Error('the Redis server of this file has not started (read .url inside a test)');
      return server.url;
    },
  };
}

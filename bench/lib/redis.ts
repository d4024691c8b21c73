/** A redis-server of the benchmark's own: loopback, a free port, nothing written to disk. */
import { spawnSync } from 'node:child_process';
import { freePort, start, type Started } from './processes.js';

export interface BenchRedis {
  url: string;
  process: Started;
}

/** Null when redis-server is not installed (the caller says so and measures SQLite alone). */
export async function startRedis(logPath: string): Promise<BenchRedis | null> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return null;
  const port = await freePort();
  const proc = start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], logPath);
  await proc.waitFor(/Ready to accept connections/);
  return { url: `redis://127.0.0.1:${port}/0`, process: proc };
}

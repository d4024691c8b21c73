/**
 * An edgeproc daemon in its own process (`bin/edgeproc.js serve`), as a user
 * runs it (from the private copy of the build, see build.ts), on ports it
 * picks itself (port 0) and reports on stderr.
 */
import { request } from 'undici';
import { buildRoot } from './build.js';
import { start, type Started } from './processes.js';

export interface DaemonFlags {
  warmPool?: number;
  maxInstances?: number;
  idleTimeoutMs?: number;
  cpuMs?: number;
  memoryMb?: number;
  /** Where the SQLite KV store lives (--persist-to). */
  persistTo?: string;
  /** Keep KV in Redis instead (--kv-url). */
  kvUrl?: string;
  kvOperations?: number;
  /** Children perf can profile (EDGEPROC_PERF_CHILDREN=1, src/pool/perf-children.ts). */
  perfChildren?: boolean;
  /** --recycle-after: requests an instance serves before it is replaced (0: never). */
  recycleAfter?: number;
  /** --egress-allow: non-public ranges tenant fetch may reach (a local origin). */
  egressAllow?: string;
  /** false: --no-code-cache. */
  codeCache?: boolean;
}

export interface RunningDaemon {
  process: Started;
  url: string;
  adminUrl: string;
  port: number;
  stop(): Promise<void>;
}

export interface AdminState {
  workers: Array<{ name: string; instances: number; pids: number[]; requests: number; coldStarts: number; errors: number }>;
  pool: { warm: number; booting: number; hits: number; misses: number; spawned: number; bootFailures: number };
}

export async function startDaemon(
  target: string,
  flags: DaemonFlags,
  logPath: string,
  nodeFlags: string[] = [],
): Promise<RunningDaemon> {
  const args = [...nodeFlags, `${buildRoot()}bin/edgeproc.js`, 'serve', target, '--port', '0', '--admin-port', '0'];
  if (flags.warmPool !== undefined) args.push('--warm-pool', String(flags.warmPool));
  if (flags.maxInstances !== undefined) args.push('--max-instances', String(flags.maxInstances));
  if (flags.idleTimeoutMs !== undefined) args.push('--idle-timeout', String(flags.idleTimeoutMs));
  if (flags.cpuMs !== undefined) args.push('--cpu-ms', String(flags.cpuMs));
  if (flags.recycleAfter !== undefined) args.push('--recycle-after', String(flags.recycleAfter));
  if (flags.memoryMb !== undefined) args.push('--memory-mb', String(flags.memoryMb));
  if (flags.persistTo !== undefined) args.push('--persist-to', flags.persistTo);
  if (flags.kvUrl !== undefined) args.push('--kv-url', flags.kvUrl);
  if (flags.egressAllow !== undefined) args.push('--egress-allow', flags.egressAllow);
  if (flags.kvOperations !== undefined) args.push('--kv-operations', String(flags.kvOperations));
  if (flags.codeCache === false) args.push('--no-code-cache');
  // Its stdout is the log line of every request: straight to the file, not through this process.
  const env = flags.perfChildren ? { ...process.env, EDGEPROC_PERF_CHILDREN: '1' } : process.env;
  const proc = start(process.execPath, args, logPath, { stdoutToLog: true, env });
  try {
    const [, url, adminUrl] = await proc.waitFor(/ on (http:\/\/\S+) \(admin API (http:\/\/\S+)\)/);
    const daemon = { process: proc, url: url!, adminUrl: adminUrl!, port: Number(new URL(url!).port), stop: () => proc.stop() };
    await poolFilled(daemon, flags.warmPool ?? 2);
    return daemon;
  } catch (error) {
    await proc.stop();
    throw error;
  }
}

export async function adminState(daemon: RunningDaemon): Promise<AdminState> {
  const { statusCode, body } = await request(`${daemon.adminUrl}/workers`);
  if (statusCode !== 200) throw new Error(`GET /workers answered ${statusCode}: ${await body.text()}`);
  return (await body.json()) as AdminState;
}

/** Polls GET /workers until the warm pool is back at `target` children with none booting. */
export async function poolFilled(daemon: RunningDaemon, target: number, timeoutMs = 20_000): Promise<AdminState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await adminState(daemon);
    if (state.pool.warm >= target && state.pool.booting === 0) return state;
    if (Date.now() > deadline) throw new Error(`the warm pool did not refill to ${target} within ${timeoutMs} ms: ${JSON.stringify(state.pool)}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

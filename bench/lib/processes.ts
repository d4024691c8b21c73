/**
 * Every process a benchmark starts goes through here, so that each one is
 * stopped when the benchmark ends — on success, on failure and on Ctrl-C.
 * A daemon's children are recorded before it is stopped and killed after it,
 * should any outlive it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';

const started = new Set<ChildProcess>();

export interface Started {
  child: ChildProcess;
  pid: number;
  /** Resolves with the first stderr/stdout line matching `pattern` (rejects if the process exits first). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  stop(): Promise<void>;
}

/** Log files this benchmark process has written to already. */
const opened = new Set<string>();

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  /**
   * The program's stdout goes straight to `logPath` (only stderr is scanned for readiness
   * lines), as `program > file` would: for a daemon that logs a line per request, so that this
   * process does not read, copy and write every line on the cores being measured. Through a
   * pipe to this process, the edgeproc daemon used 39-40 µs of CPU per request under wrk
   * instead of 30-31, and served 21-22k req/s instead of 24.6-25.6k.
   */
  stdoutToLog?: boolean;
}

/** Starts `command` with its output appended to `logPath` and also scanned for readiness lines. */
export function start(command: string, args: string[], logPath: string, { env = process.env, stdoutToLog = false }: StartOptions = {}): Started {
  // A fresh log per benchmark run (a run may start the same program more than once, and those append):
  // logs that grew across runs were read as one run's, and misread.
  const log = openSync(logPath, opened.has(logPath) ? 'a' : 'w');
  opened.add(logPath);
  const child = spawn(command, args, { env, stdio: ['ignore', stdoutToLog ? log : 'pipe', 'pipe'] });
  started.add(child);
  let text = '';
  const waiters: Array<() => void> = [];
  const onData = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    if (text.length > 1 << 16) text = text.slice(-(1 << 15));
    for (const w of waiters.splice(0)) w();
  };
  child.stdout?.on('data', (c: Buffer) => { writeSync(log, c); onData(c); });
  child.stderr!.on('data', (c: Buffer) => { writeSync(log, c); onData(c); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    started.delete(child);
    closeSync(log);
    resolve();
    for (const w of waiters.splice(0)) w();
  }));
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;

  return {
    child,
    pid,
    async waitFor(pattern, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = text.match(pattern);
        if (match) return match;
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`${command} exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}; see ${logPath}`);
        }
        if (Date.now() > deadline) throw new Error(`${command} did not print ${pattern} within ${timeoutMs} ms; see ${logPath}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const orphans = descendantPids(pid);
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      for (const orphan of orphans) {
        try {
          process.kill(orphan, 'SIGKILL');
        } catch {
          // Already gone, as it should be.
        }
      }
    },
  };
}

/**
 * Direct children of `pid`, from /proc/PID/task/TID/children (every thread's: a child
 * belongs to the thread that forked it). No process is started for it: `pgrep -P` was,
 * one per process of the tree each time the limits benchmark picked a child to kill, and
 * those pgreps (a scan of /proc each, at the load generator's priority) were a large part
 * of the CPU that the neighbour competed with in part (c).
 */
export function childPids(pid: number): number[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return []; // gone
  }
  const children = new Set<number>();
  for (const tid of tids) {
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').split(' ')) if (child) children.add(Number(child));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return [...children];
}

/** Every process under `pid`: a daemon's fork server and the children it started. */
export function descendantPids(pid: number): number[] {
  return childPids(pid).flatMap((child) => [child, ...descendantPids(child)]);
}

/** Nanoseconds every thread of `pid` has spent on a CPU (0 once it is gone). */
export function cpuNs(pid: number): number {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0; // gone
  }
  let total = 0;
  for (const tid of tids) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // The thread ended while listed.
    }
  }
  return total;
}

/** The runner children (tenants and warm pool) under a daemon, without its fork server. */
export function runnerPids(daemonPid: number): number[] {
  return descendantPids(daemonPid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('runner.cjs');
    } catch {
      return false; // gone
    }
  });
}

/** Stops every process still running; called when a benchmark ends, whatever the outcome. */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((child) => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    });
  }));
}

// Last resort when the bench process itself is ending: no waiting possible, so SIGKILL.
process.on('exit', () => {
  for (const child of started) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stopAll().finally(() => process.exit(130));
  });
}

export { freePort } from '../../src/lab/ports.js';

/** An HTTP server a benchmark started, once it answers. */
export interface RunningServer {
  process: Started;
  url: string;
  stop(): Promise<void>;
}

/** Waits until the server `proc` answers 200 on `url` (stopping it if it never does). */
export async function answering(proc: Started, url: string, timeoutMs = 15_000): Promise<RunningServer> {
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (proc.child.exitCode !== null) throw new Error(`the server exited with ${proc.child.exitCode} while starting`);
      try {
        const res = await fetch(url);
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`the server did not answer on ${url} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (error) {
    await proc.stop();
    throw error;
  }
  return { process: proc, url, stop: () => proc.stop() };
}

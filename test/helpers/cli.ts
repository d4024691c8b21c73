/**
 * Runs the real `edgeproc` command (bin/edgeproc.js) as a child process, with
 * its output captured, for the tests of what a user sees from the CLI. Every
 * run still alive is killed by killCliRuns() (call it in afterEach).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/edgeproc.js', import.meta.url));

export interface CliRun {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once `text` has appeared on `stream`; throws if the command exits first. */
  waitFor(stream: 'stdout' | 'stderr', text: string): Promise<void>;
}

const running: ChildProcess[] = [];

/** `edgeproc ARGS`, with `env` added to this process's environment. */
export function runCli(args: string[], env: Record<string, string> = {}): CliRun {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  running.push(proc);
  const out = { stdout: '', stderr: '' };
  const waiters: Array<() => void> = [];
  for (const name of ['stdout', 'stderr'] as const) {
    proc[name]!.setEncoding('utf8');
    proc[name]!.on('data', (text: string) => {
      out[name] += text;
      for (const wake of waiters.splice(0)) wake();
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => {
      resolve({ code, signal });
      for (const wake of waiters.splice(0)) wake();
    }),
  );
  return {
    proc,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    exited,
    async waitFor(stream, text) {
      while (!out[stream].includes(text)) {
        if (proc.exitCode !== null) throw new Error(`edgeproc ${args[0]} exited before printing ${JSON.stringify(text)}:\n${out.stderr}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}

/** SIGKILLs every run still alive. */
export function killCliRuns(): void {
  for (const proc of running.splice(0)) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}

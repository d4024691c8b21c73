/** Runs wrk and reads its report: requests per second, latency percentiles, errors. */
import { execFile } from 'node:child_process';

export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  latencyMs: { p50: number; p75: number; p90: number; p99: number; max: number };
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
}

export interface WrkOptions {
  threads: number;
  connections: number;
  durationSec: number;
  /** Extra request headers, e.g. `Host: hello.localhost` to pick a worker of a directory target. */
  headers?: string[];
  /** A wrk Lua script (-s), e.g. one that makes every request a POST with a body. */
  script?: string;
}

export function wrkArgs(url: string, o: WrkOptions): string[] {
  const headers = (o.headers ?? []).flatMap((h) => ['-H', h]);
  const script = o.script ? ['-s', o.script] : [];
  return [`-t${o.threads}`, `-c${o.connections}`, `-d${o.durationSec}s`, ...headers, ...script, '--latency', url];
}

export function runWrk(url: string, options: WrkOptions): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    execFile('wrk', wrkArgs(url, options), { timeout: (options.durationSec + 30) * 1000 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`wrk failed: ${error.message}\n${stderr}`));
        return;
      }
      try {
        resolve(parseWrk(stdout));
      } catch (parseError) {
        reject(parseError);
      }
    });
  });
}

export function parseWrk(text: string): WrkResult {
  const number = (pattern: RegExp): number => {
    const m = text.match(pattern);
    if (!m) throw new Error(`wrk output has no ${pattern}:\n${text}`);
    return Number(m[1]);
  };
  const duration = (pattern: RegExp): number => {
    const m = text.match(pattern);
    if (!m) throw new Error(`wrk output has no ${pattern}:\n${text}`);
    return toMs(Number(m[1]), m[2]!);
  };
  const errors = text.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  return {
    requestsPerSec: number(/Requests\/sec:\s+([\d.]+)/),
    requests: number(/(\d+) requests in/),
    latencyMs: {
      p50: duration(/\s50%\s+([\d.]+)(us|ms|s|m)\b/),
      p75: duration(/\s75%\s+([\d.]+)(us|ms|s|m)\b/),
      p90: duration(/\s90%\s+([\d.]+)(us|ms|s|m)\b/),
      p99: duration(/\s99%\s+([\d.]+)(us|ms|s|m)\b/),
      // "Latency   avg   stdev   max   +/- stdev"
      max: duration(/Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)\b/),
    },
    socketErrors: {
      connect: Number(errors?.[1] ?? 0),
      read: Number(errors?.[2] ?? 0),
      write: Number(errors?.[3] ?? 0),
      timeout: Number(errors?.[4] ?? 0),
    },
    non2xx: Number(text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0),
  };
}

function toMs(value: number, unit: string): number {
  switch (unit) {
    case 'us':
      return value / 1000;
    case 'ms':
      return value;
    case 's':
      return value * 1000;
    default:
      return value * 60_000;
  }
}

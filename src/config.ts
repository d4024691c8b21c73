/**
 * What `serve` runs with: flags (and later a config file) → one validated,
 * frozen ServeConfig. Every problem is an EdgeprocError naming the flag.
 */
import { readFileSync } from 'node:fs';
import { EdgeprocError } from './errors.js';
import { buildLimits, type Limits } from './limits.js';
import { LEVELS, type Level } from './log.js';
import { parseCidr, type Cidr } from './net/cidr.js';

export interface ServeConfig {
  target: string;
  host: string;
  port: number;
  adminHost: string;
  adminPort: number;
  adminToken: string | null;
  /** Non-public ranges tenant fetch may reach anyway (--egress-allow); empty by default. */
  egressAllow: readonly Cidr[];
  limits: Limits;
  /** `--env NAME`: the `[env.NAME]` of each Workers project's wrangler config. */
  env: string | null;
  /** `--watch`: rebuild and redeploy a Workers project when one of its files changes. */
  watch: boolean;
  /** `--test-scheduled`: `GET /__scheduled?cron=…` runs the worker's scheduled handler, as `wrangler dev --test-scheduled`. */
  testScheduled: boolean;
  /** `--persist-to DIR`: where the embedded KV store (SQLite) keeps its file. */
  persistTo: string;
  /** `--kv-url redis://…`: keep KV in Redis instead, shared by every daemon given the same URL. */
  kvUrl: string | null;
  /** `--log-level`: lines below it (the daemon's and tenants' alike) are not written. */
  logLevel: Level;
  /** `--cf FILE`: the fields every incoming request's `request.cf` starts from; null: only what edgeproc knows. */
  cf: Readonly<Record<string, unknown>> | null;
  /** False with `--no-code-cache`: no instance compiles its script from a V8 code cache (src/workers/code-cache.ts). */
  codeCache: boolean;
}

export interface ServeFlags {
  host?: string;
  port?: string | number;
  adminHost?: string;
  adminPort?: string | number;
  adminToken?: string;
  egressAllow?: string;
  warmPool?: string | number;
  maxInstances?: string | number;
  scaleOutConcurrency?: string | number;
  cpuMs?: string | number;
  startupCpuMs?: string | number;
  memoryMb?: string | number;
  subrequests?: string | number;
  wallMs?: string | number;
  waitUntilMs?: string | number;
  recycleAfter?: string | number;
  recycleRssMb?: string | number;
  maxInflight?: string | number;
  maxWebsockets?: string | number;
  requestBodyMb?: string | number;
  idleTimeout?: string | number;
  drainTimeout?: string | number;
  env?: string;
  watch?: boolean;
  testScheduled?: boolean;
  persistTo?: string;
  kvUrl?: string;
  logLevel?: string;
  kvOperations?: string | number;
  cacheMb?: string | number;
  cf?: string;
  codeCache?: boolean;
}

export const DEFAULT_PORT = 8787;
export const DEFAULT_ADMIN_PORT = 8788;
export const DEFAULT_HOST = '127.0.0.1';
/** As wrangler keeps local state in `.wrangler/state`, relative to where the daemon runs. */
export const DEFAULT_PERSIST_TO = '.edgeproc';

export function buildServeConfig(target: string, flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const adminHost = flags.adminHost ?? DEFAULT_HOST;
  const adminToken = flags.adminToken ?? env.EDGEPROC_ADMIN_TOKEN ?? null;
  if (!isLoopback(adminHost) && !adminToken) {
    throw new EdgeprocError(
      'ERR_CONFIG',
      `--admin-host ${adminHost} is not a loopback address: set --admin-token (or EDGEPROC_ADMIN_TOKEN) so the admin API is not open to the network`,
    );
  }
  return Object.freeze({
    target,
    host: flags.host ?? DEFAULT_HOST,
    port: port('--port', flags.port ?? DEFAULT_PORT),
    adminHost,
    adminPort: port('--admin-port', flags.adminPort ?? DEFAULT_ADMIN_PORT),
    adminToken,
    egressAllow: cidrList('--egress-allow', flags.egressAllow),
    env: flags.env ?? null,
    watch: flags.watch ?? false,
    testScheduled: flags.testScheduled ?? false,
    persistTo: flags.persistTo ?? DEFAULT_PERSIST_TO,
    kvUrl: redisUrl(flags.kvUrl),
    logLevel: logLevel(flags.logLevel),
    cf: cfFile(flags.cf),
    codeCache: flags.codeCache ?? true,
    limits: buildLimits({
      warmPoolSize: integer('--warm-pool', flags.warmPool),
      maxInstancesPerWorker: integer('--max-instances', flags.maxInstances),
      scaleOutConcurrency: integer('--scale-out-concurrency', flags.scaleOutConcurrency),
      cpuMs: integer('--cpu-ms', flags.cpuMs),
      startupCpuMs: integer('--startup-cpu-ms', flags.startupCpuMs),
      memoryMb: integer('--memory-mb', flags.memoryMb),
      subrequests: integer('--subrequests', flags.subrequests),
      kvOperations: integer('--kv-operations', flags.kvOperations),
      cacheBytes: mebibytes('--cache-mb', flags.cacheMb),
      wallMs: integer('--wall-ms', flags.wallMs),
      waitUntilMs: integer('--wait-until-ms', flags.waitUntilMs),
      recycleAfterRequests: integer('--recycle-after', flags.recycleAfter),
      recycleRssMb: integer('--recycle-rss-mb', flags.recycleRssMb),
      maxInflightPerWorker: integer('--max-inflight', flags.maxInflight),
      maxWebSocketsPerWorker: integer('--max-websockets', flags.maxWebsockets),
      requestBodyBytes: mebibytes('--request-body-mb', flags.requestBodyMb),
      idleTimeoutMs: integer('--idle-timeout', flags.idleTimeout),
      drainTimeoutMs: integer('--drain-timeout', flags.drainTimeout),
    }),
  });
}

/** Larger than any real `request.cf` (Workers' has ~30 short fields): every Load frame carries it. */
const MAX_CF_BYTES = 64 * 1024;

function cfFile(path: string | undefined): Readonly<Record<string, unknown>> | null {
  if (path === undefined) return null;
  const problem = (what: string) =>
    new EdgeprocError('ERR_CONFIG', `--cf ${path}: ${what}; give a JSON object of request.cf fields, e.g. {"country": "DE", "colo": "FRA"}`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw problem(`cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (Buffer.byteLength(text) > MAX_CF_BYTES) throw problem(`it is larger than ${MAX_CF_BYTES / 1024} KiB`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw problem(`it is not JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw problem(`it holds ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}, not an object`);
  return Object.freeze(value as Record<string, unknown>);
}

function logLevel(value: string | undefined): Level {
  if (value === undefined) return 'debug';
  if (!(LEVELS as readonly string[]).includes(value)) {
    throw new EdgeprocError('ERR_CONFIG', `--log-level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as Level;
}

function redisUrl(value: string | undefined): string | null {
  if (value === undefined) return null;
  let url: URL | null = null;
  try {
    url = new URL(value);
  } catch {
    // reported below
  }
  if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:')) {
    throw new EdgeprocError('ERR_CONFIG', `--kv-url must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), got ${JSON.stringify(value)}`);
  }
  return value;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function port(flag: string, value: string | number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new EdgeprocError('ERR_CONFIG', `${flag} must be a port number from 0 to 65535, got ${JSON.stringify(value)}`);
  }
  return n;
}

function mebibytes(flag: string, value: string | number | undefined): number | undefined {
  const n = integer(flag, value);
  if (n === 0) throw new EdgeprocError('ERR_CONFIG', `${flag} must be at least 1 (MiB), got 0`);
  return n === undefined ? undefined : n * 1024 * 1024;
}

function cidrList(flag: string, value: string | undefined): readonly Cidr[] {
  const ranges: Cidr[] = [];
  for (const item of (value ?? '').split(',')) {
    if (item.trim() === '') continue;
    const range = parseCidr(item);
    if (!range) {
      throw new EdgeprocError(
        'ERR_CONFIG',
        `${flag} must be a comma-separated list of CIDR ranges or addresses (e.g. 10.0.0.0/8,fd00::/8,192.168.1.5), got ${JSON.stringify(item.trim())}`,
      );
    }
    ranges.push(range);
  }
  return Object.freeze(ranges);
}

function integer(flag: string, value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new EdgeprocError('ERR_CONFIG', `${flag} must be a whole number, got ${JSON.stringify(value)}`);
  }
  return n;
}

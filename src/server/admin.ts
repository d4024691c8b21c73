/**
 * The admin API, on its own port: deploy (PUT /workers/NAME with the script
 * as body), remove (DELETE /workers/NAME) and list (GET /workers). It needs a
 * bearer token unless it listens on loopback only.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Broker, WorkerStats } from '../broker/broker.js';
import { EdgeprocError, ScriptLoadError } from '../errors.js';
import { PER_WORKER_LIMITS, workerLimits, type Limits } from '../limits.js';
import type { Logger } from '../log.js';
import type { LogTail } from '../observability/log-tail.js';
import type { DaemonMetrics } from '../observability/metrics.js';
import type { WarmPool } from '../pool/pool.js';
import type { Layer } from '../pool/sandbox.js';
import type { WorkerRegistry } from '../workers/registry.js';
import type { CacheService } from '../bindings/cache/types.js';
import { answerClientErrors } from './client-error.js';

export interface AdminOptions {
  /** The layers around every child, reported with the workers. */
  sandbox: readonly Layer[];
  broker: Broker;
  registry: WorkerRegistry;
  pool: WarmPool;
  limits: Limits;
  log: Logger;
  token: string | null;
  /** GET /metrics; absent, the endpoint answers 404. */
  metrics?: DaemonMetrics;
  /** GET /logs; absent, the endpoint answers 404. */
  tail?: LogTail;
  /** The Cache API's entries: their bytes per worker are listed, and a removed worker's are dropped. */
  cache?: CacheService;
}

/** A worker's stats with its KV bindings (env name → namespace) and the bytes its Cache API entries hold. */
/**
 * Adds the binding fields to a listing's entry, which stats() built for this answer alone. In
 * place: a spread with fields after it (`{ ...stats, kv, cacheBytes }`) takes V8's slow path,
 * ~3 µs an entry here, and made GET /workers with 200 workers cost the daemon ~1 ms of CPU.
 */
function withBindings(options: AdminOptions, stats: WorkerStats): WorkerStats & { kv: Record<string, string>; cacheBytes: number } {
  const entry = stats as WorkerStats & { kv: Record<string, string>; cacheBytes: number };
  entry.kv = { ...options.registry.get(stats.name)?.kv };
  entry.cacheBytes = options.cache?.bytes(stats.name) ?? 0;
  return entry;
}

/** Entries a page of GET /workers holds when the query names none, and the most it may ask for. */
const PAGE_LIMIT_DEFAULT = 100;
const PAGE_LIMIT_MAX = 1000;

/**
 * GET /workers?limit=N&after=NAME: the workers after NAME in name order (the listing's order), at
 * most N of them, and `next`, the `after` of the following page (null on the last). A poller of a
 * daemon with thousands of workers reads a page at a time: the whole listing of 2000 cost the
 * daemon 7.8 ms of its event loop per call. Only the page's entries are built. A message says what
 * is wrong with the query.
 */
function pageOf(options: AdminOptions, query: URLSearchParams): { workers: WorkerStats[]; next: string | null } | string {
  const limitText = query.get('limit');
  const limit = limitText === null ? PAGE_LIMIT_DEFAULT : /^\d{1,4}$/.test(limitText) ? Number(limitText) : NaN;
  if (!(limit >= 1 && limit <= PAGE_LIMIT_MAX)) return `limit must be a whole number from 1 to ${PAGE_LIMIT_MAX}, got "${limitText}"`;
  const after = query.get('after');
  const scripts = options.registry.list();
  const start = after === null ? 0 : scripts.findIndex((script) => script.name.localeCompare(after) > 0);
  const chosen = start === -1 ? [] : scripts.slice(start, start + limit);
  const workers: WorkerStats[] = [];
  for (const script of chosen) {
    const stats = options.broker.statsOf(script.name);
    if (stats) workers.push(withBindings(options, stats));
  }
  const last = chosen.at(-1);
  return { workers, next: last && start + limit < scripts.length ? last.name : null };
}

export function createAdminServer(options: AdminOptions): Server {
  const responses = new WeakMap<Duplex, ServerResponse>();
  const server = createServer((req, res) => {
    responses.set(req.socket, res);
    handleAdmin(options, req, res).catch((error: Error) => {
      // Too late for a status once the head is out (the client went away mid-deploy): a throw here would be an unhandled rejection.
      if (res.headersSent) return void res.destroy();
      const status = error instanceof EdgeprocError && error.errorClass === 'user' ? 400 : 500;
      sendJson(res, status, { error: { code: (error as EdgeprocError).code ?? 'ERR_INTERNAL', message: error.message } });
    });
  });
  answerClientErrors(server, responses);
  return server;
}

async function handleAdmin(options: AdminOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (options.token && !authorised(req, options.token)) {
    req.resume();
    // RFC 9110 §15.5.2: a 401 names the scheme the client should use.
    res.setHeader('www-authenticate', 'Bearer realm="edgeproc admin"');
    sendJson(res, 401, {
      error: { code: 'ERR_UNAUTHORIZED', message: 'missing or wrong admin token: send "Authorization: Bearer TOKEN"' },
    });
    return;
  }
  const url = new URL(req.url ?? '/', 'http://admin');
  if (url.pathname === '/metrics' && options.metrics) return sendMetrics(options.metrics, req, res);
  if (url.pathname === '/logs' && options.tail) return followLogs(options.tail, url.searchParams, req, res);
  const parts = url.pathname.split('/').filter(Boolean);
  if (parts[0] !== 'workers' || parts.length > 2) {
    req.resume();
    sendJson(res, 404, { error: { code: 'ERR_NOT_FOUND', message: `no admin endpoint ${url.pathname}; try GET /workers` } });
    return;
  }
  const name = parts[1];
  if (!name) {
    req.resume();
    if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
    if (!url.searchParams.has('limit') && !url.searchParams.has('after')) {
      sendJson(res, 200, { workers: options.broker.stats().map((w) => withBindings(options, w)), pool: options.pool.stats(), sandbox: options.sandbox });
      return;
    }
    const page = pageOf(options, url.searchParams);
    if (typeof page === 'string') {
      sendJson(res, 400, { error: { code: 'ERR_BAD_REQUEST', message: page } });
      return;
    }
    sendJson(res, 200, { ...page, pool: options.pool.stats(), sandbox: options.sandbox });
    return;
  }
  switch (req.method) {
    case 'PUT':
      return deploy(options, name, url.searchParams, req, res);
    case 'DELETE': {
      req.resume();
      const removed = options.broker.remove(name);
      if (!removed) {
        sendJson(res, 404, { error: { code: 'ERR_UNKNOWN_WORKER', message: `no worker named "${name}"` } });
        return;
      }
      options.cache?.dropWorker(name);
      options.log.info('worker removed', { worker: name });
      sendJson(res, 200, { removed: name });
      return;
    }
    case 'GET': {
      req.resume();
      const stats = options.broker.statsOf(name);
      if (!stats) {
        sendJson(res, 404, { error: { code: 'ERR_UNKNOWN_WORKER', message: `no worker named "${name}"` } });
        return;
      }
      sendJson(res, 200, withBindings(options, stats));
      return;
    }
    default:
      req.resume();
      return methodNotAllowed(res, 'GET, PUT, DELETE');
  }
}

async function deploy(
  options: AdminOptions,
  name: string,
  query: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  // Per-worker limits ride on the query: PUT /workers/NAME?cpuMs=100&memoryMb=256.
  let limits;
  try {
    limits = workerLimits(options.limits, Object.fromEntries([...query].map(([key, value]) => [key, queryInteger(key, value)])));
  } catch (error) {
    req.resume();
    sendJson(res, 400, { error: { code: (error as EdgeprocError).code, message: (error as Error).message } });
    return;
  }
  const source = await readBody(req, options.limits.scriptBytes);
  if (source === null) {
    sendJson(res, 413, {
      error: { code: 'ERR_SCRIPT_TOO_LARGE', message: `the script is larger than the limit of ${options.limits.scriptBytes} bytes` },
    });
    return;
  }
  if (source.trim() === '') {
    sendJson(res, 400, { error: { code: 'ERR_BAD_REQUEST', message: 'the request body is empty: send the script as the body' } });
    return;
  }
  const existed = options.registry.has(name);
  const script = options.registry.prepare(name, source, `${name}.js`, {}, limits);
  try {
    const loaded = await options.broker.deploy(script);
    options.log.info('worker deployed', { worker: name, version: script.version, syntax: loaded.syntax });
    const own = Object.fromEntries([...query.keys()].map((key) => [key, limits[key as keyof typeof limits]]));
    sendJson(res, existed ? 200 : 201, { name, version: script.version, syntax: loaded.syntax, loadMs: loaded.loadMs, limits: own });
  } catch (error) {
    if (error instanceof ScriptLoadError) {
      const { message, line, column, kind } = error.failure;
      sendJson(res, 400, { error: { code: error.code, kind, message, line, column, detail: error.message } });
      return;
    }
    throw error;
  }
}

/** Prometheus text exposition of the daemon's metrics (observability/metrics.ts). */
async function sendMetrics(metrics: DaemonMetrics, req: IncomingMessage, res: ServerResponse): Promise<void> {
  req.resume();
  if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
  const { contentType, text } = await metrics.scrape();
  res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** GET /logs[?worker=NAME]: every log line from now on, as NDJSON, until the client disconnects. */
function followLogs(tail: LogTail, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
  const worker = query.get('worker');
  if (worker !== null && !/^[a-z0-9-]{1,63}$/.test(worker)) {
    sendJson(res, 400, {
      error: { code: 'ERR_WORKER_NAME', message: `worker must be a worker name (lower-case letters, digits, dashes), got ${JSON.stringify(worker)}` },
    });
    return;
  }
  tail.follow(res, worker);
}

/**
 * A limit from the query as a number. Number() made "abc" NaN and "" 0, and the
 * message then said `got null` or `got 0` for what the client never sent.
 */
function queryInteger(key: string, value: string): unknown {
  // An unknown key is workerLimits' to name, with the list of keys a worker can set.
  if (!(PER_WORKER_LIMITS as readonly string[]).includes(key)) return value;
  const n = Number(value);
  // A number out of range is buildLimits' to name, with the range.
  if (value.trim() === '' || Number.isNaN(n)) {
    throw new EdgeprocError('ERR_CONFIG', `query parameter ${key} must be a whole number, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Reads a UTF-8 body up to `maxBytes`; null if it is larger. */
function readBody(req: IncomingMessage, maxBytes: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let tooLarge = Number(req.headers['content-length'] ?? 0) > maxBytes;
    if (tooLarge) {
      req.resume();
      resolve(null);
      return;
    }
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.byteLength;
      if (bytes > maxBytes) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.on('end', () => resolve(tooLarge ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function authorised(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('allow', allow);
  sendJson(res, 405, { error: { code: 'ERR_METHOD', message: `method not allowed here; allowed: ${allow}` } });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

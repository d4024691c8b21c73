/**
 * The HTTP front shared by the lab's single-process hosts (thread, vm,
 * isolate): one Node process, one HTTP server on loopback, tenants picked by
 * the first label of the Host header as in edgeproc, scripts deployed with
 * `PUT /__deploy/NAME`. Each host supplies a TenantRuntime; this file is the
 * only HTTP code among them, so they differ only in how tenants are isolated.
 *
 * The host prints `READY <port>` on stdout once listening, and takes its
 * limits as JSON in argv[2].
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LabLimits } from '../models/types.js';

export interface LabRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

export interface LabResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface TenantRuntime {
  /** Loads `source` (Workers module syntax) as tenant `name`, replacing any earlier one. Rejects with a message if it cannot. */
  deploy(name: string, source: string): Promise<void>;
  /**
   * Runs the tenant's fetch handler. A request stopped by a limit, or whose tenant
   * died, resolves to a 5xx response saying so; it never hangs.
   */
  handle(name: string, request: LabRequest): Promise<LabResponse>;
  has(name: string): boolean;
}

export function limitsFromArgv(): LabLimits {
  const parsed = JSON.parse(process.argv[2] ?? '{}') as Partial<LabLimits>;
  return { cpuMs: parsed.cpuMs ?? 50, memoryMb: parsed.memoryMb ?? 128 };
}

export function serveRuntime(runtime: TenantRuntime): void {
  const server = createServer((req, res) => {
    route(runtime, req, res).catch((error: Error) => send(res, 500, `host error: ${error.message}\n`));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`READY ${(server.address() as AddressInfo).port}\n`);
  });
  // The lab ends the host by closing its stdin (or killing it); either way, no orphan.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

async function route(runtime: TenantRuntime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = req.url ?? '/';
  if (req.method === 'PUT' && path.startsWith('/__deploy/')) {
    const name = decodeURIComponent(path.slice('/__deploy/'.length));
    const source = await readBody(req);
    try {
      await runtime.deploy(name, source);
      send(res, 200, 'deployed\n');
    } catch (error) {
      send(res, 400, `cannot deploy ${name}: ${(error as Error).message}\n`);
    }
    return;
  }
  const name = (req.headers.host ?? '').split('.')[0]!.split(':')[0]!;
  if (!runtime.has(name)) {
    req.resume();
    send(res, 404, `no tenant "${name}"\n`);
    return;
  }
  req.resume();
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(req.headers)) if (typeof value === 'string') headers[key] = value;
  const answer = await runtime.handle(name, { method: req.method ?? 'GET', url: `http://${req.headers.host}${path}`, headers });
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

function send(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

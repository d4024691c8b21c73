/**
 * edgeproc itself, as the lab runs every model: `edgeproc serve` in its own
 * process, tenants deployed through the admin API. `process-pool` is the
 * product (a warm pool of booted children); `process-fresh` is the same daemon
 * with no pool, so every new tenant waits for a Node process to start.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execaNode, type ResultPromise } from 'execa';
import { request } from 'undici';
import { ModelUnavailableError, type LabLimits, type Model, type RunningModel } from './types.js';

const CLI = fileURLToPath(new URL(import.meta.url.includes('/dist/src/') ? '../../../../bin/edgeproc.js' : '../../../bin/edgeproc.js', import.meta.url));

async function startEdgeproc(warmPool: number, limits: LabLimits): Promise<RunningModel> {
  // serve needs at least one worker; this one is never measured.
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-lab-'));
  writeFileSync(join(dir, 'lab-ping.mjs'), `export default { fetch() { return new Response('pong'); } };\n`);
  const daemon: ResultPromise = execaNode(
    CLI,
    ['serve', dir, '--port', '0', '--admin-port', '0', '--warm-pool', String(warmPool), '--cpu-ms', String(limits.cpuMs), '--memory-mb', String(limits.memoryMb)],
    { env: { TZ: 'UTC', PATH: process.env.PATH ?? '' }, extendEnv: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', buffer: false, reject: false, cleanup: true },
  );
  let err = '';
  const urls = await new Promise<[string, string]>((resolve, reject) => {
    daemon.stderr?.on('data', (chunk: Buffer) => {
      if (err.length < 16_384) err += chunk.toString();
      const m = / on (http:\/\/\S+) \(admin API (http:\/\/\S+)\)/.exec(err);
      if (m) resolve([m[1]!, m[2]!]);
    });
    void daemon.then((r) => reject(new ModelUnavailableError(`edgeproc exited while starting (code ${r.exitCode}): ${err.trim().split('\n').slice(-2).join(' | ')}`)));
  });
  const [url, admin] = urls;
  const port = new URL(url).port;
  // Deploys wait for the warm pool: a cold start measured against a pool still booting is a miss.
  await untilPool(admin, warmPool);
  return {
    async deploy(name, source) {
      const res = await request(`${admin}/workers/${encodeURIComponent(name)}`, { method: 'PUT', body: source });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new Error(`edgeproc: deploying ${name} answered ${res.statusCode}: ${text}`);
    },
    target(name) {
      return { url: `${url}/`, headers: { host: `${name}.localhost:${port}` } };
    },
    settle: () => untilPool(admin, warmPool),
    pids() {
      return daemon.pid && daemon.exitCode === null ? [daemon.pid, ...descendants(daemon.pid)] : [];
    },
    async dispose() {
      daemon.kill('SIGTERM');
      const timer = setTimeout(() => daemon.kill('SIGKILL'), 5000);
      await daemon;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function untilPool(admin: string, warm: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await request(`${admin}/workers`);
    const state = (await res.body.json()) as { pool: { warm: number; booting: number } };
    if (state.pool.warm >= warm && state.pool.booting === 0) return;
    if (Date.now() > deadline) throw new Error(`edgeproc's warm pool did not fill to ${warm} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Every process under `pid` (fork server and children), from procfs. */
export function descendants(pid: number): number[] {
  let children: number[] = [];
  try {
    for (const task of readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/)) if (task) children.push(Number(task));
  } catch {
    children = [];
  }
  return children.flatMap((child) => [child, ...descendants(child)]);
}

export const processPoolModel: Model = {
  name: 'process-pool',
  boundary: 'process: each tenant its own Node child (own heap, own PID), taken from a warm pool of booted children',
  notes: 'edgeproc as shipped; CPU and memory limits enforced from outside by the daemon',
  start: (limits) => startEdgeproc(2, limits),
};

export const processFreshModel: Model = {
  name: 'process-fresh',
  boundary: 'process: each tenant its own Node child, spawned when the tenant arrives (no pool)',
  notes: 'edgeproc with --warm-pool 0',
  start: (limits) => startEdgeproc(0, limits),
};

/**
 * The workerd model: Cloudflare's open-source runtime (npm `workerd`), one
 * process, every tenant a service of one generated Cap'n Proto config with
 * its own socket on a loopback port.
 *
 * workerd reads its config once, so a deploy rewrites the config with every
 * tenant so far and restarts the process. workerd accepts connections as soon
 * as it starts but answers none until every service has loaded, so readiness
 * is a small probe service answering — never a tenant's own fetch handler,
 * which for a runaway would stall the process inside the deploy.
 *
 * Self-hosted workerd enforces no CPU or memory limit: a runaway stalls every
 * tenant (and workerd's own SIGTERM handling), which is why stopping falls
 * back to SIGKILL after a short grace.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { request } from 'undici';
import { freePort } from '../ports.js';
import { ModelUnavailableError, type Model, type RunningModel } from './types.js';

const COMPATIBILITY_DATE = '2024-01-01';
/** Restarting with a few hundred tenants takes well under a second; this only bounds a tenant whose top level never ends. */
const READY_TIMEOUT_MS = 15_000;
/** SIGTERM, then SIGKILL: a workerd busy in a runaway never gets to handle SIGTERM. */
const STOP_GRACE_MS = 500;
/** Names become file, service and socket names in the config; the probe's has a dot, so no tenant can take it. */
const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const PROBE = 'lab.probe';
const PROBE_SOURCE = `export default { fetch() { return new Response('ready'); } };\n`;
const STDERR_TAIL_CHARS = 8192;

interface Tenant {
  port: number;
  source: string;
}

/** One workerd process at a time, restarted with a regenerated config on every deploy. */
class RunningWorkerd implements RunningModel {
  readonly #bin: string;
  readonly #dir: string;
  readonly #probePort: number;
  readonly #tenants = new Map<string, Tenant>();
  #process: ResultPromise | null = null;
  #stderr = '';
  /** Deploys run one at a time: each restart must see every tenant deployed before it. */
  #queue: Promise<unknown> = Promise.resolve();
  #disposed = false;

  constructor(bin: string, dir: string, probePort: number) {
    this.#bin = bin;
    this.#dir = dir;
    this.#probePort = probePort;
    writeFileSync(join(dir, `${PROBE}.js`), PROBE_SOURCE);
  }

  deploy(name: string, source: string): Promise<void> {
    if (!TENANT_NAME.test(name)) return Promise.reject(new Error(`workerd: cannot deploy "${name}": a tenant name is letters, digits, - and _`));
    const deployed = this.#queue.then(() => this.#deploy(name, source));
    this.#queue = deployed.catch(() => {});
    return deployed;
  }

  target(name: string): { url: string; headers: Record<string, string> } {
    const tenant = this.#tenants.get(name);
    if (!tenant) throw new Error(`workerd: no tenant "${name}" (deploy it first)`);
    return { url: `http://127.0.0.1:${tenant.port}/`, headers: {} };
  }

  pids(): number[] {
    const proc = this.#process;
    return proc?.pid !== undefined && proc.exitCode === null && proc.signalCode === null ? [proc.pid] : [];
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    // Stopping first ends a deploy waiting on a stuck process; the deploy spawns nothing once disposed.
    await this.#stop();
    await this.#queue;
    await this.#stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** Starts workerd with the tenants so far; resolves once it answers, rejects with what it printed if it exits first. */
  async restart(): Promise<void> {
    await this.#stop();
    if (this.#disposed) throw new Error('workerd: the model was disposed');
    writeFileSync(join(this.#dir, 'config.capnp'), this.#config());
    this.#stderr = '';
    const proc = execa(this.#bin, ['serve', 'config.capnp'], {
      cwd: this.#dir,
      env: { TZ: 'UTC' },
      extendEnv: false,
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: true,
      forceKillAfterDelay: STOP_GRACE_MS,
    });
    this.#process = proc;
    proc.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-STDERR_TAIL_CHARS);
    });
    const exited = proc.then((result) => {
      throw new Error(`workerd exited while starting (${result.signal ?? `code ${result.exitCode}`}): ${this.#complaint()}`);
    });
    exited.catch(() => {});
    const polling = new AbortController();
    try {
      await Promise.race([untilAnswers(`http://127.0.0.1:${this.#probePort}/`, polling.signal), exited]);
    } catch (error) {
      await this.#stop();
      throw error;
    } finally {
      polling.abort();
    }
  }

  async #deploy(name: string, source: string): Promise<void> {
    const previous = this.#tenants.get(name);
    const port = previous?.port ?? (await this.#freePort());
    this.#setTenant(name, { port, source });
    try {
      await this.restart();
    } catch (error) {
      // Put the config back as it was, so that the other tenants keep serving.
      if (previous) this.#setTenant(name, previous);
      else this.#tenants.delete(name);
      await this.restart().catch(() => {});
      throw new Error(`workerd: cannot deploy ${name}: ${(error as Error).message}`);
    }
  }

  #setTenant(name: string, tenant: Tenant): void {
    this.#tenants.set(name, tenant);
    writeFileSync(join(this.#dir, `${name}.js`), tenant.source);
  }

  /** A port no tenant has: the process may be down between restarts, so its ports can look free. */
  async #freePort(): Promise<number> {
    const taken = new Set([this.#probePort, ...[...this.#tenants.values()].map((t) => t.port)]);
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) return port;
    }
  }

  async #stop(): Promise<void> {
    const proc = this.#process;
    this.#process = null;
    if (!proc) return;
    proc.kill('SIGTERM'); // SIGKILL after STOP_GRACE_MS (forceKillAfterDelay).
    await proc;
  }

  /** What workerd said about a failed start: the line naming a service when there is one (a script error), else its last lines. */
  #complaint(): string {
    const lines = this.#stderr.trim().split('\n').filter(Boolean);
    const service = lines.findIndex((line) => line.startsWith('service '));
    if (service >= 0) return lines.slice(service, service + 2).map((line) => line.trim()).join(' ');
    return lines.slice(-3).join(' | ') || '(nothing on stderr)';
  }

  #config(): string {
    const services = [PROBE, ...this.#tenants.keys()];
    const port = (name: string) => (name === PROBE ? this.#probePort : this.#tenants.get(name)!.port);
    return `# Generated by the isolation lab (src/lab/models/workerd.ts); rewritten on every deploy.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
${services.map((name) => `    (name = "${name}", worker = (modules = [ (name = "worker.js", esModule = embed "${name}.js") ], compatibilityDate = "${COMPATIBILITY_DATE}")),`).join('\n')}
  ],
  sockets = [
${services.map((name) => `    (name = "${name}", address = "127.0.0.1:${port(name)}", http = (), service = "${name}"),`).join('\n')}
  ],
);
`;
  }
}

async function startWorkerd(): Promise<RunningModel> {
  const bin = await workerdBinary();
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-lab-workerd-'));
  const running = new RunningWorkerd(bin, dir, await freePort());
  try {
    await running.restart();
  } catch (error) {
    await running.dispose();
    throw new ModelUnavailableError(`workerd does not start here: ${(error as Error).message}`);
  }
  return running;
}

/** The binary of the `workerd` npm package, checked to run on this machine. */
async function workerdBinary(): Promise<string> {
  let bin: string;
  try {
    bin = createRequire(import.meta.url).resolve('workerd/bin/workerd');
  } catch {
    throw new ModelUnavailableError('workerd is not installed: the npm package `workerd` (a devDependency) is missing; run `npm install`');
  }
  const version = await execa(bin, ['--version'], { reject: false, timeout: 10_000 });
  if (version.failed) throw new ModelUnavailableError(`workerd does not run here (${bin}): ${version.shortMessage}`);
  return bin;
}

/** Polls until `url` answers 200. A request sent while workerd loads its services waits for them, so each try may take a while. */
async function untilAnswers(url: string, signal: AbortSignal, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!signal.aborted) {
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) throw new Error(`workerd did not answer within ${timeoutMs} ms (a tenant's top-level code may never end)`);
    try {
      const res = await request(url, { signal, headersTimeout: remainingMs, bodyTimeout: remainingMs });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // Not listening yet, or the process exited and the race is already lost.
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const workerdModel: Model = {
  name: 'workerd',
  boundary: "isolate: each tenant a V8 isolate in workerd, Cloudflare's runtime, all in one process (one config, one event loop)",
  notes:
    'self-hosted workerd enforces no CPU or memory limit: a runaway stalls every tenant until the process is killed, a heap bomb crashes it with every tenant; a new tenant restarts the process with a regenerated config',
  start: () => startWorkerd(),
};

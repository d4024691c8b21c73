/**
 * A model whose tenants all live in one host process (thread, vm, isolate):
 * starts `dist/src/lab/hosts/KIND-host.js`, deploys over its HTTP front.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execaNode, type ResultPromise } from 'execa';
import { request } from 'undici';
import { ModelUnavailableError, type LabLimits, type RunningModel } from './types.js';

const HOSTS = fileURLToPath(new URL(import.meta.url.includes('/dist/src/') ? '../hosts/' : '../../../dist/src/lab/hosts/', import.meta.url));

export async function startHost(kind: string, limits: LabLimits, nodeFlags: string[] = []): Promise<RunningModel> {
  const script = `${HOSTS}${kind}-host.js`;
  if (!existsSync(script)) throw new ModelUnavailableError(`the ${kind} host is not built (${script}): run \`npm run build\``);
  const host: ResultPromise = execaNode(script, [JSON.stringify(limits)], {
    nodeOptions: nodeFlags,
    env: { TZ: 'UTC' },
    extendEnv: false,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    cleanup: true,
  });
  let stderr = '';
  host.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 8192) stderr += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    host.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void host.then((result) => reject(new ModelUnavailableError(`the ${kind} host exited before it was ready (code ${result.exitCode}, signal ${result.signal}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    async deploy(name, source) {
      const res = await request(`${base}/__deploy/${encodeURIComponent(name)}`, { method: 'PUT', body: source });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`${kind}: ${text.trim()}`);
    },
    target(name) {
      return { url: `${base}/`, headers: { host: `${name}.localhost:${port}` } };
    },
    pids() {
      return host.exitCode === null && host.pid ? [host.pid] : [];
    },
    async dispose() {
      host.stdin?.end();
      const timer = setTimeout(() => host.kill('SIGKILL'), 3000);
      await host;
      clearTimeout(timer);
    },
  };
}

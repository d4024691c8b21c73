import { execFileSync } from 'node:child_process';
import { connect, createServer, type AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/lab/ports.js';
import { killCliRuns, runCli, type CliRun } from '../helpers/cli.js';
import { isAlive, writeScripts } from '../helpers/daemon.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});
afterAll(() => origin.close());

afterEach(killCliRuns);

const serve = (args: string[]): CliRun => runCli(['serve', ...args]);

/** Every descendant of `pid`: the daemon's fork server and the tenants' children under it. */
function childPids(pid: number): number[] {
  let direct: number[];
  try {
    direct = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim())
      .map(Number);
  } catch {
    return []; // ps exits 1 when there are none
  }
  return direct.flatMap((child) => [child, ...childPids(child)]);
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

describe('edgeproc serve', () => {
  it('drains on SIGTERM: finishes the in-flight request and its waitUntil work, then exits 0 leaving no child', async () => {
    const dir = writeScripts({
      'slow.mjs': `
        export default {
          async fetch(request, env, ctx) {
            const gate = await fetch('${origin.url}/gate/slow');
            ctx.waitUntil((async () => {
              const after = await fetch('${origin.url}/gate/after');
              console.log('waitUntil finished: ' + await after.text());
            })());
            return new Response('slow ' + await gate.text());
          },
        };`,
      'fast.mjs': `export default { fetch() { return new Response('fast'); } };`,
    });
    const [port, adminPort] = [await freePort(), await freePort()];
    // The origin is on loopback, which tenant fetch may reach only when allowed.
    const flags = ['--warm-pool', '1', '--drain-timeout', '20000', '--egress-allow', '127.0.0.1/32'];
    const served = serve([dir, '--port', String(port), '--admin-port', String(adminPort), ...flags]);
    await served.waitFor('stderr', 'edgeproc serving 2 workers');
    const url = `http://127.0.0.1:${port}/`;

    const fast = await request(url, { headers: { host: 'fast.localhost' } });
    expect(fast.statusCode).toBe(200);
    expect(await fast.body.text()).toBe('fast');
    const slow = request(url, { headers: { host: 'slow.localhost' } }).then(async (res) => ({
      status: res.statusCode,
      text: await res.body.text(),
    }), (error: Error) => ({ status: -1, text: error.message }));
    await origin.arrived('slow');
    const children = childPids(served.proc.pid!);
    expect(children.length).toBeGreaterThanOrEqual(2);

    served.proc.kill('SIGTERM');
    await served.waitFor('stderr', 'SIGTERM received, draining');
    expect(await refused(port)).toBe(true);

    origin.release('slow', 'done');
    expect(await slow).toEqual({ status: 200, text: 'slow done' });
    await origin.arrived('after');
    origin.release('after', 'late work');
    expect(await served.exited).toEqual({ code: 0, signal: null });

    const lines = served
      .stdout()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { msg: string; worker?: string; source?: string });
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'waitUntil finished: late work', worker: 'slow', source: 'tenant' }),
    );
    expect(children.filter(isAlive)).toEqual([]);
  });

  it('bounds the drain by --drain-timeout: a request that never finishes does not keep the daemon up', async () => {
    const dir = writeScripts({
      'stuck.mjs': `export default { async fetch() { console.log('stuck'); await new Promise(() => setInterval(() => {}, 1000)); } };`,
    });
    const [port, adminPort] = [await freePort(), await freePort()];
    const served = serve([dir, '--port', String(port), '--admin-port', String(adminPort), '--warm-pool', '1', '--drain-timeout', '300']);
    await served.waitFor('stderr', 'edgeproc serving 1 worker');
    const stuck = request(`http://127.0.0.1:${port}/`, { headers: { host: 'stuck.localhost' } }).then(
      async (res) => ({ status: res.statusCode, text: await res.body.text(), id: res.headers['edgeproc-request-id'] }),
      (error: Error) => ({ status: 0, text: error.message, id: undefined }),
    );
    await served.waitFor('stdout', '"msg":"stuck"');
    const children = childPids(served.proc.pid!);
    served.proc.kill('SIGTERM');
    expect(await served.exited).toEqual({ code: 0, signal: null });
    // Cut off by the drain timeout, the request still gets a clear answer with its id.
    const answer = await stuck;
    expect(answer.status).toBe(503);
    expect(answer.text).toBe(
      `The daemon is shutting down and this request did not finish within the drain timeout (300 ms). Retry.\n\nrequest id: ${answer.id}\n`,
    );
    expect(children.filter(isAlive)).toEqual([]);
  });

  it('exits 2 with a one-line reason when the target does not exist', async () => {
    const served = serve(['/nonexistent/edgeproc-target', '--port', '0', '--admin-port', '0']);
    expect(await served.exited).toEqual({ code: 2, signal: null });
    expect(served.stderr()).toBe(
      'edgeproc: /nonexistent/edgeproc-target: no such file or directory; give a worker script or a directory of them\n',
    );
  });

  it('exits 2 with a one-line reason when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const dir = writeScripts({ 'a.mjs': `export default { fetch() { return new Response('a'); } };` });
      const served = serve([dir, '--port', String(port), '--admin-port', '0']);
      expect(await served.exited).toEqual({ code: 2, signal: null });
      expect(served.stderr()).toBe(
        `edgeproc: 127.0.0.1:${port} is already in use: pick another --port or stop what listens there\n`,
      );
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('exits 2 when the directory holds no workers', async () => {
    const dir = writeScripts({ 'README.md': 'nothing to serve' });
    const served = serve([dir, '--port', '0', '--admin-port', '0']);
    expect(await served.exited).toEqual({ code: 2, signal: null });
    expect(served.stderr()).toBe(
      `edgeproc: ${dir} holds no workers: add NAME.js, NAME.mjs, NAME/index.js or a folder with a wrangler.toml (names: lower-case letters, digits, dashes)\n`,
    );
  });

  it('exits 2 naming the flag when a flag is invalid', async () => {
    const dir = writeScripts({ 'a.mjs': `export default { fetch() { return new Response('a'); } };` });
    const served = serve([dir, '--port', 'eighty']);
    expect(await served.exited).toEqual({ code: 2, signal: null });
    expect(served.stderr()).toBe('edgeproc: --port must be a port number from 0 to 65535, got "eighty"\n');
  });

  it('exits 2 naming the flag and the bad value when --egress-allow is not a list of CIDR ranges', async () => {
    const dir = writeScripts({ 'a.mjs': `export default { fetch() { return new Response('a'); } };` });
    const served = serve([dir, '--port', '0', '--admin-port', '0', '--egress-allow', '127.0.0.1/32,nonsense']);
    expect(await served.exited).toEqual({ code: 2, signal: null });
    expect(served.stderr()).toBe(
      'edgeproc: --egress-allow must be a comma-separated list of CIDR ranges or addresses (e.g. 10.0.0.0/8,fd00::/8,192.168.1.5), got "nonsense"\n',
    );
  });
});

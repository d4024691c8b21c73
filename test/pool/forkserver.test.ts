import { fork } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ForkServerReply, SpawnRequest } from '../../src/pool/forkserver.js';
import type { SandboxPlan } from '../../src/pool/sandbox.js';
import { spawnChild } from '../../src/pool/spawn.js';
import { closeDaemons, isAlive, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

/** The fork server this (test) process started: a direct child running forkserver.js. */
function forkServerPid(): number | undefined {
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'latin1').trim().split(/\s+/).filter(Boolean);
    } catch {
      continue;
    }
    for (const child of children) {
      try {
        if (readFileSync(`/proc/${child}/cmdline`, 'latin1').includes('forkserver.js')) return Number(child);
      } catch {
        // gone
      }
    }
  }
  return undefined;
}

describe('the fork server', () => {
  it('is replaced if it dies: its orphaned children are killed, the pool refills through a new one, requests are served', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'a.mjs': `export default { fetch() { return new Response('a'); } };` }), { warmPool: 2 });
    expect(await daemon.fetchText('a')).toMatchObject({ status: 200, text: 'a' });
    await daemon.pool.filled();
    const server = forkServerPid();
    expect(server).toBeDefined();
    const before = [...daemon.pool.live].map((i) => i.pid!);
    process.kill(server!, 'SIGKILL');
    // Every child it started is ended (they would be orphans otherwise)...
    const deadline = Date.now() + 10_000;
    while (before.some(isAlive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(before.filter(isAlive)).toEqual([]);
    // ...and the next request is served by a child of a new fork server.
    expect(await daemon.fetchText('a')).toMatchObject({ status: 200, text: 'a' });
    await daemon.pool.filled();
    const replacement = forkServerPid();
    expect(replacement).toBeDefined();
    expect(replacement).not.toBe(server);
  });

  it("hands the daemon every byte a child writes to its channel before the channel arrives", { timeout: 30_000 }, async () => {
    // Each child says who it is on its channel (fd 3) the moment it starts. The fork server hands
    // channels on one at a time, each after the daemon acknowledged the one before; the daemon
    // is made busy here (as under load) while twenty start, so their channels wait in that queue
    // while the children write. Before: what a waiting channel read in the fork server was
    // left there, and children's first frames (a Ready) were lost.
    const dir = mkdtempSync(join(tmpdir(), 'edgeproc-greeter-'));
    chmodSync(dir, 0o755);
    const entry = join(dir, 'greeter.cjs');
    writeFileSync(entry, `require('node:fs').writeSync(3, 'hello from ' + process.pid + '\\n'); setTimeout(() => {}, 20000);\n`);
    chmodSync(entry, 0o444);
    const children = Array.from({ length: 20 }, () => spawnChild({ warmUp: false, heapMb: 64, entry }));
    try {
      const busyUntil = Date.now() + 500;
      while (Date.now() < busyUntil);
      const heard = await Promise.all(
        children.map(async (child) => {
          const socket: Socket = await child.channel;
          let text = '';
          const deadline = setTimeout(() => socket.destroy(), 10_000);
          for await (const chunk of socket) {
            text += String(chunk);
            if (text.endsWith('\n')) break;
          }
          clearTimeout(deadline);
          return { pid: child.pid, text };
        }),
      );
      for (const { pid, text } of heard) expect(text).toBe(`hello from ${pid}\n`);
    } finally {
      for (const child of children) child.kill();
      await Promise.all(children.map((child) => child.exited));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the fork server, spoken to directly, with and without the posix_spawn addon', () => {
  const BUILT = fileURLToPath(new URL('../../dist', import.meta.url));
  const copies: string[] = [];
  afterAll(() => {
    for (const dir of copies) rmSync(dir, { recursive: true, force: true });
  });

  /** A copy of the build, without dist/spawn.node when `withAddon` is false: its fork server then falls back to Node's spawn. */
  function build(withAddon: boolean): string {
    const dir = mkdtempSync(join(tmpdir(), 'edgeproc-forkserver-'));
    copies.push(dir);
    cpSync(BUILT, join(dir, 'dist'), { recursive: true, filter: (path) => withAddon || !path.endsWith('spawn.node') });
    return join(dir, 'dist/src/pool/forkserver.js');
  }

  for (const withAddon of [true, false]) {
    it(`starts a child, hands its channel over, forwards its output and reports its exit (${withAddon ? 'posix_spawn' : "Node's spawn"})`, async () => {
      const server = fork(build(withAddon), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { TZ: 'UTC' } });
      const replies: ForkServerReply[] = [];
      let channel: Socket | undefined;
      server.on('message', (message: ForkServerReply, handle?: Socket) => {
        replies.push(message);
        if (message.type === 'spawned') channel = handle;
      });
      try {
        await new Promise<void>((resolve) => server.once('message', () => resolve()));
        const plain: SandboxPlan = { layers: [], launcher: null, prlimit: null, namespaces: null, denySyscalls: false, perChildUid: false, runnerPath: '' };
        const script = `require('net').Socket({ fd: 3 }).end('on the channel', () => { process.stdout.write('said ' + process.env.ONLY); process.exitCode = 3; })`;
        const request: SpawnRequest = { type: 'spawn', id: 1, command: process.execPath, args: ['-e', script], env: { ONLY: 'this' }, sandbox: plain, nice: 5 };
        server.send(request);
        await until(() => channel !== undefined);
        let frames = '';
        channel!.setEncoding('utf8').on('data', (text: string) => (frames += text));
        await until(() => replies.some((reply) => reply.type === 'exit'));
        const output = replies.flatMap((reply) => (reply.type === 'output' ? [reply.text] : [])).join('');
        expect(output).toBe('said this');
        expect(replies.find((reply) => reply.type === 'exit')).toEqual({ type: 'exit', id: 1, exitCode: 3, signal: null });
        await until(() => frames === 'on the channel');

        server.send({ type: 'spawn', id: 2, command: '/nonexistent/program', args: [], env: {}, sandbox: plain, nice: 5 } satisfies SpawnRequest);
        await until(() => replies.some((reply) => reply.type === 'exit' && reply.id === 2));
        const said = replies.flatMap((reply) => (reply.type === 'output' && reply.id === 2 ? [reply.text] : [])).join('');
        // Each path names the failure its own way, which also shows which one ran.
        expect(said).toMatch(withAddon ? /^edgeproc fork server: spawn failed: posix_spawn: No such file or directory/ : /^edgeproc fork server: spawn failed: spawn \/nonexistent\/program ENOENT/);
      } finally {
        server.kill('SIGKILL');
      }
    });
  }
});

/** Waits for `condition`, polling; fails after 10 s so nothing hangs. */
async function until(condition: () => boolean): Promise<void> {
  for (const start = Date.now(); !condition(); ) {
    if (Date.now() - start > 10_000) throw new Error('timed out waiting for the fork server');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

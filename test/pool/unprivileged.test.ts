/**
 * A daemon run by an ordinary user, as most users run it: no per-child uids (that needs root),
 * so the network namespace comes from a user namespace the launcher makes, and the seccomp
 * filter is what keeps a child that escaped the runner from signalling or renicing the daemon,
 * which shares its uid. CI runs as root: these tests drop to `nobody` (65534) for the daemon,
 * and are skipped where that or an unprivileged user namespace is not possible.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHILD_RLIMITS } from '../../src/pool/sandbox.js';
import { childSandbox } from '../../src/pool/spawn.js';
import { layersPrinted, servedAt, stopServe, writeScripts } from '../helpers/daemon.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NOBODY = 65534;
const launcher = childSandbox().launcher;
const asNobody = { uid: NOBODY, gid: NOBODY };
const possible = process.getuid?.() === 0 && launcher !== null && spawnSync('unshare', ['--user', 'true'], asNobody).status === 0;

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A directory `nobody` can enter (a checkout may sit behind a closed one: CI's is under a mktemp dir). */
function openDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  made.push(dir);
  return dir;
}

/** The status lines of a process that tell its privileges: uids, capabilities, no_new_privs, seccomp. */
function privileges(pid: number | 'self'): Record<string, string> {
  const lines = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n');
  const wanted = ['Uid', 'CapEff', 'CapPrm', 'NoNewPrivs', 'Seccomp'];
  return Object.fromEntries(lines.map((line) => line.split(':\t')).filter(([key]) => wanted.includes(key!)).map(([key, value]) => [key, value!.trim()]));
}

describe.runIf(possible)('the launcher, run by an ordinary user', () => {
  it('makes a user namespace in which its uid is its own, a network namespace in it, and leaves the command no capability', () => {
    const dir = openDir('edgeproc-launch-');
    const copy = join(dir, 'edgeproc-launch');
    copyFileSync(launcher!, copy);
    chmodSync(copy, 0o755);
    const script = 'cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; readlink /proc/self/ns/net; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; grep "Max open files" /proc/self/limits; unshare --user true || echo "unshare refused"';
    const result = spawnSync(copy, [`--nofile=${CHILD_RLIMITS.nofile}`, '--user', '--net', '--deny-syscalls', '--', 'sh', '-c', script], {
      ...asNobody,
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(result.status, result.stderr).toBe(0);
    const lines = result.stdout.split('\n').map((line) => line.trim().split(/\s+/).join(' '));
    // Mapped to itself, not to root (util-linux's --map-root-user would leave it every capability in there).
    expect(lines.slice(0, 3)).toEqual([`${NOBODY} ${NOBODY} 1`, `${NOBODY} ${NOBODY} 1`, 'deny']);
    expect(lines[3]).toMatch(/^net:\[\d+\]$/);
    expect(lines[3]).not.toBe(readlinkSync('/proc/self/ns/net'));
    expect(lines.slice(4, 7)).toEqual(['CapEff: 0000000000000000', 'NoNewPrivs: 1', 'Seccomp: 2']);
    expect(lines[7]).toBe(`Max open files ${CHILD_RLIMITS.nofile} ${CHILD_RLIMITS.nofile} files`);
    expect(lines[8]).toBe('unshare refused');
  });

  it('refuses --user with --uid: the switch is root\'s, the namespace an ordinary user\'s', () => {
    const result = spawnSync(launcher!, ['--user', '--uid=5', '--gid=5', '--', 'true'], { encoding: 'utf8', timeout: 10_000 });
    expect(result.status).toBe(127);
    expect(result.stderr).toContain('edgeproc-launch: --user/--uid: give one or the other');
  });
});

describe.runIf(possible)('a daemon run by an ordinary user', () => {
  let build: string;

  beforeAll(() => {
    // The build where nobody can read it: dist, bin and package.json copied, node_modules hard-linked (copied across file systems).
    build = openDir('edgeproc-unprivileged-');
    for (const entry of ['dist', 'bin', 'package.json']) cpSync(join(ROOT, entry), join(build, entry), { recursive: true });
    if (spawnSync('cp', ['-al', join(ROOT, 'node_modules'), build]).status !== 0) cpSync(join(ROOT, 'node_modules'), join(build, 'node_modules'), { recursive: true });
  });

  it('serves its tenants inside every layer but per-child uids: own network, the seccomp filter, the rlimits', { timeout: 30_000 }, async () => {
    const scripts = writeScripts({ 'hello.mjs': 'export default { fetch: () => new Response("hi") }' });
    chmodSync(scripts, 0o755);
    made.push(scripts);
    const proc = spawn(process.execPath, [join(build, 'bin/edgeproc.js'), 'serve', scripts, '--port', '0', '--admin-port', '0'], {
      ...asNobody,
      cwd: build,
      env: { ...process.env, HOME: build },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      const stderr = await layersPrinted(proc);
      expect(stderr).toContain('child isolation: 7 of 8 layers on');
      expect(stderr).toMatch(/OFF uids {8}not root: children run as uid 65534, the daemon's; the seccomp filter keeps one that escaped the runner from signalling, renicing or tracing another process/);
      for (const name of ['network', 'syscalls', 'rlimits']) expect(stderr).toMatch(new RegExp(`on  ${name} `));

      const { url, adminUrl, port } = servedAt(stderr);
      const res = await request(`${url}/`, { headers: { host: `hello.localhost:${port}` } });
      expect({ status: res.statusCode, text: await res.body.text() }).toEqual({ status: 200, text: 'hi' });
      const listing = (await (await fetch(`${adminUrl}/workers`)).json()) as { workers: Array<{ pids: number[] }> };
      const pid = listing.workers[0]!.pids[0]!;
      expect(privileges(pid)).toEqual({ Uid: `${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`, CapPrm: '0000000000000000', CapEff: '0000000000000000', NoNewPrivs: '1', Seccomp: '2' });
      expect(readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim().split(/\s+/)).toEqual([String(NOBODY), String(NOBODY), '1']);
      expect(readlinkSync(`/proc/${pid}/ns/net`)).not.toBe(readlinkSync('/proc/self/ns/net'));
      // The daemon itself is not in the child's namespaces, nor under its filter.
      expect(privileges(proc.pid!).Seccomp).toBe('0');
    } finally {
      await stopServe(proc);
    }
  });
});

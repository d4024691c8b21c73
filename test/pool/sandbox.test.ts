/**
 * The operating-system layers around every child, tested as if the runner's
 * own layer had already failed: a probe with full access to Node's `process`
 * and `require` is started exactly as a tenant's child is (same command, flags,
 * helpers, uid), and everything it tries must fail. A layer this machine cannot
 * provide (no root, no namespaces) is reported as off and its test skipped;
 * CI runs as root, where every layer is on.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHILD_RLIMITS, UID_BASE, wrapCommand, type LayerName } from '../../src/pool/sandbox.js';
import { childSandbox, spawnChild, stopForkServerIfIdle, type ChildHandle } from '../../src/pool/spawn.js';
import { closeDaemons, layersPrinted, servedAt, startTestDaemon, stopServe, writeScripts } from '../helpers/daemon.js';
import { procStat, readableProbe } from '../helpers/proc.js';

const BIN = fileURLToPath(new URL('../../bin/edgeproc.js', import.meta.url));

const layers = childSandbox().layers;
const on = (name: LayerName) => layers.find((layer) => layer.name === name)!.active;

interface Attempt {
  ok: boolean;
  code?: string;
  value?: string | null;
}
interface ProbeReport {
  uid: number;
  env: string[];
  signals: Attempt[];
  priorities: Attempt[];
  ownPriority: Attempt;
  readFile: Attempt;
  listDir: Attempt;
  writeFile: Attempt;
  childProcess: Attempt;
  workerThread: Attempt;
  addon: Attempt;
  binding: Attempt;
  setuid: Attempt;
  connect: string;
}

interface Probe {
  child: ChildHandle;
  pid: number;
  /** What /proc says about the child, read from outside once it has run its attacks. */
  fds: string[];
  limits: string;
  /** /proc/PID/status, for the seccomp mode. */
  status: string;
  parent: number;
  /** Sends the targets and returns the report; the probe stays alive until end(). */
  run(targets: { signal: number[]; port: number }): Promise<ProbeReport>;
  end(): Promise<void>;
}

let dir: string;
let entry: string;
let listener: Server;
let port: number;
let connections = 0;

beforeAll(async () => {
  ({ dir, entry } = readableProbe());
  listener = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  port = (listener.address() as { port: number }).port;
});

afterAll(async () => {
  await closeDaemons();
  await stopForkServerIfIdle();
  listener.close();
  rmSync(dir, { recursive: true, force: true });
});

/** What each open descriptor of a process points at (a socket or pipe by inode, a file by path). */
function fdTargets(pid: number | 'self'): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return ''; // closed while listed
    }
  });
}

/** The soft and hard value of one line (by its name) of a /proc/PID/limits text. */
function limitsOf(text: string, name: string): string[] {
  return text.split('\n').find((line) => line.startsWith(name))!.split(/\s{2,}/).slice(1, 3);
}

function parentOf(pid: number): number {
  return Number(procStat(pid)[1]);
}

async function startProbe(): Promise<Probe> {
  const child = spawnChild({ warmUp: false, heapMb: 64, entry });
  let output = '';
  child.onOutput((text) => (output += text));
  const channel = await child.channel;
  const pid = child.pid!;
  // Read once the probe has reported: until then the pid may still be the launcher (or prlimit or unshare), before its exec of node.
  const inspect = (probe: Probe) => {
    probe.fds = fdTargets(pid);
    probe.limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    probe.status = readFileSync(`/proc/${pid}/status`, 'utf8');
    probe.parent = parentOf(pid);
  };
  const probe: Probe = {
    child,
    pid,
    fds: [],
    limits: '',
    status: '',
    parent: 0,
    run: async (targets) => {
      channel.write(`${JSON.stringify(targets)}\n`);
      while (!output.includes('\n')) {
        const exited = await Promise.race([child.exited, new Promise((resolve) => setTimeout(resolve, 10))]);
        if (exited) throw new Error(`the probe exited before reporting: ${output}`);
      }
      inspect(probe);
      return JSON.parse(output.split('\n')[0]!) as ProbeReport;
    },
    end: async () => {
      channel.destroy();
      await child.exited;
    },
  };
  return probe;
}

describe('a child that escaped the runner', () => {
  let first: Probe;
  let second: Probe;
  let report: ProbeReport;
  let otherReport: ProbeReport;

  beforeAll(async () => {
    [first, second] = await Promise.all([startProbe(), startProbe()]);
    // Each probe tries to signal the daemon (this process), the fork server and the other tenant's child.
    const forkServer = parentOf(first.pid);
    [report, otherReport] = await Promise.all([
      first.run({ signal: [process.pid, forkServer, second.pid], port }),
      second.run({ signal: [process.pid, forkServer, first.pid], port }),
    ]);
    expect(first.parent).toBe(forkServer);
    await Promise.all([first.end(), second.end()]);
  });

  it.runIf(on('permissions'))('cannot read or write a file, start a process, a thread or an addon, or reach process.binding', () => {
    for (const attack of [report.readFile, report.listDir, report.writeFile, report.childProcess, report.workerThread, report.binding]) {
      expect(attack).toEqual({ ok: false, code: 'ERR_ACCESS_DENIED' });
    }
    expect(report.addon).toEqual({ ok: false, code: 'ERR_DLOPEN_DISABLED' });
  });

  it.runIf(on('uids'))('runs as its own uid and cannot signal the daemon, the fork server or another child', () => {
    expect(report.uid).toBeGreaterThanOrEqual(UID_BASE);
    expect(otherReport.uid).toBeGreaterThanOrEqual(UID_BASE);
    expect(report.uid).not.toBe(otherReport.uid);
    for (const outcome of [...report.signals, ...otherReport.signals]) expect(outcome).toEqual({ ok: false, code: 'EPERM' });
    expect(report.setuid).toEqual({ ok: false, code: 'EPERM' });
  });

  it.runIf(on('uids') || on('syscalls'))('cannot change the priority of the daemon, the fork server or another child, only its own', () => {
    for (const outcome of [...report.priorities, ...otherReport.priorities]) expect(outcome).toEqual({ ok: false, code: 'EPERM' });
    expect(report.ownPriority).toEqual({ ok: true, value: null });
  });

  it.runIf(on('network'))('has no network, not even loopback: the connection never reaches a listener on 127.0.0.1', () => {
    expect(report.connect).toBe('ENETUNREACH');
    expect(otherReport.connect).toBe('ENETUNREACH');
    expect(connections).toBe(0);
  });

  it('sees no variable of the daemon', () => {
    expect(report.env).toEqual(['TZ', 'MALLOC_ARENA_MAX']);
  });

  it('holds no descriptor the daemon holds, and nothing but its stdio, its channel and its own', () => {
    const ours = new Set(fdTargets('self'));
    for (const target of first.fds) {
      // Pipes and sockets are named by inode: the same name in both would be one shared object.
      if (/^(socket|pipe):/.test(target)) expect(ours.has(target), target).toBe(false);
      else expect(target, 'an open file').toMatch(/^(\/dev\/null|anon_inode:.*)$/);
    }
    // stdin (/dev/null), stdout, stderr and the channel; node opens the rest itself (epoll, eventfd, its own pipes).
    expect(first.fds.filter((target) => /^socket:/.test(target))).toHaveLength(3);
  });

  it.runIf(on('syscalls'))('runs under the seccomp filter, with no way to gain privileges by exec', () => {
    expect(first.status).toMatch(/^Seccomp:\s+2$/m);
    expect(first.status).toMatch(/^NoNewPrivs:\s+1$/m);
  });

  it.runIf(on('rlimits'))('has its resource limits: few files, no core dumps, no file writes, few tasks', () => {
    const limit = (name: string) => limitsOf(first.limits, name);
    expect(limit('Max open files')).toEqual([String(CHILD_RLIMITS.nofile), String(CHILD_RLIMITS.nofile)]);
    expect(limit('Max core file size')).toEqual(['0', '0']);
    expect(limit('Max file size')).toEqual(['0', '0']);
    if (on('uids')) expect(limit('Max processes')).toEqual([String(CHILD_RLIMITS.nproc), String(CHILD_RLIMITS.nproc)]);
  });
});

describe('the launcher', () => {
  const plan = childSandbox();
  const readLimits = ['-e', 'process.stdout.write(require("fs").readFileSync("/proc/self/limits", "utf8"))'];

  it.runIf(plan.launcher !== null)('starts a child in one exec where it was built, and fails closed: nothing runs with less than asked', () => {
    expect(wrapCommand(plan, null, process.execPath, []).command).toBe(plan.launcher);
    const launch = (args: string[]) => spawnSync(plan.launcher!, [...args, '--', process.execPath, '-e', 'process.stdout.write("ran")'], { encoding: 'utf8', timeout: 10_000 });
    for (const [args, says] of [
      [['--nofile=many'], '--nofile: not a number in range'],
      [['--fsize=-1'], '--fsize: not a number in range'],
      [['--uid=1900000001'], '--uid/--gid: give both or neither'],
      [['--seccomp'], '--seccomp: unknown option'],
    ] as const) {
      const result = launch([...args]);
      expect(result.status).toBe(127);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(`edgeproc-launch: ${says}`);
    }
  });

  it.runIf(on('syscalls') && spawnSync('unshare', ['--user', 'true']).status === 0)(
    'refuses under its filter what works without it: here, making a namespace',
    () => {
      const result = spawnSync(plan.launcher!, ['--deny-syscalls', '--', 'unshare', '--user', 'true'], { encoding: 'utf8', timeout: 10_000 });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(/Operation not permitted/);
    },
  );

  it.runIf(on('syscalls') && process.arch === 'x64' && spawnSync('perl', ['-e', '1']).status === 0)(
    'refuses a namespace made by clone, answers clone3 with ENOSYS, and leaves a plain clone (a thread, a process) alone',
    () => {
      // x86_64 numbers: clone 56, clone3 435; SIGCHLD 17, CLONE_NEWUSER 0x10000000.
      const perl = `$| = 1; my $r = syscall(56, 0x10000000 | 17, 0, 0, 0, 0); print "newuser=$r:", $!+0, "\n";
        $r = syscall(435, 0, 0); print "clone3=$r:", $!+0, "\n";
        $r = syscall(56, 17, 0, 0, 0, 0); exit 0 if $r == 0; waitpid($r, 0); print "plain=", ($r > 0 ? "ok" : $!+0), "\n";`;
      const result = spawnSync(plan.launcher!, ['--deny-syscalls', '--', 'perl', '-e', perl], { encoding: 'utf8', timeout: 10_000 });
      expect(result.stdout).toBe('newuser=-1:1\nclone3=-1:38\nplain=ok\n'); // EPERM 1, ENOSYS 38
    },
  );

  it.runIf(on('syscalls') && spawnSync('perl', ['-e', '1']).status === 0)(
    'lets a child signal and renice itself only, even where it shares its uid with the daemon',
    () => {
      // No uid switch here: the child runs as this process's uid, and only the filter stands between.
      // Each priority is set to what it is (a failed layer changes nothing); PRIO_USER (2) names a
      // uid no process holds. Each call prints "ok" or its errno.
      const perl = `$| = 1; my $p = getppid(); my $g = getpgrp();
        sub r { return $_[0] ? "ok" : $!+0 }
        print join(",", r(kill(0, $$)), r(setpriority(0, 0, getpriority(0, 0))),
          r(kill(0, $p)), r(kill(0, -$g)), r(setpriority(0, $p, getpriority(0, $p))), r(setpriority(2, ${UID_BASE - 1}, 0))), "\n";`;
      const run = (filter: string[]) => spawnSync(plan.launcher!, [...filter, '--', 'perl', '-e', perl], { encoding: 'utf8', timeout: 10_000 }).stdout;
      // Itself: yes. Its parent, its process group, a whole uid: EPERM (1).
      expect(run(['--deny-syscalls'])).toBe('ok,ok,1,1,1,1\n');
      // The same without the filter: all allowed (no process holds that uid: ESRCH, 3).
      expect(run([])).toBe('ok,ok,ok,ok,ok,3\n');
    },
  );

  it.runIf(on('rlimits') && spawnSync('prlimit', ['--core=0', '--', 'true']).status === 0)(
    'is not needed: without it util-linux prlimit sets the same limits',
    () => {
      const { command, args } = wrapCommand({ ...plan, launcher: null }, null, process.execPath, readLimits);
      expect(command).toBe('prlimit');
      const result = spawnSync(command, args, { encoding: 'utf8', timeout: 10_000 });
      expect(result.status, result.stderr).toBe(0);
      expect(limitsOf(result.stdout, 'Max open files')).toEqual([String(CHILD_RLIMITS.nofile), String(CHILD_RLIMITS.nofile)]);
      expect(limitsOf(result.stdout, 'Max core file size')).toEqual(['0', '0']);
      expect(limitsOf(result.stdout, 'Max file size')).toEqual(['0', '0']);
    },
  );
});

describe('the layers', () => {
  it('are reported by the daemon in GET /workers, and a tenant is served inside all of them', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'hello.mjs': 'export default { fetch: () => new Response("hi") }' }));
    expect((await daemon.fetchText('hello')).text).toBe('hi');
    const res = await fetch(`${daemon.adminUrl}/workers`);
    const body = (await res.json()) as { sandbox: Array<{ name: string; active: boolean; detail: string }> };
    expect(body.sandbox.map((layer) => layer.name)).toEqual(['globals', 'permissions', 'environment', 'descriptors', 'network', 'uids', 'syscalls', 'rlimits']);
    expect(body.sandbox).toEqual(layers);
    for (const layer of body.sandbox) expect(layer.detail.length).toBeGreaterThan(10);
  });
});

describe('edgeproc serve', () => {
  it('prints the layers, and a descriptor its own parent leaked (no close-on-exec) reaches no child', async () => {
    const dir = writeScripts({ 'hello.mjs': 'export default { fetch: () => new Response("hi") }' });
    // As a shell script or a CI runner may: fd 40 open on a file, inherited by everything exec'd below.
    const proc = spawn('bash', ['-c', `exec 40</etc/hostname; exec "${process.execPath}" "${BIN}" serve "${dir}" --port 0 --admin-port 0`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      const stderr = await layersPrinted(proc);
      const active = layers.filter((layer) => layer.active).length;
      expect(stderr).toContain(`child isolation: ${active} of ${layers.length} layers on`);
      for (const layer of layers) expect(stderr).toContain(`${layer.active ? 'on ' : 'OFF'} ${layer.name.padEnd(11)} ${layer.detail}`);
      expect(readlinkSync(`/proc/${proc.pid}/fd/40`)).toBe('/etc/hostname');

      const { url, adminUrl, port } = servedAt(stderr);
      const res = await request(`${url}/`, { headers: { host: `hello.localhost:${port}` } });
      expect(await res.body.text()).toBe('hi');
      const listing = (await (await fetch(`${adminUrl}/workers`)).json()) as { workers: Array<{ pids: number[] }> };
      const [pid] = listing.workers[0]!.pids;
      for (const holder of [pid!, parentOf(pid!)]) expect(fdTargets(holder)).not.toContain('/etc/hostname');
    } finally {
      await stopServe(proc);
    }
  });
});

/**
 * The operating-system layers around every child, under the runner's own
 * (a frozen Web-only global scope, no code from strings). The runner's layer is
 * the one a tenant meets; these are for the day it fails: a tenant that reached
 * Node's `process` must still find no files, no network, no other tenant to
 * signal and no room to fork.
 *
 * Each layer is on where the machine allows it, and what was found is reported
 * (serve prints it, GET /workers returns it). The layers, outermost first, are
 * the command a child is started with:
 *
 *   edgeproc-launch --nofile --core --fsize [--nproc] [--net --uid=U --gid=G | --user --net] --deny-syscalls --
 *     node --experimental-permission --allow-fs-read=RUNNER … RUNNER
 *
 * The launcher (native/launch.c) sets the limits, makes the namespaces (as root
 * the network one and the uid switch; otherwise a user namespace, in which the
 * daemon's uid maps to itself, and the network one), and installs a seccomp
 * filter itself. Where it was not built, util-linux does all but the filter in two
 * execs, `prlimit … -- unshare [--user --map-root-user] --net [--setuid U --setgid
 * G] --`, ~4 ms more per spawn. Every helper execs rather
 * than forks, so the pid the fork server sees is the node process the watchdog
 * measures and the daemon kills.
 *
 * Separate uids need root. A child's uid is picked at random from a range of
 * 2^24 and is never one a live process holds (checked in /proc), so two
 * daemons on one machine, each with its own fork server, do not share uids.
 */
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createHash, randomInt } from 'node:crypto';
import { builtProgram } from './native-addon.js';
import { PERF_CHILDREN } from './perf-children.js';

/** Per-child uids and gids come from [UID_BASE, UID_BASE + UID_SPAN): far above any real user's or subuid range. */
export const UID_BASE = 1_900_000_000;
export const UID_SPAN = 1 << 24;

/** Resource limits of every child (soft = hard, so the child cannot raise them). */
export const CHILD_RLIMITS = Object.freeze({
  /** Open files: a busy child holds its stdio, its channel and a few of V8's and libuv's own. */
  nofile: 256,
  /** No core dumps: a crashed tenant's heap must not land on disk. */
  core: 0,
  /** No regular file may be written (the permission model refuses writes too). */
  fsize: 0,
  /** Tasks of the child's uid, threads included: node runs ~11. Only set with per-child uids. */
  nproc: 64,
});

export type LayerName = 'globals' | 'permissions' | 'environment' | 'descriptors' | 'network' | 'uids' | 'syscalls' | 'rlimits';

export interface Layer {
  name: LayerName;
  active: boolean;
  /** What the layer stops, or why it is off on this machine. */
  detail: string;
}

/** What the fork server needs to wrap a child's command; plain data, sent over IPC. */
export interface SandboxPlan {
  layers: Layer[];
  /** The launcher (native/launch.c) where it was built and works here; else util-linux's helpers. */
  launcher: string | null;
  /** The resource limits as options (the launcher's and prlimit's alike), or null if they cannot be set. */
  prlimit: string[] | null;
  /** The namespace options of the launcher, or of unshare without it (not the uid ones); null if no namespace could be made. */
  namespaces: string[] | null;
  /** The launcher installs its seccomp filter. */
  denySyscalls: boolean;
  /** Give each child its own uid (root only; the launcher, or unshare without it, switches). */
  perChildUid: boolean;
  /** The runner as the children read it, and what --allow-fs-read grants. */
  runnerPath: string;
}

/**
 * Files the runner reads from beside itself, each only the first time a tenant needs it:
 * HTMLRewriter's glue and its WebAssembly module, and URLPattern (scripts/build.mjs,
 * runner/companions.ts). Children may read them, and they travel with the runner when it is copied.
 */
export const RUNNER_COMPANIONS: readonly string[] = Object.freeze(['html-rewriter.cjs', 'html_rewriter_bg.wasm', 'urlpattern.cjs']);

/** The runner and the companions beside it (a build without them runs without HTMLRewriter). */
function runnerFiles(runner: string): string[] {
  const dir = dirname(runner);
  return [runner, ...RUNNER_COMPANIONS.map((name) => join(dir, name)).filter((path) => existsSync(path))];
}

const plans = new Map<string, SandboxPlan>();
const readGrants = new Map<string, string[]>();

/** Probes the machine once per process (a few ms of spawnSync) and returns the plan for this runner. */
export function sandboxPlan(runnerPath: string): SandboxPlan {
  let plan = plans.get(runnerPath);
  if (!plan) plans.set(runnerPath, (plan = probe(runnerPath)));
  return plan;
}

function probe(realRunner: string): SandboxPlan {
  const root = process.getuid?.() === 0;
  const built = builtProgram('edgeproc-launch');
  const launcher = built !== null && works(built, ['--core=0', '--', 'true']) ? built : null;
  const prlimitOk = launcher !== null || works('prlimit', ['--core=0', '--', 'true']);
  // The launcher makes the namespaces itself (as root the network namespace and the uid switch;
  // otherwise a user namespace first, the only way an ordinary user may make a network one), so
  // it is what is probed. Without it util-linux's unshare does both.
  const [netTool, netOptions, uidOptions] = launcher
    ? [launcher, root ? ['--net'] : ['--user', '--net'], [`--uid=${UID_BASE}`, `--gid=${UID_BASE}`]]
    : ['unshare', root ? ['--net'] : ['--user', '--map-root-user', '--net'], ['--setuid', String(UID_BASE), '--setgid', String(UID_BASE)]];
  const netProbe = run(netTool, [...netOptions, '--', 'true']);
  const perChildUid = root && netProbe.ok && works(netTool, [...netOptions, ...uidOptions, '--', 'true']);
  const runnerPath = perChildUid ? readableByAll(realRunner) : realRunner;
  const filterProbe = launcher ? run(launcher, [...(netProbe.ok ? netOptions : []), '--deny-syscalls', '--', 'true']) : null;
  const denySyscalls = filterProbe?.ok === true;

  const nproc = perChildUid ? [`--nproc=${CHILD_RLIMITS.nproc}`] : [];
  // See perf-children.ts: V8 must be able to write the child's JIT map for perf.
  const fsize = PERF_CHILDREN ? 'unlimited' : String(CHILD_RLIMITS.fsize);
  const writes = PERF_CHILDREN ? 'FILE WRITES ALLOWED (EDGEPROC_PERF_CHILDREN=1: V8 writes /tmp/perf-PID.map)' : 'no file writes';
  const limits = `${CHILD_RLIMITS.nofile} open files, no core dumps, ${writes}${perChildUid ? `, ${CHILD_RLIMITS.nproc} tasks` : ''}`;
  const layers: Layer[] = [
    { name: 'globals', active: true, detail: 'frozen Web-only global scope; eval and new Function throw EvalError' },
    {
      name: 'permissions',
      active: true,
      detail: "Node's permission model: read access to the runner and its own files only; no writes, child processes, worker threads or addons",
    },
    { name: 'environment', active: true, detail: 'no variable of the daemon (TZ=UTC and MALLOC_ARENA_MAX=1 only)' },
    { name: 'descriptors', active: true, detail: 'stdout, stderr and the frame channel only; nothing else is inherited' },
    netProbe.ok
      ? { name: 'network', active: true, detail: 'own network namespace with no interface up: every subrequest goes through the daemon' }
      : { name: 'network', active: false, detail: `no network namespace (${basename(netTool)} ${netOptions.join(' ')}: ${netProbe.reason}); children share the host's network` },
    perChildUid
      ? { name: 'uids', active: true, detail: `each child runs as its own uid (from ${UID_BASE}): it cannot signal or trace the daemon or another child` }
      : {
          name: 'uids',
          active: false,
          detail: root
            ? `cannot switch uids with ${basename(netTool)} here: children run as root`
            : denySyscalls
              ? `not root: children run as uid ${process.getuid?.()}, the daemon's; the seccomp filter keeps one that escaped the runner from signalling, renicing or tracing another process, but native code in it could read the files that uid may read`
              : `not root: children run as uid ${process.getuid?.()}, the daemon's, and one that escaped the runner could signal the daemon or another child`,
        },
    denySyscalls
      ? {
          name: 'syscalls',
          active: true,
          detail:
            'seccomp filter: system calls Node never makes are refused (ptrace, process_vm_*, namespaces and mounts, bpf, perf_event_open, keyrings, userfaultfd, io_uring, modules, machine-wide settings), and those that act on a process by pid (signals, priorities, scheduling, rlimits) work on the child itself only',
        }
      : {
          name: 'syscalls',
          active: false,
          detail: !launcher
            ? 'no seccomp filter: edgeproc-launch was not built (no C compiler at npm ci)'
            : `no seccomp filter (edgeproc-launch --deny-syscalls: ${filterProbe?.reason})`,
        },
    prlimitOk
      ? { name: 'rlimits', active: true, detail: limits }
      : { name: 'rlimits', active: false, detail: 'neither edgeproc-launch (built by npm run build where there is a C compiler) nor prlimit (util-linux) is here: children get the daemon’s resource limits' },
  ];
  return {
    layers,
    launcher,
    prlimit: prlimitOk
      ? [`--nofile=${CHILD_RLIMITS.nofile}`, `--core=${CHILD_RLIMITS.core}`, `--fsize=${fsize}`, ...nproc]
      : null,
    namespaces: netProbe.ok ? netOptions : null,
    denySyscalls,
    perChildUid,
    runnerPath,
  };
}

/** Node's own flags for the permission model: read access to the runner and its companions, nothing else. */
export function permissionFlags(plan: SandboxPlan): string[] {
  let grants = readGrants.get(plan.runnerPath);
  // One flag per file: Node 20 takes a comma as part of the path.
  if (!grants) readGrants.set(plan.runnerPath, (grants = runnerFiles(plan.runnerPath).map((path) => `--allow-fs-read=${path}`)));
  return ['--experimental-permission', ...grants];
}

/**
 * The command that starts one child: node and its arguments wrapped in the
 * plan's helpers, as uid `uid` when the plan gives each child its own.
 */
export function wrapCommand(plan: SandboxPlan, uid: number | null, command: string, args: string[]): { command: string; args: string[] } {
  if (plan.launcher) {
    const ids = uid === null ? [] : [`--uid=${uid}`, `--gid=${uid}`];
    const filter = plan.denySyscalls ? ['--deny-syscalls'] : [];
    return { command: plan.launcher, args: [...(plan.prlimit ?? []), ...(plan.namespaces ?? []), ...ids, ...filter, '--', command, ...args] };
  }
  let argv = [command, ...args];
  if (plan.namespaces) {
    const ids = uid === null ? [] : ['--setuid', String(uid), '--setgid', String(uid)];
    argv = ['unshare', ...plan.namespaces, ...ids, '--', ...argv];
  }
  if (plan.prlimit) argv = ['prlimit', ...plan.prlimit, '--', ...argv];
  return { command: argv[0]!, args: argv.slice(1) };
}

/** Hands out uids no live process holds; the fork server releases each when its child exits. */
export class UidAllocator {
  readonly #held = new Set<number>();

  acquire(): number {
    const busy = liveUids();
    for (;;) {
      const uid = UID_BASE + randomInt(UID_SPAN);
      if (this.#held.has(uid) || busy.has(uid)) continue;
      this.#held.add(uid);
      return uid;
    }
  }

  release(uid: number): void {
    this.#held.delete(uid);
  }
}

/** The owners of /proc/PID: every uid a live process runs as (in this pid namespace). */
function liveUids(): Set<number> {
  const uids = new Set<number>();
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    try {
      uids.add(statSync(`/proc/${entry}`).uid);
    } catch {
      // Exited while listing.
    }
  }
  return uids;
}

/**
 * A child of another uid must be able to read the runner and its companions: if any
 * directory on their path is closed to others (a checkout under /root, a mktemp dir), copies
 * in a world-readable temporary directory are used instead (see sharedCopy).
 */
export function readableByAll(path: string): string {
  const files = runnerFiles(path);
  if (files.every(openToOthers)) return path;
  return sharedCopy(files) ?? privateCopy(files);
}

/**
 * The copy every daemon of this build shares, named by the runner's hash and never removed:
 * a copy per daemon, removed at exit, was left behind by every daemon killed hard. Used only
 * if it is what this daemon would write: a real directory and file of this user, closed to
 * writes by anyone else (a sticky /tmp keeps others from swapping them), with the runner's
 * bytes. Null if not, or if it cannot be made.
 */
function sharedCopy(files: string[]): string | null {
  const uid = process.getuid?.() ?? -1;
  const contents = files.map((file) => ({ name: copyName(files, file), bytes: readFileSync(file) }));
  const hash = createHash('sha256');
  for (const { name, bytes } of contents) hash.update(name).update(bytes);
  const dir = join(tmpdir(), `edgeproc-runner-${hash.digest('hex').slice(0, 16)}`);
  try {
    try {
      mkdirSync(dir);
      chmodSync(dir, 0o755);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return null;
    }
    const folder = lstatSync(dir);
    // Children enter it too (the x bits).
    if (!folder.isDirectory() || !safeToShare(folder, uid) || (folder.mode & 0o001) === 0) return null;
    for (const { name, bytes } of contents) {
      const copy = join(dir, name);
      if (!existsSync(copy)) {
        // Written whole under another name first: a daemon starting meanwhile never reads half a file.
        const partial = join(dir, `.${name}-${process.pid}-${randomInt(1 << 30)}`);
        writeFileSync(partial, bytes, { flag: 'wx', mode: 0o444 });
        chmodSync(partial, 0o444);
        renameSync(partial, copy);
      }
      const file = lstatSync(copy);
      if (!file.isFile() || !safeToShare(file, uid) || !readFileSync(copy).equals(bytes)) return null;
    }
    return join(dir, RUNNER_COPY);
  } catch {
    return null;
  }
}

/** The runner's copy is always runner.cjs; a companion keeps its name. */
const RUNNER_COPY = 'runner.cjs';
function copyName(files: string[], file: string): string {
  return file === files[0] ? RUNNER_COPY : basename(file);
}

/** Owned by `uid`, readable by all, writable by nobody else. */
function safeToShare(stat: Stats, uid: number): boolean {
  return stat.uid === uid && (stat.mode & 0o022) === 0 && (stat.mode & 0o004) !== 0;
}

/** A copy of this daemon's own, removed at exit: where the shared one cannot be trusted. */
function privateCopy(files: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-runner-'));
  chmodSync(dir, 0o755);
  for (const file of files) {
    const copy = join(dir, copyName(files, file));
    copyFileSync(file, copy);
    chmodSync(copy, 0o444);
  }
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return join(dir, RUNNER_COPY);
}

function openToOthers(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    if ((statSync(path).mode & 0o004) === 0) return false;
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      if ((statSync(dir).mode & 0o001) === 0) return false;
      if (dir === dirname(dir)) return true;
    }
  } catch {
    return false;
  }
}

function works(command: string, args: string[]): boolean {
  return run(command, args).ok;
}

function run(command: string, args: string[]): { ok: boolean; reason: string } {
  const result = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 5000 });
  if (result.error) return { ok: false, reason: (result.error as NodeJS.ErrnoException).code === 'ENOENT' ? `${command} not found` : result.error.message };
  if (result.status !== 0) return { ok: false, reason: result.stderr.trim().split('\n')[0] || `exit code ${result.status}` };
  return { ok: true, reason: '' };
}

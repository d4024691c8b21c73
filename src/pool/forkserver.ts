/**
 * The fork server: a small helper process that starts the daemon's children.
 *
 * fork() copies the page tables of the process that calls it, and libuv calls it
 * on the event loop: in the daemon (a large process, busy serving) one spawn
 * stopped every tenant's traffic for 3 ms at the median and 10 ms at worst, once
 * per refill of the warm pool. Here, in a process that does nothing else, the
 * same spawn stalls no one. The child's frame channel (its fd 3) is handed to
 * the daemon over this process's IPC channel, so frames never pass through here.
 *
 * Protocol (Node IPC, JSON), daemon → here: {type:'spawn', id, command, args, env},
 * {type:'kill', id}; here → daemon: {type:'ready'}, {type:'spawned', id, pid} with
 * the channel socket as the handle, {type:'output', id, text}, {type:'exit', id,
 * exitCode, signal}. When the daemon goes away, every child is killed and this
 * process exits: no orphans.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fastSpawn, fastSpawnSupported, type SpawnedChild } from './fast-spawn.js';
import { startAt } from './priority.js';
import { UidAllocator, wrapCommand, type SandboxPlan } from './sandbox.js';

export interface SpawnRequest {
  type: 'spawn';
  id: number;
  command: string;
  args: string[];
  env: Record<string, string>;
  /** The layers to wrap the command in (sandbox.ts); the uid, if any, is picked here. */
  sandbox: SandboxPlan;
  /** The child's priority from its first instruction (priority.ts, bootNice). */
  nice: number;
}

export interface KillRequest {
  type: 'kill';
  id: number;
}

export type ForkServerReply =
  | { type: 'ready' }
  | { type: 'spawned'; id: number; pid: number }
  | { type: 'output'; id: number; text: string }
  | { type: 'exit'; id: number; exitCode: number | null; signal: string | null };

/**
 * Closes every descriptor this process inherited without close-on-exec (whatever
 * started the daemon may have left one open: a shell's, a CI runner's), since
 * exec would pass it on to every child. Node and libuv open all of their own
 * with O_CLOEXEC, the IPC channel to the daemon included, so those stay.
 */
function closeInheritedDescriptors(): void {
  const O_CLOEXEC = 0o2000000;
  for (const entry of readdirSync('/proc/self/fd')) {
    const fd = Number(entry);
    if (fd < 3) continue;
    try {
      const flags = /flags:\s*([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      if (flags !== undefined && (parseInt(flags, 8) & O_CLOEXEC) === 0) closeSync(fd);
    } catch {
      // The directory's own descriptor, closed once listed.
    }
  }
}

closeInheritedDescriptors();

const children = new Map<number, SpawnedChild>();
const uids = new UidAllocator();

/**
 * Node starts reading a child's extra pipe the moment it makes the socket, and a socket handed
 * on over IPC leaves what it had read behind: a frame the child wrote before its channel
 * reached the daemon was lost, and a child whose Ready (or warm-up echo) went that way never
 * became ready. Handles go one at a time, each after the daemon's acknowledgement of the one
 * before, so with 18 pool misses at once (400 req/s over 20 new workers) a channel waited in
 * that queue longer than its child took to boot: 1-8 children a 15 s run met the 10 s boot timeout.
 * Unread, the bytes stay in the pipe for the daemon. (`_handle` is Node's own; there is no
 * public way to stop a socket reading.)
 */
function stopReading(socket: unknown): void {
  const handle = (socket as { _handle?: { readStop?: () => number; reading?: boolean } } | null)?._handle;
  if (!handle?.readStop) return;
  handle.readStop();
  handle.reading = false;
}

function reply(message: ForkServerReply, handle?: unknown): void {
  if (!process.connected) return;
  process.send!(message, handle as never, {}, () => {});
}

/** Node's ChildProcess as the fork server uses a child, where the spawn addon is not built. */
function adapt(child: ChildProcess): SpawnedChild {
  return {
    pid: child.pid!,
    stdout: child.stdout as Socket,
    stderr: child.stderr as Socket,
    channel: child.stdio[3] as Socket,
    onExit: (listener) => {
      // An error after the start (a kill of a child already gone) changes nothing; unheard, it would end this process.
      child.on('error', () => {});
      child.once('exit', listener);
    },
    kill: () => child.kill('SIGKILL'),
  };
}

/** Starts a child through posix_spawn where the addon is built (fast-spawn.ts), else through Node's spawn. */
function launch(argv: string[], env: Record<string, string>): Promise<SpawnedChild> {
  return new Promise((resolve, reject) => {
    if (fastSpawnSupported) return resolve(fastSpawn(argv, env));
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'], windowsHide: true });
    if (child.pid === undefined) return void child.once('error', reject);
    resolve(adapt(child));
  });
}

async function start({ id, command, args, env, sandbox, nice }: SpawnRequest): Promise<void> {
  // Held from before the spawn until the child is gone, so no other child can be given it meanwhile.
  const uid = sandbox.perChildUid ? uids.acquire() : null;
  const wrapped = wrapCommand(sandbox, uid, command, args);
  let child: SpawnedChild;
  try {
    child = await launch([wrapped.command, ...wrapped.args], env);
  } catch (error) {
    if (uid !== null) uids.release(uid);
    reply({ type: 'output', id, text: `edgeproc fork server: spawn failed: ${(error as Error).message}\n` });
    reply({ type: 'exit', id, exitCode: null, signal: null });
    return;
  }
  children.set(id, child);
  stopReading(child.channel);
  try {
    // Still one thread (the launcher, about to exec): every thread node starts later inherits this.
    startAt(child.pid, nice);
  } catch {
    // Gone already, or not allowed: priority is a refinement, never a reason to fail.
  }
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => reply({ type: 'output', id, text }));
    // A read error (the child gone mid-write) ends the stream; its exit is reported below.
    stream.on('error', () => {});
  }
  // Sending the handle closes this process's copy of it: the socket is the daemon's alone.
  reply({ type: 'spawned', id, pid: child.pid }, child.channel);
  // After the exit, wait for the child's last words on stdout and stderr (V8's out-of-memory
  // report) to be forwarded. Not the channel: it lives in the daemon now.
  const drained = [child.stdout, child.stderr].map((stream) => new Promise<void>((resolve) => stream.once('close', () => resolve())));
  child.onExit((exitCode, signal) => {
    if (uid !== null) uids.release(uid);
    void Promise.all(drained).then(() => {
      children.delete(id);
      reply({ type: 'exit', id, exitCode, signal });
    });
  });
}

process.on('message', (message: SpawnRequest | KillRequest) => {
  if (message.type === 'spawn') void start(message);
  else if (message.type === 'kill') children.get(message.id)?.kill();
});

process.on('disconnect', () => {
  for (const child of children.values()) child.kill();
  process.exit(0);
});

reply({ type: 'ready' });

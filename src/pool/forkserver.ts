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

export interface SpawnRequest {
  type: 'spawn';
  id: number;
  command: string;
  args: string[];
  env: Record<string, string>;
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

const children = new Map<number, ChildProcess>();

function reply(message: ForkServerReply, handle?: unknown): void {
  if (!process.connected) return;
  process.send!(message, handle as never, {}, () => {});
}

function start({ id, command, args, env }: SpawnRequest): void {
  let child: ChildProcess;
  try {
    child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'], windowsHide: true });
  } catch (error) {
    reply({ type: 'output', id, text: `edgeproc fork server: spawn failed: ${(error as Error).message}\n` });
    reply({ type: 'exit', id, exitCode: null, signal: null });
    return;
  }
  children.set(id, child);
  let exited = false;
  child.on('error', (error) => {
    reply({ type: 'output', id, text: `edgeproc fork server: ${error.message}\n` });
    if (child.pid === undefined && !exited) {
      exited = true;
      children.delete(id);
      reply({ type: 'exit', id, exitCode: null, signal: null });
    }
  });
  if (child.pid === undefined) return;
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (text: string) => reply({ type: 'output', id, text }));
  }
  // Sending the handle closes this process's copy of it: the socket is the daemon's alone.
  reply({ type: 'spawned', id, pid: child.pid }, child.stdio[3]);
  // After 'exit', wait for the child's last words on stdout and stderr (V8's out-of-memory
  // report) to be forwarded. Not 'close': that also waits for fd 3, which now lives in the daemon.
  const drained = [child.stdout, child.stderr].map(
    (stream) => new Promise<void>((resolve) => (stream ? stream.once('close', () => resolve()) : resolve())),
  );
  child.on('exit', (exitCode, signal) => {
    void Promise.all(drained).then(() => {
      if (exited) return;
      exited = true;
      children.delete(id);
      reply({ type: 'exit', id, exitCode, signal });
    });
  });
}

process.on('message', (message: SpawnRequest | KillRequest) => {
  if (message.type === 'spawn') start(message);
  else if (message.type === 'kill') children.get(message.id)?.kill('SIGKILL');
});

process.on('disconnect', () => {
  for (const child of children.values()) child.kill('SIGKILL');
  process.exit(0);
});

reply({ type: 'ready' });

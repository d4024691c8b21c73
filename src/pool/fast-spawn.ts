/**
 * Children started with posix_spawn(3) through a small addon (native/spawn.c, built by `npm run
 * build` into dist/), for the fork server. libuv's spawn forks, copying the page tables of the
 * whole Node process: 4.8-5.6 ms of the fork server's time per child here, against 0.6 ms for
 * posix_spawn. Where the addon was not built, the fork server uses Node's spawn.
 *
 * What Node's ChildProcess did besides, this does by hand: the child's ends of its sockets are
 * closed here, its exit is read with waitpid on SIGCHLD (libuv reaps only children it started),
 * and it is never signalled once reaped, so a recycled pid is never hit.
 */
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { loadAddon } from './native-addon.js';

interface Addon {
  /** [pid, stdout, stderr, channel]: our ends of the child's sockets. Throws with `errno` set. */
  spawn(argv: string[], env: string[]): [number, number, number, number];
  /** null while the child runs; else [exitCode, signal number], once. */
  reap(pid: number): [number | null, number | null] | null;
}

const addon = loadAddon<Addon>('spawn');

/** Whether children can be started without a fork of this process. */
export const fastSpawnSupported = addon !== null;

/** The parts of Node's ChildProcess the fork server uses. */
export interface SpawnedChild {
  pid: number;
  stdout: Socket;
  stderr: Socket;
  /** The frame channel (the child's fd 3), not read here: it goes to the daemon unread. */
  channel: Socket;
  /** Called once, when the child has exited and been reaped. */
  onExit(listener: (exitCode: number | null, signal: NodeJS.Signals | null) => void): void;
  /** SIGKILL, unless the child is already reaped. */
  kill(): void;
}

const live = new Map<number, (exitCode: number | null, signal: NodeJS.Signals | null) => void>();
const signalNames = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

function reapAll(): void {
  for (const [pid, exited] of live) {
    let status: [number | null, number | null] | null;
    try {
      status = addon!.reap(pid);
    } catch {
      status = [null, null]; // ECHILD: not ours to wait for any more
    }
    if (status === null) continue;
    live.delete(pid);
    exited(status[0], status[1] === null ? null : (signalNames.get(status[1]) ?? null));
  }
  if (live.size === 0) process.off('SIGCHLD', reapAll);
}

/** Starts `argv` with exactly `env`; throws (with `errno`) if it could not be started. */
export function fastSpawn(argv: string[], env: Record<string, string>): SpawnedChild {
  const [pid, out, err, chan] = addon!.spawn(argv, Object.entries(env).map(([name, value]) => `${name}=${value}`));
  let exitListener: ((exitCode: number | null, signal: NodeJS.Signals | null) => void) | null = null;
  let status: [number | null, NodeJS.Signals | null] | null = null;
  if (live.size === 0) process.on('SIGCHLD', reapAll);
  live.set(pid, (exitCode, signal) => {
    status = [exitCode, signal];
    exitListener?.(exitCode, signal);
  });
  // The child may have exited before the handler was on.
  setImmediate(reapAll);
  return {
    pid,
    stdout: new Socket({ fd: out, readable: true, writable: false }),
    stderr: new Socket({ fd: err, readable: true, writable: false }),
    // Unread: a frame read here would be lost when the socket is handed on (forkserver.ts).
    channel: new Socket({ fd: chan, readable: true, writable: true, pauseOnCreate: true } as ConstructorParameters<typeof Socket>[0]),
    onExit(listener) {
      exitListener = listener;
      if (status) listener(...status);
    },
    kill() {
      if (!live.has(pid)) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Exited and not reaped yet: SIGCHLD is on its way.
      }
    },
  };
}

/**
 * How a child is started: the runner bundle, the Node flags that shape the
 * tenant's world, an explicit minimal environment (MEASURED.md: one inherited
 * variable such as NODE_EXTRA_CA_CERTS adds ~85 ms to every start) and the
 * stdio layout whose fourth slot is the frame channel.
 *
 * The spawning itself happens in the fork server (forkserver.ts), off the
 * daemon's event loop; the daemon gets a handle with the child's pid, its
 * channel socket, its output and its exit.
 */
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { execaNode, type ResultPromise } from 'execa';
import type { ForkServerReply, KillRequest, SpawnRequest } from './forkserver.js';
import { PERF_CHILD_FLAGS } from './perf-children.js';
import * as priority from './priority.js';
import { permissionFlags, sandboxPlan, type SandboxPlan } from './sandbox.js';

// This file runs compiled (dist/src/pool/) or, under the tests, from source (src/pool/).
const PACKAGE_ROOT = new URL(import.meta.url.includes('/dist/src/') ? '../../../' : '../../', import.meta.url);
export const RUNNER_PATH = fileURLToPath(new URL('dist/runner.cjs', PACKAGE_ROOT));
const FORKSERVER_PATH = fileURLToPath(new URL('dist/src/pool/forkserver.js', PACKAGE_ROOT));

export const CHILD_FLAGS: readonly string[] = Object.freeze([
  // eval() and new Function() throw EvalError, as on Workers.
  '--disallow-code-generation-from-strings',
  // Module workers are evaluated with vm.SourceTextModule.
  '--experimental-vm-modules',
  // The experimental-feature warning would otherwise reach the log of every child.
  '--no-warnings',
  // Caps the young generation of a busy child at 2 x 4 MiB (V8's default grows to 2 x 16 MiB
  // under load). An idle child never grows past the initial 1 MiB semi-spaces, so this costs
  // nothing in bench/memory; 1 MiB would save nothing more idle and cost ~5% CPU in GC.
  '--max-semi-space-size=4',
  // V8's background threads (concurrent GC and compiling): node starts 4 whatever the machine; two
  // are as many as a child can use beside its main thread on these 2-core machines, and fewer
  // threads is less resident stack and malloc arena per child. Node's permission model costs
  // ~0.35 MiB of private memory per child; with this bench/memory read 9.97 MiB PSS per tenant
  // against 10.0 without it, in one session.
  '--v8-pool-size=2',
  // Not --no-memory-reducer, tried on 2026-12-07: the reducer's collections, run between the
  // runner's turns while a child serves light traffic, land on a request now and then (one
  // stopped at 22 ms under --cpu-ms 10 sat beside a "Mark-Compact (reduce)"), but without it an
  // idle tenant keeps its garbage resident: one that made ~40 MB of it a request held 23.9 MiB
  // of anonymous memory 22 s after its last request, against 9.2 with the reducer.
]);

/**
 * A child's whole environment: nothing of the daemon's (MEASURED.md: one stray variable cost
 * every start 85 ms). UTC, as on Workers. One malloc arena: glibc gives each thread that
 * allocates an arena of its own, and a child's V8 threads barely use theirs; with one,
 * bench/memory read 9.93–9.96 MiB PSS per tenant against 10.005–10.013 in the same hour,
 * and boot and the request path showed no change beyond the noise.
 */
export const CHILD_ENV: Readonly<Record<string, string>> = Object.freeze({ TZ: 'UTC', MALLOC_ARENA_MAX: '1' });

export interface SpawnOptions {
  /**
   * Warm the request path before signalling ready (pool children). A child
   * spawned for a request already waiting (pool miss) skips it: the request
   * itself is the warm-up, and 60 ms of boot would be in its latency.
   */
  warmUp: boolean;
  /** V8 heap limit of the child, from limits.memoryMb. */
  heapMb: number;
  /**
   * Boot at background priority (priority.bootNice): a child for the warm pool, or one a
   * request waits for that is a worker's that keeps breaching its limits (see Broker). The
   * pool raises one still booting after BACKGROUND_BOOT_MAX_MS.
   */
  background?: boolean;
  /**
   * What the child runs instead of the runner, in the same sandbox (tests: a probe of
   * what a tenant that escaped the runner could still do). Must be readable by all.
   */
  entry?: string;
}

export interface ChildExit {
  exitCode: number | null;
  signal: string | null;
}

/** The daemon's view of one child started by the fork server. */
export class ChildHandle {
  /** Known once the fork server has started it. */
  pid: number | undefined;
  readonly channel: Promise<Socket>;
  readonly exited: Promise<ChildExit>;
  readonly #server: ForkServer;
  readonly #id: number;
  #output: (text: string) => void = () => {};
  #resolveChannel!: (socket: Socket) => void;
  #resolveExit!: (exit: ChildExit) => void;
  #rejectChannel!: (error: Error) => void;
  #killRequested = false;
  #done = false;

  constructor(server: ForkServer, id: number) {
    this.#server = server;
    this.#id = id;
    this.channel = new Promise((resolve, reject) => {
      this.#resolveChannel = resolve;
      this.#rejectChannel = reject;
    });
    this.channel.catch(() => {});
    this.exited = new Promise((resolve) => (this.#resolveExit = resolve));
  }

  /** Text the child wrote to stdout or stderr. */
  onOutput(listener: (text: string) => void): void {
    this.#output = listener;
  }

  /** SIGKILL now: straight to the pid once known (no hop through the fork server), else when it is. */
  kill(): void {
    if (this.#done) return;
    this.#killRequested = true;
    if (this.pid) {
      try {
        process.kill(this.pid, 'SIGKILL');
        return;
      } catch {
        // Gone already; the fork server reports the exit.
      }
    }
    this.#server.send({ type: 'kill', id: this.#id });
  }

  /** Fork server events for this child. */
  spawned(pid: number, socket: Socket): void {
    this.pid = pid;
    this.#resolveChannel(socket);
    if (this.#killRequested) this.kill();
  }

  output(text: string): void {
    this.#output(text);
  }

  exit(exit: ChildExit): void {
    if (this.#done) return;
    this.#done = true;
    this.#rejectChannel(new Error('the child exited before its channel opened'));
    this.#resolveExit(exit);
  }
}

/** The daemon's connection to its fork server: started on first use, restarted if it dies. */
type ForkServerProcess = ResultPromise<{ ipc: true; reject: false; stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }>;

class ForkServer {
  #process: ForkServerProcess | null = null;
  #ready = false;
  #queue: SpawnRequest[] = [];
  readonly #children = new Map<number, ChildHandle>();
  #nextId = 1;

  spawn(request: Omit<SpawnRequest, 'type' | 'id'>): ChildHandle {
    const id = this.#nextId++;
    const handle = new ChildHandle(this, id);
    this.#children.set(id, handle);
    handle.exited.then(() => {
      this.#children.delete(id);
      this.#unrefWhenIdle();
    });
    this.send({ type: 'spawn', id, ...request });
    return handle;
  }

  send(message: SpawnRequest | KillRequest): void {
    const server = this.#start();
    if (!this.#ready) {
      if (message.type === 'spawn') this.#queue.push(message);
      return;
    }
    server.send(message);
  }

  #start() {
    if (this.#process) {
      this.#process.channel?.ref();
      return this.#process;
    }
    if (!existsSync(FORKSERVER_PATH)) throw new Error(`the fork server is not built (${FORKSERVER_PATH}): run \`npm run build\``);
    const server = execaNode(FORKSERVER_PATH, [], {
      // Its children get their environment from each spawn request; it needs none of its own.
      env: { TZ: 'UTC' },
      extendEnv: false,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      ipc: true,
      serialization: 'json',
      reject: false,
      cleanup: true,
    });
    // Only live children (through the IPC channel, see #unrefWhenIdle) keep the daemon's process up.
    server.unref();
    this.#process = server;
    this.#ready = false;
    // See priority.ts: at the tenants' priority; each child is set to its own as it starts.
    priority.forkServer(server.pid);
    server.on('message', (message: ForkServerReply, handle: unknown) => this.#onMessage(message, handle as Socket | undefined));
    server.then(() => this.#onServerExit(server));
    return server;
  }

  #onMessage(message: ForkServerReply, socket: Socket | undefined): void {
    switch (message.type) {
      case 'ready':
        this.#ready = true;
        for (const queued of this.#queue.splice(0)) this.#process!.send(queued);
        this.#unrefWhenIdle();
        return;
      case 'spawned':
        if (socket) this.#children.get(message.id)?.spawned(message.pid, socket);
        return;
      case 'output':
        this.#children.get(message.id)?.output(message.text);
        return;
      case 'exit':
        this.#children.get(message.id)?.exit({ exitCode: message.exitCode, signal: message.signal });
        return;
    }
  }

  /** The fork server died (killed from outside): its children are orphans; end them and start afresh. */
  #onServerExit(server: ForkServerProcess): void {
    if (this.#process !== server) return;
    this.#process = null;
    this.#ready = false;
    for (const child of [...this.#children.values()]) {
      if (child.pid) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      child.exit({ exitCode: null, signal: 'SIGKILL' });
    }
    const queued = this.#queue.splice(0);
    for (const request of queued) this.#children.get(request.id)?.exit({ exitCode: null, signal: null });
  }

  /** Ends the fork server once no child is alive (the daemon is closing), and waits for it to exit. */
  async stopIfIdle(): Promise<void> {
    const server = this.#process;
    if (!server || this.#children.size > 0) return;
    this.#process = null;
    this.#ready = false;
    // Held until it is gone, or the daemon's process would end first and leave it behind.
    server.ref();
    if (server.connected) server.disconnect();
    await server;
  }

  /** With no child alive the fork server must not keep the daemon's process running. */
  #unrefWhenIdle(): void {
    if (this.#children.size === 0) this.#process?.channel?.unref();
  }
}

const forkServer = new ForkServer();

/** Stops the fork server if no child of this process is alive (several daemons may share it in one process). */
export function stopForkServerIfIdle(): Promise<void> {
  return forkServer.stopIfIdle();
}

/** The operating-system layers every child of this process gets (see sandbox.ts). */
export function childSandbox(): SandboxPlan {
  return sandboxPlan(RUNNER_PATH);
}

export function spawnChild({ warmUp, heapMb, entry, background = false }: SpawnOptions): ChildHandle {
  const plan = entry ? { ...childSandbox(), runnerPath: entry } : childSandbox();
  const flags = [...CHILD_FLAGS, ...PERF_CHILD_FLAGS, ...permissionFlags(plan), `--max-old-space-size=${heapMb}`];
  return forkServer.spawn({
    command: process.execPath,
    args: [...flags, plan.runnerPath, ...(warmUp ? [] : ['--no-warmup'])],
    env: CHILD_ENV,
    sandbox: plan,
    nice: priority.bootNice(background),
  });
}

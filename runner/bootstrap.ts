/**
 * Entry point of every child. Boot order matters:
 *   1. capture what the runner needs from Node (imports are module-local and
 *      survive the global scope being stripped);
 *   2. open the channel and build the runtime;
 *   3. install the tenant's global scope (Node globals removed, Web API frozen);
 *   4. warm the request path so a specialised child answers its first request
 *      in well under a millisecond (MEASURED.md: 3.6–5 ms cold vs 0.5 ms warm);
 *   5. tell the daemon it is ready, then wait for a script.
 */
import process from 'node:process';
import { FrameType } from '../protocol/messages.js';
import { nowMs } from './clock.js';
import { createConsole } from './console.js';
import { createFetch } from './fetch.js';
import { setWebSocketConnector } from './websocket.js';
import { installGlobals } from './globals.js';
import { openChannel, type Channel } from './ipc.js';
import { describeError } from './describe.js';
import { Runtime } from './runtime.js';
import { warmChannel, warmFirstRequest, warmUp } from './warmup.js';

let runtime: Runtime;
/** Resolves when the daemon's echo of the channel warm-up arrives (its End follows in the same read). */
let onEcho: (() => void) | null = null;
const channel: Channel = openChannel((frame) => {
  if (frame.type === FrameType.Echo) {
    onEcho?.();
    onEcho = null;
    return;
  }
  runtime.onFrame(frame);
});
runtime = new Runtime(channel);

const fetch = createFetch(runtime);
// `new WebSocket(url)` connects as fetch() with `Upgrade: websocket` does, as on Workers.
setWebSocketConnector((url, protocols) =>
  fetch(url, { headers: protocols.length > 0 ? { upgrade: 'websocket', 'sec-websocket-protocol': protocols.join(', ') } : { upgrade: 'websocket' } }),
);

installGlobals({
  fetch,
  callBinding: runtime.callBinding,
  timers: runtime.timers,
  console: createConsole({
    log: (level, text) => runtime.log(level, text),
    canLog: () => runtime.canLog,
    drop: () => runtime.dropLog(),
  }),
  addEventListener: (type, listener) => runtime.addEventListener(type, listener),
  removeEventListener: (type, listener) => runtime.removeEventListener(type, listener),
  turns: {
    current: () => runtime.currentRequest(),
    resume: (owner) => runtime.resumeTurn(owner),
    runtimeWork: (work) => runtime.runtimeWork.run(work),
  },
});

async function finishBoot(): Promise<void> {
  // A child spawned for a waiting request (pool miss) skips the warm-up: its first request is already here.
  if (!process.argv.includes('--no-warmup')) {
    await warmUp();
    await warmChannel(channel, () => new Promise<void>((resolve) => (onEcho = resolve)));
  } else {
    runtime.beforeLoaded = warmFirstRequest;
  }
  // No forced GC here: with the short warm-up it saved less than the v8 module and the extra
  // context it needs cost (bench/memory: 10.6 vs 11.0 MiB private without it).
  // From here on, a tenant's error in a timer or an unawaited promise is logged, as on Workers, and
  // never kills the child. (Installed only now: an error while booting must end the child, so
  // the pool sees a boot failure instead of a child that never becomes ready.)
  process.on('uncaughtException', (error) => runtime.log('error', `Uncaught ${describeError(error)}`));
  process.on('unhandledRejection', (reason) => runtime.log('error', `Unhandled rejection: ${describeError(reason)}`));
  channel.sendJson(FrameType.Ready, 0, { pid: process.pid, bootMs: nowMs() });
}

// No top-level await: the bundle is CommonJS, so Node never loads its ES module loader into a child.
finishBoot().catch((error: unknown) => {
  process.stderr.write(`edgeproc runner: boot failed: ${(error as Error)?.stack ?? error}\n`);
  process.exit(70);
});

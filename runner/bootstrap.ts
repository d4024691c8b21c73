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
import v8 from 'node:v8';
import vm from 'node:vm';
import { FrameType } from '../protocol/messages.js';
import { nowMs } from './clock.js';
import { createConsole } from './console.js';
import { createFetch } from './fetch.js';
import { installGlobals } from './globals.js';
import { openChannel, type Channel } from './ipc.js';
import { describeError, Runtime } from './runtime.js';
import { warmUp } from './warmup.js';

// `gc` is taken from a fresh context after turning the flag on at run time: with --expose-gc on the
// command line V8 puts a non-deletable `gc` on the tenant's own global object.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as (options?: object) => void;

let runtime: Runtime;
const channel: Channel = openChannel((frame) => runtime.onFrame(frame));
runtime = new Runtime(channel);


installGlobals({
  fetch: createFetch(runtime),
  console: createConsole((level, text) => runtime.log(level, text)),
  addEventListener: (type, listener) => runtime.addEventListener(type, listener),
  removeEventListener: (type, listener) => runtime.removeEventListener(type, listener),
});

async function finishBoot(): Promise<void> {
  // A child spawned for a waiting request (pool miss) skips the warm-up: its first request is already here.
  if (!process.argv.includes('--no-warmup')) await warmUp();
  // Boot and warm-up leave garbage; collecting it once before going idle keeps the child's memory small.
  collectGarbage({ type: 'major', execution: 'sync' });
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

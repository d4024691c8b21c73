/**
 * How a child is started: the runner bundle, the Node flags that shape the
 * tenant's world, an explicit minimal environment (MEASURED.md: one inherited
 * variable such as NODE_EXTRA_CA_CERTS adds ~85 ms to every start) and the
 * stdio layout whose fourth slot is the frame channel.
 */
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';

// This file runs compiled (dist/src/pool/) or, under the tests, from source (src/pool/).
const PACKAGE_ROOT = new URL(import.meta.url.includes('/dist/src/') ? '../../../' : '../../', import.meta.url);
export const RUNNER_PATH = fileURLToPath(new URL('dist/runner.cjs', PACKAGE_ROOT));

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
]);

export type ChildProcess = ResultPromise<{
  stdio: ['ignore', 'pipe', 'pipe', 'pipe'];
  buffer: false;
  reject: false;
}>;

export interface SpawnOptions {
  /**
   * Warm the request path before signalling ready (pool children). A child
   * spawned for a request already waiting (pool miss) skips it: the request
   * itself is the warm-up, and 60 ms of boot would be in its latency.
   */
  warmUp: boolean;
  /** V8 heap limit of the child, from limits.memoryMb. */
  heapMb: number;
}

export function spawnChild({ warmUp, heapMb }: SpawnOptions): ChildProcess {
  const flags = [...CHILD_FLAGS, `--max-old-space-size=${heapMb}`];
  return execa(process.execPath, [...flags, RUNNER_PATH, ...(warmUp ? [] : ['--no-warmup'])], {
    // Nothing of the daemon's environment; UTC as on Workers.
    env: { TZ: 'UTC' },
    extendEnv: false,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    buffer: false,
    reject: false,
    cleanup: true,
    windowsHide: true,
  });
}

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
export const RUNNER_PATH = fileURLToPath(new URL('dist/runner.mjs', PACKAGE_ROOT));

export const CHILD_FLAGS: readonly string[] = Object.freeze([
  // eval() and new Function() throw EvalError, as on Workers.
  '--disallow-code-generation-from-strings',
  // Module workers are evaluated with vm.SourceTextModule.
  '--experimental-vm-modules',
  // The experimental-feature warning would otherwise reach the log of every child.
  '--no-warnings',
]);

export type ChildProcess = ResultPromise<{
  stdio: ['ignore', 'pipe', 'pipe', 'pipe'];
  buffer: false;
  reject: false;
}>;

export function spawnChild(extraFlags: readonly string[] = []): ChildProcess {
  return execa(process.execPath, [...CHILD_FLAGS, ...extraFlags, RUNNER_PATH], {
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

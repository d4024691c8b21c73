/**
 * The daemon's optional native addons (native/*.c, built by `npm run build` into dist/ where there
 * is a compiler): each does one system call Node has no API for. A caller falls back to what Node
 * can do when its addon is missing. The launcher children start through (native/launch.c) is
 * built the same way, as a program.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// This file runs compiled (dist/src/pool/) or, under the tests, from source (src/pool/).
const PACKAGE_ROOT = new URL(import.meta.url.includes('/dist/src/') ? '../../../' : '../../', import.meta.url);

/** dist/NAME, a program built beside the addons; null where it was not built. */
export function builtProgram(name: string): string | null {
  const path = fileURLToPath(new URL(`dist/${name}`, PACKAGE_ROOT));
  return existsSync(path) ? path : null;
}

/** dist/NAME.node, loaded; null where it was not built (or does not load here). */
export function loadAddon<T>(name: string): T | null {
  try {
    return createRequire(import.meta.url)(fileURLToPath(new URL(`dist/${name}.node`, PACKAGE_ROOT))) as T;
  } catch {
    return null;
  }
}

/**
 * The daemon's optional native addons (native/*.c, built by `npm run build` into dist/ where there
 * is a compiler): each does one system call Node has no API for. A caller falls back to what Node
 * can do when its addon is missing.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// This file runs compiled (dist/src/pool/) or, under the tests, from source (src/pool/).
const PACKAGE_ROOT = new URL(import.meta.url.includes('/dist/src/') ? '../../../' : '../../', import.meta.url);

/** dist/NAME.node, loaded; null where it was not built (or does not load here). */
export function loadAddon<T>(name: string): T | null {
  try {
    return createRequire(import.meta.url)(fileURLToPath(new URL(`dist/${name}.node`, PACKAGE_ROOT))) as T;
  } catch {
    return null;
  }
}

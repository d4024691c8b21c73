/**
 * The build a benchmark measures, copied once to a private directory: others
 * rebuild dist/ in this shared tree at any time (the build starts by deleting
 * it), and a daemon whose children cannot find dist/runner.cjs mid-run, or a
 * run that mixes two builds, measures nothing useful.
 */
import { cpSync, existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { tempDir } from './tmp.js';

// Compiled to dist/bench/lib/, so the package root is three levels up.
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const NEEDED = ['dist/runner.cjs', 'dist/src/cli.js', 'dist/src/daemon.js', 'dist/src/pool/spawn.js'];
const ATTEMPTS = 20;

let snapshot: string | null = null;

/** Copies dist/, bin/ and package.json (and links node_modules/), waiting out a build under way. */
export async function snapshotBuild(): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const root = tempDir('build');
    try {
      for (const entry of ['dist', 'bin', 'package.json']) cpSync(join(PACKAGE_ROOT, entry), join(root, entry), { recursive: true });
      symlinkSync(join(PACKAGE_ROOT, 'node_modules'), join(root, 'node_modules'));
      if (NEEDED.every((file) => existsSync(join(root, file)))) return (snapshot = `${root}/`);
    } catch {
      // dist/ changed under the copy: a build is under way.
    }
    if (attempt === ATTEMPTS) throw new Error(`the build in ${PACKAGE_ROOT}dist is incomplete: run \`npm run build\` and try again`);
    await sleep(1_000);
  }
}

/** The root of the private copy of the build. */
export function buildRoot(): string {
  if (!snapshot) throw new Error('snapshotBuild() must run before a benchmark starts');
  return snapshot;
}

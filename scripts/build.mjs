// Builds the daemon (tsc → dist/) and the runner (esbuild → one file, dist/runner.mjs).
// The runner is written to a temporary file and renamed, so children spawned while a
// build runs (another test run, a daemon in use) never load a half-written bundle.
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { build } from 'esbuild';
import { lazyBodyPlugin } from './lazy-body-plugin.mjs';

const require = createRequire(import.meta.url);
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit' });
mkdirSync('dist', { recursive: true });
const temporary = `dist/runner.${process.pid}.tmp.mjs`;
await build({
  entryPoints: ['runner/bootstrap.ts'],
  outfile: temporary,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  inject: ['runner/inject.ts'],
  plugins: [lazyBodyPlugin],
  // undici is CommonJS and calls require(); give the ESM bundle a module-local one.
  banner: { js: "import { createRequire as __edgeprocRequire } from 'node:module'; const require = __edgeprocRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
renameSync(temporary, 'dist/runner.mjs');

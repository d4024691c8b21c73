// Builds the daemon (tsc → dist/) and the runner (esbuild → one file, dist/runner.mjs).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { build } from 'esbuild';

const require = createRequire(import.meta.url);
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit' });
await build({
  entryPoints: ['runner/bootstrap.ts'],
  outfile: 'dist/runner.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  inject: ['runner/inject.ts'],
  // undici is CommonJS and calls require(); give the ESM bundle a module-local one.
  banner: { js: "import { createRequire as __edgeprocRequire } from 'node:module'; const require = __edgeprocRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});

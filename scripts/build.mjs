// Builds the daemon (tsc → dist/), the runner (esbuild → one file, dist/runner.cjs), the files
// the runner loads from beside itself on first use (HTMLRewriter, URLPattern: runner/companions.ts)
// and the native parts (node-gyp → dist/sched_policy.node and dist/task_clock.node, see
// src/pool/sched-policy.ts and src/pool/task-clock.ts, and the launcher dist/edgeproc-launch,
// see src/pool/sandbox.ts).
// The runner is written to a temporary file and renamed, so children spawned while a
// build runs (another test run, a daemon in use) never load a half-written bundle.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';
import { childStubsPlugin } from './child-stubs-plugin.mjs';
import { lazyBodyPlugin } from './lazy-body-plugin.mjs';
import { lazySignalPlugin } from './lazy-signal-plugin.mjs';
import { webSocketResponsePlugin } from './websocket-response-plugin.mjs';

const require = createRequire(import.meta.url);
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit' });
mkdirSync('dist', { recursive: true });
const temporary = `dist/runner.${process.pid}.tmp.cjs`;
await build({
  entryPoints: ['runner/bootstrap.ts'],
  outfile: temporary,
  bundle: true,
  platform: 'node',
  // CommonJS, not ESM: an ES module entry makes Node load its whole ES module loader
  // into every child (~1.1 MiB private, 13 ms of boot; bench/memory).
  format: 'cjs',
  target: 'node20',
  inject: ['runner/inject.ts'],
  plugins: [lazyBodyPlugin, lazySignalPlugin, webSocketResponsePlugin, childStubsPlugin],
  legalComments: 'none',
  // Every child holds the bundle's source text and what V8 derives from it: without comments and
  // white space (identifiers kept, so class names and stacks read as written) bench/memory read
  // 9.94 MiB PSS per tenant against 10.4, in one session.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
renameSync(temporary, 'dist/runner.cjs');
await buildHtmlRewriter();
await buildCompanion({ entryPoints: [require.resolve('urlpattern-polyfill/urlpattern')] }, 'dist/urlpattern.cjs');

buildAddon();

/**
 * Workers' HTMLRewriter runs lol-html compiled to WebAssembly (html-rewriter-wasm). Its glue and
 * its 0.9 MB module stay out of the runner's bundle, which every child holds in memory: the
 * runner reads them from beside itself the first time a tenant uses HTMLRewriter
 * (runner/html-rewriter.ts). The glue requires its helper through a template literal, which a
 * bundler cannot follow; it is made a plain require first, and the build fails if that moved.
 */
async function buildHtmlRewriter() {
  const dir = dirname(require.resolve('html-rewriter-wasm/dist/html_rewriter.js'));
  const glue = readFileSync(join(dir, 'html_rewriter.js'), 'utf8');
  const dynamic = 'require(String.raw`./asyncify.js`)';
  if (!glue.includes(dynamic)) throw new Error(`edgeproc build: html-rewriter-wasm no longer requires its helper as ${dynamic}; see scripts/build.mjs`);
  await buildCompanion(
    { stdin: { contents: glue.replace(dynamic, "require('./asyncify.js')"), resolveDir: dir, sourcefile: 'html_rewriter.js', loader: 'js' } },
    'dist/html-rewriter.cjs',
  );
  copyFileSync(join(dir, 'html_rewriter_bg.wasm'), 'dist/html_rewriter_bg.wasm');
}

/** One CommonJS file the runner loads from beside itself on first use (runner/companions.ts), written whole or not at all. */
async function buildCompanion(input, outfile) {
  const partial = `${outfile}.${process.pid}.tmp`;
  await build({
    ...input,
    outfile: partial,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    legalComments: 'none',
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: 'warning',
  });
  renameSync(partial, outfile);
}

/**
 * The addons and the launcher are optional: without a compiler (or node-gyp, or Node's headers)
 * background work runs at nice 19 only, CPU is read from /proc at the scheduler's ticks and
 * children start under util-linux's prlimit and unshare, and the build says so instead of failing. npm runs this script with
 * its own node-gyp (npm_config_node_gyp); Node's headers come from npm's nodedir setting or
 * from beside the node binary, never from the network.
 */
function buildAddon() {
  const built = ['sched_policy.node', 'task_clock.node', 'spawn.node', 'edgeproc-launch'];
  for (const name of built) rmSync(`dist/${name}`, { force: true });
  const nodeGyp = process.env.npm_config_node_gyp ?? join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  const besideNode = join(dirname(process.execPath), '..');
  const nodedir = process.env.npm_config_nodedir || (existsSync(join(besideNode, 'include/node/node_api.h')) ? besideNode : null);
  if (process.platform !== 'linux' || !existsSync(nodeGyp) || !nodedir) {
    console.warn(`edgeproc build: the native addons and launcher were not built (${process.platform !== 'linux' ? 'not Linux' : !existsSync(nodeGyp) ? 'node-gyp not found' : "Node's headers not found"}); background work runs at nice 19 only, CPU is read from /proc/PID/schedstat, and children start under util-linux prlimit and unshare`);
    return;
  }
  try {
    execFileSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'], { cwd: 'native', stdio: ['ignore', 'ignore', 'pipe'] });
    for (const name of built) copyFileSync(`native/build/Release/${name}`, `dist/${name}`);
  } catch (error) {
    const detail = String(error.stderr ?? error.message).trim().split('\n').slice(-3).join(' / ');
    console.warn(`edgeproc build: the native addons and launcher were not built (${detail}); background work runs at nice 19 only, CPU is read from /proc/PID/schedstat, and children start under util-linux prlimit and unshare`);
  }
}

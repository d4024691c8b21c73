/**
 * Checks, before `serve` starts, that every worker script parses: a typo then
 * stops `serve` with the file, line and column (exit code 2), as a mistake in
 * edgeproc.json does, instead of turning up as a 500 on the worker's first
 * request. V8 itself decides, in a short-lived Node child (parse-child.ts), so
 * the verdict is the one a runner child reaches, and the daemon compiles no
 * tenant code. A script that parses but throws while loading is still only
 * found when it loads (its first request or deploy).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EdgeprocError, ScriptLoadError } from '../errors.js';
import type { ParseFailure, ParseRequest } from './parse-child.js';
import { findSyntaxError } from './syntax.js';
import type { TargetWorker } from './target.js';

// This file runs compiled (dist/src/workers/) or, under the tests, from source (src/workers/).
const PACKAGE_ROOT = new URL(import.meta.url.includes('/dist/src/') ? '../../../' : '../../', import.meta.url);
const PARSE_CHILD = fileURLToPath(new URL('dist/src/workers/parse-child.js', PACKAGE_ROOT));

export function checkSyntax(workers: readonly TargetWorker[]): void {
  if (workers.length === 0) return;
  if (!existsSync(PARSE_CHILD)) throw new EdgeprocError('ERR_SPAWN', `the syntax checker is not built (${PARSE_CHILD}): run \`npm run build\``);
  const requests: ParseRequest[] = workers.map((w) => ({ filename: w.path, source: w.source, moduleOnly: w.path.endsWith('.mjs') }));
  let output: string;
  try {
    // Compiling is all it does, but it does so with tenant source: it may read its own file and nothing else.
    const flags = ['--experimental-vm-modules', '--no-warnings', '--experimental-permission', `--allow-fs-read=${PARSE_CHILD}`];
    output = execFileSync(process.execPath, [...flags, PARSE_CHILD], {
      input: JSON.stringify(requests),
      env: { TZ: 'UTC' },
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    throw new EdgeprocError('ERR_SPAWN', `could not check the worker scripts' syntax: ${(error as Error).message.split('\n')[0]}`);
  }
  const [first] = JSON.parse(output) as ParseFailure[];
  if (!first) return;
  const worker = workers[first.index]!;
  // V8 gives a module's SyntaxError no position; esbuild's parser finds it.
  const at = first.line !== null ? first : findSyntaxError(worker.source, worker.path);
  throw new ScriptLoadError(worker.name, worker.path, {
    kind: 'SyntaxError',
    message: first.message,
    line: at?.line ?? null,
    column: at?.column ?? null,
  });
}

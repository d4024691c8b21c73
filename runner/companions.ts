/**
 * Code the runtime loads from beside the runner on first use, not from its bundle: every child
 * holds the bundle's source in memory, and most tenants never use these (HTMLRewriter's glue,
 * URLPattern). scripts/build.mjs writes them, src/pool/sandbox.ts lets children read them
 * (RUNNER_COMPANIONS) and copies them with the runner. Each is a CommonJS file, evaluated as
 * Node would, with extra names bound where the runtime must hand it something a tenant does
 * not get (html-rewriter.ts: a WebAssembly that compiles).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileFunction } from 'node:vm';

export function loadCompanion<Exports>(file: string, what: string, bindings: Record<string, unknown> = {}): Exports {
  const path = join(__dirname, file);
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (error) {
    throw new TypeError(`${what} is not available in this build: ${file} could not be read beside the runner (${(error as Error).message}); rebuild edgeproc (npm run build)`);
  }
  const names = Object.keys(bindings);
  const evaluate = compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname', ...names], { filename: path });
  const module = { exports: {} as Exports };
  evaluate(module.exports, require, module, path, __dirname, ...names.map((name) => bindings[name]));
  return module.exports;
}

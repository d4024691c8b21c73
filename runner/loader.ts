/**
 * Evaluates a tenant script in the child's (already locked-down) realm and
 * finds its handlers. Service-worker scripts run as classic scripts; a script
 * with `import`/`export` (or a `.mjs` name) runs as an ES module. Neither may
 * import anything: a worker is one bundled file.
 */
import vm from 'node:vm';
import type { LoadFailedMessage, ScriptSyntax } from '../protocol/messages.js';

export interface ModuleExports {
  fetch?: (request: Request, env: unknown, ctx: unknown) => unknown;
  scheduled?: (controller: unknown, env: unknown, ctx: unknown) => unknown;
}

export interface LoadedScript {
  syntax: ScriptSyntax;
  /** The default export of a module worker; null for service-worker syntax. */
  exports: ModuleExports | null;
}

export class ScriptLoadError extends Error {
  constructor(readonly detail: LoadFailedMessage) {
    super(detail.message);
  }
}

const MODULE_SYNTAX = /Cannot use import statement outside a module|Unexpected token 'export'|import\.meta|await is only valid/;

function noImports(specifier: string): never {
  throw new TypeError(
    `import of "${specifier}" is not available in edgeproc: a worker is a single script; bundle its dependencies into it`,
  );
}

/**
 * A line that starts with an import or export declaration: the script is a module. Compiling
 * it as a classic script first only to catch the SyntaxError cost ~0.2 ms of every cold start.
 * (`import(` is a dynamic import, valid in classic scripts, so it does not count.)
 */
const MODULE_DECLARATION = /^[ \t]*(?:export[\s{*]|import[\s{*'"])/m;

/**
 * `globals`: a service-worker script's bindings (vars, secrets, KV namespaces), which Workers
 * gives such scripts as globals since they have no `env`. Module scripts never see them.
 */
export async function loadScript(source: string, filename: string, globals: Record<string, unknown> = {}): Promise<LoadedScript> {
  if (!filename.endsWith('.mjs') && MODULE_DECLARATION.test(source)) {
    let loaded: LoadedScript | null;
    try {
      loaded = await loadModule(source, filename, true);
    } catch (error) {
      // The line was inside a string or a comment, and the script is classic after all.
      if (!(error instanceof ScriptLoadError && error.detail.kind === 'SyntaxError')) throw error;
      return loadClassic(source, filename, error, globals);
    }
    // It parsed as a module but declares no import or export: the line was in a string.
    return loaded ?? loadClassic(source, filename, null, globals);
  }
  if (filename.endsWith('.mjs')) return loadModule(source, filename);
  return loadClassic(source, filename, null, globals);
}

async function loadClassic(
  source: string,
  filename: string,
  moduleError: ScriptLoadError | null,
  globals: Record<string, unknown>,
): Promise<LoadedScript> {
  let script: vm.Script | null = null;
  try {
    script = new vm.Script(source, {
      filename,
      importModuleDynamically: ((specifier: string) => noImports(specifier)) as never,
    });
  } catch (error) {
    if (!(error instanceof SyntaxError && MODULE_SYNTAX.test(error.message))) throw toLoadError(error, filename);
  }
  if (script) {
    defineBindingGlobals(globals);
    try {
      script.runInThisContext({ displayErrors: false });
    } catch (error) {
      throw toLoadError(error, filename);
    }
    return { syntax: 'service-worker', exports: null };
  }
  // Not a classic script either: report the module's error when that is what it looked like.
  if (moduleError) throw moduleError;
  return loadModule(source, filename);
}

/**
 * Ordinary (writable, configurable) properties of the global object, as Workers defines them:
 * the script may shadow one with its own `let`. A name the global scope already has (`fetch`)
 * stays what it is; the binding is still in `env` for a module script.
 */
function defineBindingGlobals(globals: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(globals)) {
    if (Object.prototype.hasOwnProperty.call(globalThis, name)) continue;
    Object.defineProperty(globalThis, name, { value, writable: true, enumerable: true, configurable: true });
  }
}

/** With `onlyIfModule`, resolves to null, having run nothing, for a source that declares no import or export. */
async function loadModule(source: string, filename: string, onlyIfModule: true): Promise<LoadedScript | null>;
async function loadModule(source: string, filename: string): Promise<LoadedScript>;
async function loadModule(source: string, filename: string, onlyIfModule = false): Promise<LoadedScript | null> {
  let module: vm.SourceTextModule;
  try {
    module = new vm.SourceTextModule(source, {
      identifier: filename,
      importModuleDynamically: ((specifier: string) => noImports(specifier)) as never,
    });
    if (onlyIfModule && module.dependencySpecifiers.length === 0) {
      await module.link(() => noImports(''));
      // ownKeys, not Object.keys: the exports are not initialised before evaluation.
      if (!Reflect.ownKeys(module.namespace).some((key) => typeof key === 'string')) return null;
    } else {
      await module.link((specifier) => noImports(specifier));
    }
    await module.evaluate();
  } catch (error) {
    throw toLoadError(error, filename);
  }
  const namespace = module.namespace as { default?: unknown };
  const exports = namespace.default;
  if (exports !== undefined && (typeof exports !== 'object' || exports === null)) {
    throw new ScriptLoadError({
      kind: 'NoHandler',
      message: `the default export must be an object with a fetch() method, got ${typeof exports}`,
      line: null,
      column: null,
    });
  }
  return { syntax: 'module', exports: (exports ?? {}) as ModuleExports };
}

/** Turns whatever the script threw into a message with the line and column in the tenant's file. */
export function toLoadError(error: unknown, filename: string): ScriptLoadError {
  if (error instanceof ScriptLoadError) return error;
  const err = error instanceof Error ? error : new Error(String(error));
  const isSyntax = err instanceof SyntaxError;
  const position = isSyntax ? syntaxPosition(err, filename) : stackPosition(err, filename);
  return new ScriptLoadError({
    kind: isSyntax ? 'SyntaxError' : 'ScriptError',
    message: `${err.name}: ${err.message}`,
    line: position?.line ?? null,
    column: position?.column ?? null,
  });
}

/** V8 decorates a script's SyntaxError stack as "file:LINE\n<source line>\n<spaces>^^^". */
function syntaxPosition(error: Error, filename: string): { line: number; column: number } | null {
  const lines = (error.stack ?? '').split('\n');
  const match = /:(\d+)$/.exec(lines[0] ?? '');
  if (!match || !lines[0]!.startsWith(filename)) return null;
  const caret = (lines[2] ?? '').indexOf('^');
  return { line: Number(match[1]), column: caret >= 0 ? caret + 1 : 1 };
}

export function stackPosition(error: Error, filename: string): { line: number; column: number } | null {
  for (const frame of (error.stack ?? '').split('\n')) {
    const at = frame.lastIndexOf(filename + ':');
    if (at < 0) continue;
    const match = /^:(\d+):(\d+)/.exec(frame.slice(at + filename.length));
    if (match) return { line: Number(match[1]), column: Number(match[2]) };
  }
  return null;
}

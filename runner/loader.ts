/**
 * Evaluates a tenant script in the child's (already locked-down) realm and
 * finds its handlers. Service-worker scripts run as classic scripts; a script
 * with `import`/`export` (or a `.mjs` name) runs as an ES module. Neither may
 * import anything: a worker is one bundled file.
 */
import vm from 'node:vm';
import type { LoadedMessage, LoadFailedMessage, ScriptSyntax } from '../protocol/messages.js';

export interface ModuleExports {
  fetch?: (request: Request, env: unknown, ctx: unknown) => unknown;
  scheduled?: (controller: unknown, env: unknown, ctx: unknown) => unknown;
}

export interface LoadedScript {
  syntax: ScriptSyntax;
  /** The default export of a module worker; null for service-worker syntax. */
  exports: ModuleExports | null;
  /** Whether V8 compiled the script from the code cache it was given. */
  codeCache: CodeCacheOutcome;
}

export type CodeCacheOutcome = LoadedMessage['codeCache'];

/**
 * A code cache to compile from, and where to send one made here. V8 checks a cache against the
 * source's length only (and its own version and flags): it must have been made for this very
 * source, which the daemon sees to by keeping one per worker version.
 */
export interface CodeCacheOptions {
  cachedData?: Uint8Array;
  /** Called with V8's cache for the script once it compiled, before any of it runs. */
  onMade?: (bytes: Uint8Array) => void;
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
export async function loadScript(
  source: string,
  filename: string,
  globals: Record<string, unknown> = {},
  cache: CodeCacheOptions = {},
): Promise<LoadedScript> {
  if (!filename.endsWith('.mjs') && MODULE_DECLARATION.test(source)) {
    let loaded: LoadedScript | null;
    try {
      loaded = await loadModule(source, filename, cache, true);
    } catch (error) {
      // The line was inside a string or a comment, and the script is classic after all.
      if (!(error instanceof ScriptLoadError && error.detail.kind === 'SyntaxError')) throw error;
      return loadClassic(source, filename, error, globals, cache);
    }
    // It parsed as a module but declares no import or export: the line was in a string.
    return loaded ?? loadClassic(source, filename, null, globals, cache);
  }
  if (filename.endsWith('.mjs')) return loadModule(source, filename, cache);
  return loadClassic(source, filename, null, globals, cache);
}

async function loadClassic(
  source: string,
  filename: string,
  moduleError: ScriptLoadError | null,
  globals: Record<string, unknown>,
  cache: CodeCacheOptions,
): Promise<LoadedScript> {
  let script: vm.Script | null = null;
  try {
    script = new vm.Script(source, {
      filename,
      cachedData: cache.cachedData,
      importModuleDynamically: ((specifier: string) => noImports(specifier)) as never,
    });
  } catch (error) {
    if (!(error instanceof SyntaxError && MODULE_SYNTAX.test(error.message))) throw toLoadError(error, filename);
  }
  if (script) {
    cache.onMade?.(script.createCachedData());
    defineBindingGlobals(globals);
    try {
      script.runInThisContext({ displayErrors: false });
    } catch (error) {
      throw toLoadError(error, filename);
    }
    return { syntax: 'service-worker', exports: null, codeCache: outcome(cache, script.cachedDataRejected === true) };
  }
  // Not a classic script either: report the module's error when that is what it looked like.
  if (moduleError) throw moduleError;
  return loadModule(source, filename, cache);
}

function outcome(cache: CodeCacheOptions, rejected: boolean): CodeCacheOutcome {
  if (!cache.cachedData) return 'none';
  return rejected ? 'rejected' : 'used';
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
async function loadModule(source: string, filename: string, cache: CodeCacheOptions, onlyIfModule: true): Promise<LoadedScript | null>;
async function loadModule(source: string, filename: string, cache: CodeCacheOptions): Promise<LoadedScript>;
async function loadModule(source: string, filename: string, cache: CodeCacheOptions, onlyIfModule = false): Promise<LoadedScript | null> {
  let module: vm.SourceTextModule;
  let rejected = false;
  try {
    try {
      module = compileModule(source, filename, cache.cachedData);
    } catch (error) {
      // A classic script's cache, or one made under other V8 flags: V8 compiles without it then.
      if ((error as { code?: unknown }).code !== 'ERR_VM_MODULE_CACHED_DATA_REJECTED') throw error;
      rejected = true;
      module = compileModule(source, filename, undefined);
    }
    if (onlyIfModule && module.dependencySpecifiers.length === 0) {
      await module.link(() => noImports(''));
      // ownKeys, not Object.keys: the exports are not initialised before evaluation.
      if (!Reflect.ownKeys(module.namespace).some((key) => typeof key === 'string')) return null;
    } else {
      await module.link((specifier) => noImports(specifier));
    }
    // Only before evaluate(): Node refuses to make a cache for a module that ran.
    cache.onMade?.((module as vm.SourceTextModule & { createCachedData(): Buffer }).createCachedData());
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
  return { syntax: 'module', exports: (exports ?? {}) as ModuleExports, codeCache: outcome(cache, rejected) };
}

function compileModule(source: string, filename: string, cachedData: Uint8Array | undefined): vm.SourceTextModule {
  return new vm.SourceTextModule(source, {
    identifier: filename,
    cachedData,
    importModuleDynamically: ((specifier: string) => noImports(specifier)) as never,
  });
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

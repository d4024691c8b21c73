/**
 * WebAssembly without code generation, as on Workers: a tenant has the
 * `WebAssembly` namespace (Memory, Table, Global, Instance, validate, the error
 * classes) but cannot compile bytes into machine code. On Workers a module
 * comes only as an uploaded binding, and every compile from bytes fails with
 * V8's "Wasm code generation disallowed by embedder"; so it does here.
 *
 * Why it matters beyond compatibility: wasm compilation is a JIT the tenant
 * feeds directly, and most V8 escapes of recent years went through it. Node
 * offers no switch for the main realm (`--disallow-code-generation-from-strings`
 * stops eval only; vm's `codeGeneration.wasm` applies to new contexts, and the
 * tenant runs in the child's main realm), so the namespace is rewritten before
 * the tenant sees it: the compiling entry points are replaced, and the real
 * Module constructor stays out of reach (the one reference left, its
 * prototype's `constructor`, is pointed at the replacement). A module object
 * can only come from a compile, so none ever reaches a tenant.
 */

const DISALLOWED = 'Wasm code generation disallowed by embedder';

/** V8's own Module, kept for the runtime's own modules (html-rewriter.ts); never handed to a tenant. */
let runtimeModule: typeof WebAssembly.Module | null = null;

/** A WebAssembly namespace that compiles, for code the runtime itself loads. */
export function runtimeWebAssembly(): typeof WebAssembly {
  if (!runtimeModule) throw new Error('runtimeWebAssembly() before disallowWasmCodegen()');
  const { Instance, Memory, Table, Global, CompileError, LinkError, RuntimeError } = WebAssembly;
  return Object.freeze({ Module: runtimeModule, Instance, Memory, Table, Global, CompileError, LinkError, RuntimeError }) as unknown as typeof WebAssembly;
}

export function disallowWasmCodegen(): void {
  const wasm = WebAssembly;
  const RealModule = wasm.Module;
  runtimeModule = RealModule;
  const realInstantiate = wasm.instantiate.bind(wasm);
  const refused = (entry: string) => new wasm.CompileError(`${entry}: ${DISALLOWED}`);
  const isModule = (value: unknown): value is WebAssembly.Module => {
    try {
      RealModule.exports(value as WebAssembly.Module);
      return true;
    } catch {
      return false;
    }
  };

  // A function, not a class: V8's own Module is callable only with `new`; this says so in V8's words.
  const Module = function Module(this: unknown): never {
    if (new.target === undefined) throw new TypeError("WebAssembly.Module(): WebAssembly.Module must be invoked with 'new'");
    throw refused('WebAssembly.Module()');
  } as unknown as typeof WebAssembly.Module;
  Object.defineProperties(Module, {
    prototype: { value: RealModule.prototype, writable: false, enumerable: false, configurable: false },
    exports: { value: RealModule.exports, writable: true, enumerable: false, configurable: true },
    imports: { value: RealModule.imports, writable: true, enumerable: false, configurable: true },
    customSections: { value: RealModule.customSections, writable: true, enumerable: false, configurable: true },
  });
  Object.defineProperty(RealModule.prototype, 'constructor', { value: Module, writable: true, enumerable: false, configurable: true });

  const replace = (name: string, value: unknown) =>
    Object.defineProperty(wasm, name, { value, writable: true, enumerable: false, configurable: true });
  replace('Module', Module);
  replace('compile', function compile(): Promise<never> {
    return Promise.reject(refused('WebAssembly.compile()'));
  });
  replace('compileStreaming', function compileStreaming(): Promise<never> {
    return Promise.reject(refused('WebAssembly.compileStreaming()'));
  });
  replace('instantiateStreaming', function instantiateStreaming(): Promise<never> {
    return Promise.reject(refused('WebAssembly.instantiateStreaming()'));
  });
  // Instantiating a module object compiles nothing; bytes would.
  replace('instantiate', function instantiate(source: unknown, imports?: WebAssembly.Imports): Promise<unknown> {
    if (isModule(source)) return realInstantiate(source, imports);
    return Promise.reject(refused('WebAssembly.instantiate()'));
  });
}

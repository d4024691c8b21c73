/**
 * Attack: compile WebAssembly from bytes, by every entry point and by reaching
 * for the real Module constructor through its prototype. On Workers a module
 * comes only as an uploaded binding; compiling bytes fails with V8's
 * "Wasm code generation disallowed by embedder". What compiles nothing
 * (validate, Memory, the static Module helpers) keeps working.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

const refused = (entry: string) => `CompileError: ${entry}: Wasm code generation disallowed by embedder`;

describe('WebAssembly code generation', () => {
  it('is refused at every entry point, as on Workers, and the rest of the namespace works', async () => {
    const daemon = await startHostileDaemon(['wasm-codegen']);
    const res = await attack(daemon, 'wasm-codegen');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      'new WebAssembly.Module': refused('WebAssembly.Module()'),
      'WebAssembly.Module()': "TypeError: WebAssembly.Module(): WebAssembly.Module must be invoked with 'new'",
      'Module.prototype.constructor': refused('WebAssembly.Module()'),
      'Reflect.construct(Module)': refused('WebAssembly.Module()'),
      'WebAssembly.compile': refused('WebAssembly.compile()'),
      'WebAssembly.instantiate(bytes)': refused('WebAssembly.instantiate()'),
      'WebAssembly.instantiate(buffer)': refused('WebAssembly.instantiate()'),
      'WebAssembly.compileStreaming': refused('WebAssembly.compileStreaming()'),
      'WebAssembly.instantiateStreaming': refused('WebAssembly.instantiateStreaming()'),
      'WebAssembly.instantiate(non-module)': refused('WebAssembly.instantiate()'),
      'WebAssembly.validate': true,
      'WebAssembly.Memory': 65536,
      'Module.exports(non-module)': 'TypeError: WebAssembly.Module.exports(): Argument 0 must be a WebAssembly.Module',
      'instanceof Module': false,
    });
    await expectDaemonServes(daemon);
  });
});

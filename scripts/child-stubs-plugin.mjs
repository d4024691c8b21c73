// esbuild plugin: keeps Node modules that undici requires at load time, but a child
// never uses, out of every child's memory (bench/memory; each is ~0.45 MiB private):
//   node:http   undici compares stream classes with http.IncomingMessage; no
//               node:http object ever exists in a child, so an empty class answers.
//   node:zlib   only undici's own fetch decompresses, and the runner does not use
//               it: loaded on first use instead of at boot.
//   node:assert undici calls assert(condition) as a plain function only.
//   node:crypto undici takes randomInt (multipart boundaries): loaded on first call.
//   node:perf_hooks  undici's fetch timing reads performance.now(): answered from hrtime.
const STUBS = {
  'node:crypto': "module.exports = { randomInt: (...args) => require('crypto').randomInt(...args) };",
  'node:perf_hooks': `const { hrtime } = require('process');
const origin = hrtime.bigint();
module.exports = { performance: { now: () => Number(hrtime.bigint() - origin) / 1e6 } };`,
  'node:http': 'module.exports = { IncomingMessage: class IncomingMessage {} };',
  'node:zlib': `let zlib;
module.exports = new Proxy({}, { get: (_, key) => (zlib ??= require('zlib'))[key] });`,
  'node:assert': `module.exports = function assert(value, message) {
  if (!value) throw message instanceof Error ? message : new Error(message ?? 'assertion failed in the runtime');
};`,
};

export const childStubsPlugin = {
  name: 'child-stubs',
  setup(build) {
    build.onResolve({ filter: /^node:(http|zlib|assert|crypto|perf_hooks)$/ }, (args) => {
      // Only undici's requires: the runner's own code imports what it means to.
      if (!/[\\/]node_modules[\\/]undici[\\/]/.test(args.importer)) return undefined;
      return { path: args.path, namespace: 'child-stub' };
    });
    build.onLoad({ filter: /.*/, namespace: 'child-stub' }, (args) => ({ contents: STUBS[args.path], loader: 'js' }));
  },
};

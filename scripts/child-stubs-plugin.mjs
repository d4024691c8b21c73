// esbuild plugin: keeps Node modules that undici requires at load time, but a child
// never uses, out of every child's memory (bench/memory; each is ~0.45 MiB private):
//   node:http   undici compares stream classes with http.IncomingMessage; no
//               node:http object ever exists in a child, so an empty class answers.
//   node:zlib   only undici's own fetch decompresses, and the runner does not use
//               it: loaded on first use instead of at boot.
//   node:assert undici calls assert(condition) as a plain function only.
//   node:crypto undici takes randomInt (multipart boundaries): loaded on first call.
//   node:perf_hooks  undici's fetch timing reads performance.now(): answered from hrtime.
//   node:worker_threads  undici loads it at boot only to ask whether it exports
//               markAsUncloneable (Node 22.10+), which loaded Node's worker machinery into
//               every child; on a Node without it the answer is given here. Where the
//               building Node has it, the real module is kept.
const STUBS = {
  'node:crypto': "module.exports = { randomInt: (...args) => require('crypto').randomInt(...args) };",
  'node:perf_hooks': `const { hrtime } = require('process');
const origin = hrtime.bigint();
module.exports = { performance: { now: () => Number(hrtime.bigint() - origin) / 1e6 } };`,
  'node:http': 'module.exports = { IncomingMessage: class IncomingMessage {} };',
  'node:zlib': `let zlib;
module.exports = new Proxy({}, { get: (_, key) => (zlib ??= require('zlib'))[key] });`,
  'node:worker_threads': 'module.exports = { markAsUncloneable: undefined };',
  'node:assert': `module.exports = function assert(value, message) {
  if (!value) throw message instanceof Error ? message : new Error(message ?? 'assertion failed in the runtime');
};`,
};

const { markAsUncloneable } = await import('node:worker_threads');
const STUBBED = markAsUncloneable === undefined ? /^node:(http|zlib|assert|crypto|perf_hooks|worker_threads)$/ : /^node:(http|zlib|assert|crypto|perf_hooks)$/;

export const childStubsPlugin = {
  name: 'child-stubs',
  setup(build) {
    build.onResolve({ filter: STUBBED }, (args) => {
      // Only undici's requires: the runner's own code imports what it means to.
      if (!/[\\/]node_modules[\\/]undici[\\/]/.test(args.importer)) return undefined;
      return { path: args.path, namespace: 'child-stub' };
    });
    build.onLoad({ filter: /.*/, namespace: 'child-stub' }, (args) => ({ contents: STUBS[args.path], loader: 'js' }));
  },
};

// esbuild plugin: makes undici's extractBody() create a body's ReadableStream only
// when something asks for it. `new Response("hello")` otherwise builds a byte
// stream at once (Node 20's ReadableStream constructor is costly: ~10% of a child's
// CPU per hello-world request, bench/profile), although the runner sends string
// and byte bodies straight from their source and never reads that stream.
// The patch is textual against the locked undici version (scripts/undici-patch.mjs).
import { undiciPatchPlugin } from './undici-patch.mjs';

const PATCHES = [
  ['  let stream = null\n', '  let stream = null\n  let lazyStream = null\n'],
  ['    stream = new ReadableStream({\n      start () {},', '    lazyStream = () => (stream = new ReadableStream({\n      start () {},'],
  ["      type: 'bytes'\n    })\n  }\n", "      type: 'bytes'\n    }))\n  }\n"],
  ['  assert(webidl.is.ReadableStream(stream))\n', '  assert(lazyStream !== null || webidl.is.ReadableStream(stream))\n'],
  [
    '  const body = { stream, source, length }\n',
    // A class, not an object literal with its own get and set: V8 keeps accessors in an
    // object's map, so a literal whose accessors are new closures each time got a map of its
    // own for every Response (runtime calls under extractBody: ~3% of a hello child's CPU).
    `  const body = lazyStream === null ? { stream, source, length } : new LazyBody(lazyStream, source, length)
`,
  ],
];

// The body of a Response whose stream nobody asked for yet: \`stream\` is not its own property
// until then (runner/web.ts tells a lazy body by that). \`lazyStream\` makes the stream once.
const HELPER = `
class LazyBody {
  constructor (lazyStream, source, length) {
    this.lazyStream = lazyStream
    this.source = source
    this.length = length
  }

  get stream () { return materialise(this, this.lazyStream()) }

  set stream (value) { materialise(this, value) }
}

function materialise (body, stream) {
  Object.defineProperty(body, 'stream', { value: stream, writable: true, enumerable: true, configurable: true })
  return stream
}
`;

export const lazyBodyPlugin = undiciPatchPlugin('undici-lazy-body', 'body.js', PATCHES, HELPER);

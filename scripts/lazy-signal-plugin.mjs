// esbuild plugin: makes undici's Request create its AbortSignal when something reads
// `request.signal`, instead of in every constructor. Node 20's AbortController and
// AbortSignal are costly to build (an EventTarget each): ~6% of a child's CPU per
// hello-world request under wrk (perf), for a signal the handler seldom reads.
// Only a request that follows no other signal is made lazy; its signal belongs to a
// controller nobody else holds, so it can never abort, and creating it late changes
// nothing a tenant can see. A request following a signal (init.signal, or a request
// whose signal exists) keeps undici's own steps.
// The runner's fetch asks `signalIfMade(request)` instead of reading `request.signal`: a
// subrequest that follows no signal then makes none either (an AbortController and an abort
// listener, ~4 µs each time in a loop, for a signal that can never abort).
// The patch is textual against the locked undici version (scripts/undici-patch.mjs).
import { undiciPatchPlugin } from './undici-patch.mjs';

const PATCHES = [
  [
    '    const ac = new AbortController()\n    this.#signal = ac.signal\n\n    // 29. If signal is not null, then make this’s signal follow signal.\n    if (signal != null) {\n',
    '    // 29. If signal is not null, then make this’s signal follow signal.\n    // (edgeproc: otherwise the signal is created when first read; see scripts/lazy-signal-plugin.mjs.)\n    if (signal != null) {\n      const ac = new AbortController()\n      this.#signal = ac.signal\n',
  ],
  [
    '    // The signal getter steps are to return this’s signal.\n    return this.#signal\n',
    '    // The signal getter steps are to return this’s signal.\n    return (this.#signal ??= new AbortController().signal)\n',
  ],
  [
    '  static getRequestState (request) {\n    return request.#state\n  }\n',
    '  static getRequestState (request) {\n    return request.#state\n  }\n\n  // edgeproc: the signal if one exists, without making one (scripts/lazy-signal-plugin.mjs).\n  static signalIfMade (request) {\n    return request.#signal\n  }\n',
  ],
  [
    "Reflect.deleteProperty(Request, 'getRequestState')\n",
    "Reflect.deleteProperty(Request, 'getRequestState')\nconst { signalIfMade } = Request\nReflect.deleteProperty(Request, 'signalIfMade')\n",
  ],
  [
    '  getRequestDispatcher,\n  getRequestState\n}',
    '  getRequestDispatcher,\n  getRequestState,\n  signalIfMade\n}',
  ],
];

export const lazySignalPlugin = undiciPatchPlugin('undici-lazy-signal', 'request.js', PATCHES);

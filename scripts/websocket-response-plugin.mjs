// esbuild plugin: gives undici's Response Workers' `webSocket` member, so that a worker can
// answer an upgrade with `new Response(null, { status: 101, webSocket: client })`. The
// standard constructor refuses status 101 and drops members ResponseInit does not know.
// The Response is built as a 200 and then set to 101 with its WebSocket kept in its state,
// where runner/web.ts reads it (`response.webSocket`, and the runtime when it answers).
// The patch is textual against the locked undici version (scripts/undici-patch.mjs).
import { undiciPatchPlugin } from './undici-patch.mjs';

const PATCHES = [
  [
    '    init = webidl.converters.ResponseInit(init)\n\n    // 1. Set this’s response to a new response.\n',
    `    // edgeproc: Workers' webSocket member (scripts/websocket-response-plugin.mjs).
    const webSocket = init !== null && typeof init === 'object' ? init.webSocket : undefined
    init = webidl.converters.ResponseInit(init)
    if (webSocket != null) {
      if (!isWebSocket(webSocket)) throw new TypeError('Response: webSocket must be a WebSocket (one end of a WebSocketPair)')
      if (init.status !== 101) throw new TypeError('Response: a Response with a webSocket must have status 101')
      if (body !== null) throw new TypeError('Response: a Response with a webSocket (status 101) cannot have a body')
      init.status = 200
    }

    // 1. Set this’s response to a new response.
`,
  ],
  [
    '    // 5. Perform initialize a response given this, init, and bodyWithType.\n    initializeResponse(this, init, bodyWithType)\n',
    `    // 5. Perform initialize a response given this, init, and bodyWithType.
    initializeResponse(this, init, bodyWithType)
    if (webSocket != null) {
      this.#state.status = 101
      this.#state.webSocket = webSocket
    }
`,
  ],
  [
    'module.exports = {\n  isNetworkError,\n',
    `// edgeproc: the runner's check that a value is one of its WebSockets (runner/web.ts).
let isWebSocket = () => false
function setWebSocketCheck (check) {
  isWebSocket = check
}

module.exports = {
  setWebSocketCheck,
  isNetworkError,
`,
  ],
];

export const webSocketResponsePlugin = undiciPatchPlugin('undici-websocket-response', 'response.js', PATCHES);

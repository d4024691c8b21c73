/**
 * The contract between the daemon (src/) and a child (runner/): frame types,
 * message shapes and the constants both sides must agree on. Types and
 * constants only; the byte-level codec lives beside it in frames.ts.
 *
 * Streams: every request the daemon dispatches gets an odd stream id chosen by
 * the daemon; every subrequest (tenant `fetch`) gets an even id chosen by the
 * child. A body flows at most once in each direction of a stream: DATA frames
 * sent by the daemon on stream N are the body it sends (request body, or the
 * subresponse body); DATA frames sent by the child on N are the body it sends
 * (response body, or the subrequest body). WINDOW frames grant the *other*
 * side credit to send more DATA on that stream (flow control, as HTTP/2).
 */

export const FrameType = {
  // child → daemon
  Ready: 1,
  Loaded: 2,
  LoadFailed: 3,
  ResponseHead: 4,
  HandlerError: 5,
  Log: 6,
  SubrequestHead: 7,
  Settled: 8,
  Drained: 9,
  BindingCall: 10,
  /**
   * A whole response in one frame: a u32 byte length of the ResponseHead JSON, that JSON, then
   * the body (head.bodyLength bytes, at most MAX_DATA_FRAME_BYTES). Used for a body the child has
   * whole and small (a string or bytes); it stands for ResponseHead + DATA + END, and takes no
   * flow-control credit, as it fits in the first window.
   */
  Response: 11,
  /**
   * The turn the child starts now runs for the request on this stream: one it starts on its own
   * (a tenant timer firing, a crypto.subtle result arriving from the thread pool, a MessagePort
   * message, a chunk zlib compressed), or a handler it starts after at least a millisecond of
   * other requests' work without a word to the daemon (heads read together). Sent before the
   * turn runs, so that one that never ends is charged to its request alone, not split among
   * every request in flight (src/pool/instance.ts). The payload is the child's own count of CPU
   * so far of every request in flight that has one (frames.ts encodeTurnFrame): the daemon's
   * guesses of whose turn its samples saw are corrected by it at once, not when those requests
   * settle.
   */
  Turn: 13,
  /**
   * No payload: the runtime starts its own one-time work for an API the tenant uses for the
   * first time (loading Node's code for crypto.subtle, compression, ...; runner/runtime-work.ts),
   * in a turn of the request on this stream (0: none). CPU used until RuntimeWorkDone counts as
   * the script's startup, not as a request's.
   */
  RuntimeWork: 14,
  /** RuntimeWorkDoneMessage: the runtime's own work ended, and what the child measured it used. */
  RuntimeWorkDone: 15,
  /**
   * The payload: V8's code cache for the script a Load asked one for (makeCodeCache), made
   * after compiling it and before running it, so before any tenant code ran in this child.
   */
  CodeCacheMade: 16,
  // either direction, while a child boots (see EchoMessage)
  Echo: 12,
  // daemon → child
  Load: 20,
  RequestHead: 21,
  SubresponseHead: 22,
  SubrequestFailed: 23,
  Drain: 24,
  BindingResult: 25,
  /**
   * The payload: a code cache an earlier instance of the same worker version made
   * (CodeCacheMade); the next Load compiles its script from it instead of from scratch.
   */
  CodeCache: 26,
  // either direction, about one stream's body
  Data: 40,
  End: 41,
  Abort: 42,
  Window: 43,
  /**
   * After a request was answered with a WebSocket (a 101 head): one whole message on its stream,
   * the payload its bytes (text as UTF-8). Either direction; each costs its length in the
   * sender's flow-control window, which the receiver returns with WINDOW once it delivered it.
   */
  WebSocketText: 44,
  WebSocketBinary: 45,
  /** WebSocketCloseMessage: that end closed (the daemon: the client did, or the connection was lost). */
  WebSocketClose: 46,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** u32 payload length, u8 type, u32 stream id. */
export const FRAME_HEADER_BYTES = 9;
/** Largest DATA payload one frame carries; bigger chunks are split. */
export const MAX_DATA_FRAME_BYTES = 64 * 1024;
/** Largest JSON frame accepted (a script upload is one Load frame). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Bytes of body a sender may have in flight on one stream before it waits for WINDOW. */
export const STREAM_WINDOW_BYTES = 256 * 1024;
/** Largest WebSocket message either way, as on Workers (1 MiB); a larger one closes the socket with 1009. */
export const MAX_WEBSOCKET_MESSAGE_BYTES = 1024 * 1024;
/** The child's channel to the daemon: the fd of its fourth stdio slot. */
export const CHANNEL_FD = 3;

/**
 * Tenant log output one instance may send (runner/log-budget.ts): a token bucket holding
 * LOG_BURST_TOKENS, refilled at LOG_TOKENS_PER_SECOND; a line costs one token per started
 * KiB and is cut at MAX_LOG_LINE_CHARS. The runner drops what is over and says so once;
 * the daemon drops what a subverted runner sends past it (src/broker/tenant-log.ts).
 */
export const LOG_BURST_TOKENS = 1000;
export const LOG_TOKENS_PER_SECOND = 200;
export const MAX_LOG_LINE_CHARS = 16 * 1024;

export type HeaderList = Array<[name: string, value: string]>;

export interface ReadyMessage {
  pid: number;
  /** Milliseconds from process start to ready, measured in the child. */
  bootMs: number;
}

export interface LoadMessage {
  worker: string;
  version: number;
  /** Shown in stack traces and load errors. */
  filename: string;
  source: string;
  /** Plain values of `env` for module workers (vars and secrets); globals for service-worker scripts. */
  env: Record<string, unknown>;
  /** Bindings the daemon carries out, added to `env` (and as globals for service-worker scripts). */
  bindings: BindingDeclaration[];
  /** How long waitUntil work may run after its response before it is abandoned. */
  waitUntilMs: number;
  /** `--cf`: the fields every incoming request's `request.cf` starts from (null: only what edgeproc knows). */
  cf: Record<string, unknown> | null;
  /** Send CodeCacheMade: the daemon holds no code cache for this version yet. */
  makeCodeCache: boolean;
}

export type ScriptSyntax = 'module' | 'service-worker';

export interface LoadedMessage {
  syntax: ScriptSyntax;
  loadMs: number;
  /**
   * What became of a CodeCache sent before the Load: V8 compiled from it (`used`) or refused it
   * (`rejected`: it was made under other V8 flags, such as another heap limit); `none`: no cache came.
   */
  codeCache: 'used' | 'rejected' | 'none';
}

export interface RuntimeWorkDoneMessage {
  /** CPU time of the whole process during the window, read from its own clock. */
  cpuMs: number;
}

export interface LoadFailedMessage {
  /** `SyntaxError` (does not parse), `ScriptError` (threw while loading) or `NoHandler`. */
  kind: 'SyntaxError' | 'ScriptError' | 'NoHandler';
  message: string;
  line: number | null;
  column: number | null;
}

/** Sent in binary by protocol/heads.ts: a field added here must be added there too. */
export interface RequestHeadMessage {
  method: string;
  url: string;
  headers: HeaderList;
  hasBody: boolean;
  /**
   * Present when the stream is a scheduled event, not a request: the child calls the
   * tenant's `scheduled` handler instead of `fetch` (method, url and headers are unused).
   * It answers as for a request, so the daemon's limits apply alike: a ResponseHead
   * (200, no body) when the handler settled, or a HandlerError; then Settled once its
   * waitUntil work did.
   */
  scheduled?: ScheduledInit;
}

export interface ScheduledInit {
  /** The cron pattern that fired, as configured (five fields, e.g. `0 12 * * MON`). */
  cron: string;
  /** When the event was due, in milliseconds since the epoch (UTC). */
  scheduledTime: number;
}

export interface ResponseHeadMessage {
  status: number;
  statusText: string;
  headers: HeaderList;
  hasBody: boolean;
  /** Exact body size when the child knows it up front (a string or bytes body); null when streamed. */
  bodyLength: number | null;
}

export interface HandlerErrorMessage {
  /** Short text for the client and the log, e.g. `TypeError: x is not a function`. */
  message: string;
  stack: string | null;
  /** True when the handler called passThroughOnException() before failing. */
  passThrough: boolean;
  /** The handler's promise can never settle (nothing left that could settle it). */
  neverSettles: boolean;
}

export type LogLevel = 'debug' | 'info' | 'log' | 'warn' | 'error';

export interface LogMessage {
  level: LogLevel;
  text: string;
}

export interface SubrequestHeadMessage {
  /** Stream id of the request on whose behalf the tenant fetches (0 at load time). */
  parent: number;
  method: string;
  url: string;
  headers: HeaderList;
  hasBody: boolean;
  /**
   * The body's length when the tenant gave it whole (a string, bytes, a form) or as a
   * FixedLengthStream: it goes out with that Content-Length, as fetch sends it. Null: chunked.
   */
  contentLength: number | null;
  redirect: 'follow' | 'manual' | 'error';
}

export interface SubresponseHeadMessage {
  status: number;
  statusText: string;
  headers: HeaderList;
  hasBody: boolean;
  url: string;
  redirected: boolean;
}

export interface SubrequestFailedMessage {
  /** Becomes the message of the TypeError the tenant's fetch rejects with. */
  message: string;
}

/** Sent by the child on a request's stream once its response and every waitUntil promise settled; binary, not JSON (frames.ts encodeSettledFrame). */
export interface SettledMessage {
  waitUntilFailures: number;
  /** waitUntil work was still running when waitUntilMs ran out, and was abandoned. */
  waitUntilTimedOut: boolean;
  /** CPU time the child charged to the request's turns (handler and waitUntil work), in milliseconds. */
  cpuMs: number;
}

export interface WebSocketCloseMessage {
  /** The close code (1005: the close frame had none; 1006: the connection ended without one). */
  code: number;
  reason: string;
}

export interface AbortMessage {
  reason: string;
}

/** A binding in `env` whose operations the daemon performs: the child holds only a name. */
export interface BindingDeclaration {
  /** The property of env (and global of a service-worker script), e.g. `LINKS`. */
  name: string;
  kind: 'kv';
}

/** What a binding call acts on: a KV binding of the worker, or one of its Cache API caches. */
export type BindingTarget = { kind: 'kv'; binding: string } | { kind: 'cache'; cache: string };

/**
 * Sent by the child on a fresh even stream; the body (a KV value, a response to cache) follows
 * as DATA frames when hasBody. The daemon answers with one BindingResult, then its body.
 *   kv:    get {key} → value {metadata, expiration} | null, body = the value
 *          put {key, expiration?, expirationTtl?, metadata?} + body → null
 *          delete {key} → null;  list {prefix?, limit?, cursor?} → KV's list result
 *   cache: match {url, method, headers, ignoreMethod} → {status, headers} | null, body
 *          put {url, method, requestHeaders, status, headers} + body → null
 *          delete {url, method, ignoreMethod} → boolean
 */
export interface BindingCallMessage {
  /** Stream id of the request (or scheduled event) on whose behalf the call is made. */
  parent: number;
  target: BindingTarget;
  op: string;
  args: Record<string, unknown>;
  hasBody: boolean;
}

export interface BindingResultMessage {
  /** Set when the call failed: the tenant's promise rejects with an error of this name and message. */
  error: { name: 'TypeError' | 'Error' | 'RangeError'; message: string } | null;
  value: unknown;
  hasBody: boolean;
}

/**
 * A booting child's warm-up of the real channel (runner/warmup.ts): it sends Echo with a little
 * body on stream 0, and the daemon, only while the child is booting, sends back Echo, DATA and
 * END on stream 0. Synthetic requests cannot reach this code (their channel discards everything),
 * and without it a child compiled the socket's read and write paths during its first request.
 */
export interface EchoMessage {
  round: number;
}

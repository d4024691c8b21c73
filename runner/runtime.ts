/**
 * The child's runtime: receives frames from the daemon, loads the tenant's
 * script once, turns each RequestHead into a call of the tenant's handler and
 * the Response it returns into frames. One instance per child, one tenant
 * per child for its whole life.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Buffer } from 'node:buffer';
import process from 'node:process';
import type { Frame } from '../protocol/frames.js';
import { decodeJson, decodeWindow } from '../protocol/frames.js';
import { decodeRequestHead } from '../protocol/heads.js';
import { IdSet, IdTable } from '../protocol/id-table.js';
import {
  FrameType,
  MAX_DATA_FRAME_BYTES,
  STREAM_WINDOW_BYTES,
  type AbortMessage,
  type BindingResultMessage,
  type HandlerErrorMessage,
  type LoadMessage,
  type LoadedMessage,
  type LogLevel,
  type RequestHeadMessage,
  type ResponseHeadMessage,
  type ScheduledInit,
  type SubrequestFailedMessage,
  type SubresponseHeadMessage,
  type WebSocketCloseMessage,
} from '../protocol/messages.js';
import { createBindingCaller, type BindingCaller } from './binding-call.js';
import { IncomingBody, OutgoingBody } from './body.js';
import { KVNamespace } from './kv.js';
import { TurnMeter } from './turn-meter.js';
import { RuntimeWork } from './runtime-work.js';
import { fixedLengthOf } from './workers-streams.js';
import { TenantTimers } from './timers.js';
import { monotonicMs } from './clock.js';
import { ExecutionContext, Invocation, ScheduledController, createFetchEvent, createScheduledEvent } from './events.js';
import type { SubrequestStream } from './fetch.js';
import type { Channel } from './ipc.js';
import { ScriptLoadError, loadScript, type CodeCacheOptions, type LoadedScript } from './loader.js';
import { describeError, describeValue, stackOf } from './describe.js';
import { clipLine, LogBudget } from './log-budget.js';
import { asResponse, configureCf, incomingRequest, responseParts, responseSource, responseWebSocket, type Request, type Response } from './web.js';
import { giveToClient, type WebSocketArrival } from './websocket.js';
import { routeArrival, WebSocketLink, type WebSocketRoute } from './websocket-link.js';

const STALL_CHECK_MS = 100;
/** Process CPU between two stall checks above which the child counts as working. */
const STALL_BUSY_CPU_US = 2000;
/** Quiet checks in a row (STALL_CHECK_MS apart) after which a wait can never end. */
const STALL_STRIKES = 2;

/** A run of stall checks: the CPU clock at the last one, and how many in a row found nothing pending. */
interface Quiet {
  cpuUs: number;
  strikes: number;
}

/** Resolves (false) in the check phase of this event-loop turn, after its microtasks. */
function endOfTurn(): Promise<false> {
  return new Promise((resolve) => setImmediate(() => resolve(false)));
}

/** CPU time of the whole process, every thread, in microseconds. */
function processCpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}
/** Resources every child has, which never settle a tenant's promise. */
const IDLE_RESOURCES = new Set(['PipeWrap', 'TTYWrap', 'Timeout', 'Immediate']);

interface RequestStream {
  incoming: IncomingBody | null;
  outgoing: OutgoingBody | WebSocketLink | null;
  /** Answered with a WebSocket: where the client's messages and close go. */
  webSocket: WebSocketRoute | null;
}

type Listener = (event: Event) => unknown;

export class Runtime {
  readonly channel: Channel;
  readonly #context = new AsyncLocalStorage<number>();
  // By stream id; not Maps or Sets, see IdTable.
  readonly #requests = new IdTable<RequestStream>();
  /** The request the last Turn frame named, and the channel's count of frames sent just after it. */
  readonly #announced = { owner: 0, sent: -1 };
  readonly #subrequests = new IdTable<SubrequestStream>();
  readonly #listeners = new Map<string, Listener[]>();
  #script: LoadedScript | null = null;
  #loading: Promise<void> | null = null;
  /**
   * Runs once the script has loaded, before Loaded is sent, with the script's syntax: a child
   * spawned for a waiting request (no warm-up at boot) warms its request path here, as part of
   * the load (see bootstrap.ts).
   */
  beforeLoaded: ((syntax: LoadedScript['syntax']) => Promise<void>) | null = null;
  /** A CodeCache frame's bytes, for the Load that follows it. */
  #codeCache: Uint8Array | null = null;
  #env: Record<string, unknown> = {};
  #waitUntilMs = 30_000;
  #acceptingListeners = true;
  #inflight = 0;
  #draining = false;
  /** Drained was sent: the child exits once its socket has taken everything. */
  #leaving = false;
  #lastStreamId = 0;
  /** CPU per request as this child sees it (runner/turn-meter.ts), reported in Settled. */
  readonly #meter = new TurnMeter();
  /** The runtime's own first-use work, kept out of the requests' CPU (runner/runtime-work.ts). */
  readonly runtimeWork: RuntimeWork;
  /** Carries out KV and Cache API operations through the daemon (runner/binding-call.ts). */
  readonly callBinding: BindingCaller = createBindingCaller(this);

  readonly timers: TenantTimers;
  /** Requests whose handler has not produced a response yet. */
  readonly #awaiting = new IdSet();
  /** Requests answered as stalled; their handler may still (never) settle. */
  readonly #stalled = new IdSet();
  #stallTimer: ReturnType<typeof setInterval> | null = null;
  #stallSoon: ReturnType<typeof setImmediate> | null = null;
  /** The handlers' stall checks (see #checkForStalls). */
  readonly #stall: Quiet = { cpuUs: 0, strikes: 0 };
  readonly #logBudget = new LogBudget((text, stream) => this.channel.sendJson(FrameType.Log, stream, { level: 'warn', text }));

  constructor(channel: Channel) {
    this.channel = channel;
    this.timers = new TenantTimers(() => this.timerTurn());
    this.runtimeWork = new RuntimeWork(
      channel,
      this.#meter,
      () => this.#script !== null && this.#requests.size > 0,
      () => this.currentRequest(),
    );
  }

  /** Stream id of the request whose handler is running now, 0 outside one. */
  currentRequest(): number {
    return this.#context.getStore() ?? 0;
  }

  isInFlight(stream: number): boolean {
    return this.#requests.has(stream);
  }

  nextStreamId(): number {
    return (this.#lastStreamId += 2);
  }

  register(id: number, stream: SubrequestStream): void {
    this.#subrequests.set(id, stream);
  }

  unregister(id: number): void {
    this.#subrequests.delete(id);
  }

  /** Whether a log line would be sent now (console checks before it formats one). */
  get canLog(): boolean {
    return this.#logBudget.available;
  }

  /** Counts a console line dropped before it was formatted (the budget was spent). */
  dropLog(): void {
    this.#logBudget.drop(this.currentRequest());
  }

  /** A tenant log line, within the instance's log budget (runner/log-budget.ts). */
  log(level: LogLevel, text: string): void {
    const stream = this.currentRequest();
    if (!this.#logBudget.take(text.length, stream)) return;
    this.channel.sendJson(FrameType.Log, stream, { level, text: clipLine(text) });
  }

  addEventListener(type: string, listener: unknown): void {
    if (!this.#acceptingListeners) {
      throw new TypeError('addEventListener() can only register handlers while the script loads, at global scope');
    }
    if (typeof listener !== 'function') throw new TypeError('addEventListener: the listener must be a function');
    const list = this.#listeners.get(type) ?? [];
    if (!list.includes(listener as Listener)) list.push(listener as Listener);
    this.#listeners.set(type, list);
  }

  removeEventListener(type: string, listener: unknown): void {
    const list = this.#listeners.get(type);
    if (list) this.#listeners.set(type, list.filter((l) => l !== listener));
  }

  /** Installs an already-evaluated script; the boot warm-up uses this with a built-in handler. */
  preload(script: LoadedScript): void {
    this.#script = script;
  }

  /** Which request a frame's turn runs for: the request itself, or the one that made the subrequest (0: none in flight). */
  #ownerOf(stream: number): number {
    const owner = stream & 1 ? stream : (this.#subrequests.get(stream)?.parent ?? 0);
    return this.#requests.has(owner) ? owner : 0;
  }

  /** A tenant timer fires: a turn for the request that set it, if that request is still in flight. */
  timerTurn(): void {
    this.resumeTurn(this.currentRequest());
  }

  /**
   * Work of `owner` resumes in a turn the runner did not start from a frame (a timer, a
   * thread-pool result): charged to it here, and named to the daemon before it runs.
   */
  resumeTurn(owner: number): void {
    if (!this.#requests.has(owner)) {
      this.#meter.enter(0);
      return;
    }
    this.#meter.enter(owner);
    // Announced already, and nothing sent or received since: the daemon still takes this
    // request for the one keeping the child busy. A burst of messages or timer firings costs
    // one frame, not a write each (10k MessagePort messages to one port used ~50 ms of CPU
    // with a write each, ~10 without).
    if (owner === this.#announced.owner && this.channel.sent === this.#announced.sent) return;
    this.#announce(owner);
  }

  /**
   * Tells the daemon that `owner`'s work runs now, with every request's CPU count so far. It
   * charges what it samples from now to that request; sent at once (flushed, not corked until a
   * check phase a runaway never reaches), before the tenant's code runs.
   */
  #announce(owner: number): void {
    this.channel.sendTurn(owner, this.#meter.counts);
    this.channel.flush();
    this.#announced.owner = owner;
    this.#announced.sent = this.channel.sent;
  }

  // Hot path: every frame from the daemon.
  onFrame(frame: Frame): void {
    // The daemon sent something, so it may take another request for the busy one: the next
    // turn of a request the runner starts itself is announced again.
    this.#announced.owner = 0;
    const owner = frame.type === FrameType.RequestHead ? frame.stream : this.#ownerOf(frame.stream);
    // Its work follows a millisecond or more of other requests' that the daemon was not told of.
    if (this.#meter.enter(owner)) this.#announce(owner);
    switch (frame.type) {
      case FrameType.RequestHead:
        this.#onRequest(frame.stream, decodeRequestHead(frame));
        return;
      case FrameType.Data:
        this.#incoming(frame.stream)?.onData(frame.payload);
        return;
      case FrameType.End: {
        this.#incoming(frame.stream)?.onEnd();
        // A subrequest or binding call whose result has arrived whole and that sends nothing is
        // over: forgotten now, not when its request ends (a request may make a thousand KV reads).
        const sub = frame.stream & 1 ? undefined : this.#subrequests.get(frame.stream);
        if (sub && !sub.outgoing) this.#subrequests.delete(frame.stream);
        return;
      }
      case FrameType.Window:
        this.#outgoing(frame.stream)?.window.grant(decodeWindow(frame));
        return;
      case FrameType.Abort: {
        const { reason } = decodeJson<AbortMessage>(frame);
        this.#incoming(frame.stream)?.onAbort(reason);
        this.#outgoing(frame.stream)?.abort(reason);
        return;
      }
      case FrameType.SubresponseHead:
        this.#subrequests.get(frame.stream)?.resolve(decodeJson<SubresponseHeadMessage>(frame) as never);
        return;
      case FrameType.BindingResult:
        this.#subrequests.get(frame.stream)?.resolve(decodeJson<BindingResultMessage>(frame) as never);
        return;
      case FrameType.SubrequestFailed: {
        const sub = this.#subrequests.get(frame.stream);
        this.#subrequests.delete(frame.stream);
        sub?.reject(new TypeError(decodeJson<SubrequestFailedMessage>(frame).message));
        return;
      }
      case FrameType.WebSocketText:
      case FrameType.WebSocketBinary:
      case FrameType.WebSocketClose:
        this.#onWebSocketFrame(frame);
        return;
      case FrameType.CodeCache:
        this.#codeCache = frame.payload;
        return;
      case FrameType.Load:
        this.#loading = this.#load(decodeJson<LoadMessage>(frame));
        return;
      case FrameType.Drain:
        this.#draining = true;
        this.#maybeDrained();
        return;
    }
  }

  /** A message or close from the client of a WebSocket the worker returned: its events run as the request's. */
  #onWebSocketFrame(frame: Frame): void {
    // A request answered with a WebSocket (odd), or a WebSocket the worker opened with fetch (even).
    const sub = frame.stream & 1 ? undefined : this.#subrequests.get(frame.stream);
    const socket = sub ? sub.webSocket : this.#requests.get(frame.stream)?.webSocket;
    const arrival: WebSocketArrival =
      frame.type === FrameType.WebSocketClose
        ? { close: true, ...decodeJson<WebSocketCloseMessage>(frame) }
        : { close: false, binary: frame.type === FrameType.WebSocketBinary, data: frame.payload };
    if (!socket) {
      // A server that speaks first: its first messages can come in the read that brought its
      // 101, before the worker's fetch has resolved and made the webSocket they go to. Kept for
      // it (fetch.ts acceptedWebSocket); they were dropped, and their flow-control credit lost.
      if (sub) (sub.early ??= []).push(arrival);
      return;
    }
    this.#context.run(sub ? sub.parent : frame.stream, () => routeArrival(socket, arrival));
  }

  #incoming(id: number): IncomingBody | null | undefined {
    return id & 1 ? this.#requests.get(id)?.incoming : this.#subrequests.get(id)?.incoming;
  }

  #outgoing(id: number): OutgoingBody | WebSocketLink | null | undefined {
    return id & 1 ? this.#requests.get(id)?.outgoing : this.#subrequests.get(id)?.outgoing;
  }

  async #load(message: LoadMessage): Promise<void> {
    const started = monotonicMs();
    // The load's CPU is the script's startup (the daemon charges it to --startup-cpu-ms), not the
    // first request's, which waits for it: read in the same turn as the script, that request was
    // charged the whole load by this child's count (a 40 ms global scope as 45.6 ms).
    this.#meter.pause();
    try {
      await this.#evaluate(message, started);
    } finally {
      this.#meter.resume();
    }
  }

  async #evaluate(message: LoadMessage, started: number): Promise<void> {
    const env: Record<string, unknown> = { ...message.env };
    for (const binding of message.bindings) env[binding.name] = Object.freeze(new KVNamespace(binding.name, this.callBinding));
    this.#env = Object.freeze(env);
    this.#waitUntilMs = message.waitUntilMs;
    configureCf(message.cf);
    try {
      const cache: CodeCacheOptions = { cachedData: this.#codeCache ?? undefined };
      this.#codeCache = null;
      if (message.makeCodeCache) {
        cache.onMade = (bytes) => {
          this.channel.sendBytes(FrameType.CodeCacheMade, 0, bytes);
          // Out before the script runs: the daemon takes a load's first cache only. (One forged by a
          // tenant that broke out of the runner would reach later instances of its own version only.)
          this.channel.flush();
        };
      }
      const script = await this.#unlessLoadStalls(loadScript(message.source, message.filename, this.#env, cache));
      if (!script.exports?.fetch && !this.#listeners.has('fetch') && !script.exports?.scheduled && !this.#listeners.has('scheduled')) {
        throw new ScriptLoadError({
          kind: 'NoHandler',
          message:
            script.syntax === 'module'
              ? 'the script exports no fetch() handler: add `export default { fetch(request, env, ctx) { … } }`'
              : 'the script registered no event handlers: call addEventListener("fetch", …) at global scope',
          line: null,
          column: null,
        });
      }
      this.#acceptingListeners = false;
      const warm = this.beforeLoaded;
      this.beforeLoaded = null;
      if (warm) await warm(script.syntax);
      this.#script = script;
      this.channel.sendJson(FrameType.Loaded, 0, { syntax: script.syntax, loadMs: monotonicMs() - started, codeCache: script.codeCache } satisfies LoadedMessage);
      // Requests dispatched behind the Load frame run right after this: should one never yield, the
      // daemon must still learn that loading ended, or it charges that request's CPU to the startup limit.
      this.channel.flush();
    } catch (error) {
      const detail =
        error instanceof ScriptLoadError
          ? error.detail
          : { kind: 'ScriptError', message: String(error), line: null, column: null };
      // The daemon disposes of this child: a child runs at most one tenant's script in its life.
      this.channel.sendJson(FrameType.LoadFailed, 0, detail);
    }
  }

  // Hot path: one call per request.
  #onRequest(id: number, head: RequestHeadMessage): void {
    const incoming = head.hasBody ? new IncomingBody(this.channel, id) : null;
    const stream: RequestStream = { incoming, outgoing: null, webSocket: null };
    this.#requests.set(id, stream);
    this.#inflight++;
    this.#context.run(id, () => void this.#serve(id, head, stream));
  }

  /** The request is over: it leaves the tables (a stalled one left them when it was answered). */
  #served(id: number): void {
    if (this.#stalled.delete(id)) return;
    this.#requests.delete(id);
    this.#inflight--;
    this.#maybeDrained();
  }

  // Each promise made on this path costs AsyncLocalStorage's hooks (init, and before and
  // after each reaction), so it makes none it does not need: no .finally() chain, and the
  // response and the settle are awaited only when they have something to wait for.
  async #serve(id: number, head: RequestHeadMessage, stream: RequestStream): Promise<void> {
    try {
      await this.#serveRequest(id, head, stream);
    } finally {
      this.#served(id);
    }
  }

  async #serveRequest(id: number, head: RequestHeadMessage, stream: RequestStream): Promise<void> {
    // Only while the script loads: after, the handler starts in the turn its head arrived in, so
    // that the turn meter can tell apart the handlers of heads read together (TurnMeter.enter).
    if (!this.#script && this.#loading) await this.#loading;
    // The script failed to load: the daemon, told by LoadFailed, answers this request itself.
    if (!this.#script) return;
    if (head.scheduled) return this.#runScheduled(id, head.scheduled);
    const invocation = new Invocation();
    let response: unknown;
    try {
      const request = incomingRequest(head.url, head.method, head.headers, stream.incoming?.stream ?? null);
      this.#awaiting.add(id);
      this.#watchForStallsSoon();
      try {
        response = await this.#invoke(request, invocation);
      } finally {
        this.#awaiting.delete(id);
      }
      if (this.#stalled.has(id)) return;
      if (!asResponse(response)) {
        throw new TypeError(
          `the handler must return a Response (or a Promise of one), it returned ${describeValue(response)}`,
        );
      }
    } catch (error) {
      if (this.#stalled.has(id)) return;
      this.#sendHandlerError(id, error, invocation.passThrough);
      await this.#settle(id, invocation);
      return;
    }
    try {
      const streaming = this.#respond(id, response as Response, stream);
      if (streaming) await streaming;
    } catch (error) {
      // The Response could not be turned into a head (reading it ran tenant code that threw):
      // answer with the error rather than leave the request to its wall-time limit.
      this.#sendHandlerError(id, error, invocation.passThrough);
    }
    const settling = this.#settle(id, invocation);
    if (settling) await settling;
  }

  #invoke(request: Request, invocation: Invocation): unknown {
    const script = this.#script;
    if (!script) throw new Error('no script is loaded in this instance');
    if (script.syntax === 'module') {
      const handler = script.exports?.fetch;
      if (typeof handler !== 'function') throw new TypeError('Handler does not export a fetch() function.');
      return handler.call(script.exports, request, this.#env, new ExecutionContext(invocation));
    }
    const event = createFetchEvent(request, invocation);
    for (const listener of this.#listeners.get('fetch') ?? []) {
      listener.call(globalThis, event);
      if (invocation.response) break;
    }
    if (!invocation.response) {
      throw new TypeError('No response: no fetch listener called event.respondWith()');
    }
    return invocation.response;
  }

  /**
   * A scheduled event on stream `id`: answered like a request with no body, so the
   * daemon's CPU, wall-time and subrequest limits hold for it as they do for fetch.
   * 1. Call the handler and wait for what it returns.
   * 2. Report success (a 200 head) or the error it threw.
   * 3. Wait for its waitUntil work (bounded by waitUntilMs) and send Settled, whose
   *    failure count the daemon reads as part of the outcome: a service-worker
   *    handler does all its work in waitUntil.
   */
  async #runScheduled(id: number, init: ScheduledInit): Promise<void> {
    const invocation = new Invocation();
    try {
      this.#awaiting.add(id);
      this.#watchForStallsSoon();
      try {
        await this.#invokeScheduled(init, invocation);
      } finally {
        this.#awaiting.delete(id);
      }
    } catch (error) {
      if (this.#stalled.has(id)) return;
      this.#sendHandlerError(id, error, false);
      await this.#settle(id, invocation);
      return;
    }
    if (this.#stalled.has(id)) return;
    this.channel.sendResponseHead(id, { status: 200, statusText: 'OK', headers: [], hasBody: false, bodyLength: null });
    await this.#settle(id, invocation);
  }

  async #invokeScheduled(init: ScheduledInit, invocation: Invocation): Promise<void> {
    const script = this.#script!;
    if (script.syntax === 'module') {
      const handler = script.exports?.scheduled;
      if (typeof handler !== 'function') throw new TypeError('Handler does not export a scheduled() function.');
      await handler.call(script.exports, new ScheduledController(invocation, init), this.#env, new ExecutionContext(invocation));
      return;
    }
    const listeners = this.#listeners.get('scheduled') ?? [];
    if (listeners.length === 0) throw new TypeError('No event handler registered for "scheduled" events: call addEventListener("scheduled", …) at global scope.');
    const event = createScheduledEvent(init, invocation);
    for (const listener of listeners) listener.call(globalThis, event);
  }

  /**
   * Sends the head and body; throws only before the head is sent (the body's own failures
   * are logged). A body it has whole goes out at once and nothing is returned; a streamed
   * one returns the promise of its end.
   */
  #respond(id: number, response: Response, stream: RequestStream): Promise<void> | undefined {
    // A literal of its final shape, not a spread of responseParts() plus two fields: V8 gives a
    // spread's result a map outside its transition tree, so adding hasBody and bodyLength made
    // new maps for every response (Map::CopyAddDescriptor, MigrateToMap: ~6% of a hello
    // child's CPU under wrk in perf).
    const { status, statusText, headers } = responseParts(response);
    const head: ResponseHeadMessage = { status, statusText, headers, hasBody: true, bodyLength: null };
    if (status === 101) return this.#acceptWebSocket(id, response, head, stream);
    const source = responseSource(response);
    if (source !== null) {
      // Fast path: a body built from a string or bytes goes out as is, if it fits in one
      // window, without ever creating its ReadableStream.
      // Buffer.from, not TextEncoder.encode: the same bytes, ~140 ns against ~800 for a short string in Node 20.
      const bytes = typeof source === 'string' ? Buffer.from(source, 'utf8') : source;
      if (bytes.byteLength <= MAX_DATA_FRAME_BYTES) {
        // Hot path: head, body and end in one frame.
        head.bodyLength = bytes.byteLength;
        this.channel.sendResponse(id, head, bytes);
        return;
      }
      if (bytes.byteLength <= STREAM_WINDOW_BYTES) {
        head.bodyLength = bytes.byteLength;
        this.channel.sendResponseHead(id, head);
        if (bytes.byteLength > 0) this.channel.sendData(id, bytes);
        this.channel.sendEmpty(FrameType.End, id);
        return;
      }
    }
    const body = response.body;
    if (!body) {
      head.hasBody = false;
      this.channel.sendResponseHead(id, head);
      return;
    }
    // A FixedLengthStream's readable side promises its length: Content-Length, not chunked.
    head.bodyLength = fixedLengthOf(body);
    return this.#streamResponse(id, head, body, stream);
  }

  /**
   * The handler answered with a WebSocket (`status: 101, webSocket: client`): the daemon
   * completes the client's upgrade on the 101 head, and the request lasts until the socket has
   * closed (its waitUntil work then runs, as for any response).
   */
  #acceptWebSocket(id: number, response: Response, head: ResponseHeadMessage, stream: RequestStream): Promise<void> {
    const link = new WebSocketLink(this.channel, id);
    // Throws (a handler error, before anything is sent) if the webSocket is not one the worker may return.
    const arrive = giveToClient(responseWebSocket(response), link);
    head.hasBody = false;
    this.channel.sendResponseHead(id, head);
    stream.outgoing = link;
    stream.webSocket = { link, arrive };
    link.start();
    return link.closed;
  }

  async #streamResponse(id: number, head: ResponseHeadMessage, body: ReadableStream<Uint8Array>, stream: RequestStream): Promise<void> {
    // The first read starts before the head goes out. A body that fails within this turn (a
    // pull() that throws at once) is then answered as a handler error, a clean 500, instead of a
    // head the daemon can only follow by cutting the connection: nothing has been sent yet.
    // Waiting for the end of the turn costs nothing, as frames leave then anyway (per-turn
    // flushing, protocol/channel.ts); a body still pending then gets its head at once.
    const reader = body.getReader();
    const first = reader.read();
    const settledInTurn = await Promise.race([first.then(() => true, () => true), endOfTurn()]);
    if (settledInTurn) await first; // rethrows the body's error, before anything was sent
    this.channel.sendResponseHead(id, head);
    const outgoing = new OutgoingBody(this.channel, id);
    stream.outgoing = outgoing;
    try {
      await outgoing.pumpFrom(reader, first);
    } catch (error) {
      this.log('error', `response body failed after the headers were sent: ${describeError(error)}`);
    }
  }

  /**
   * Workers answers "The script will never generate a response" when a handler's
   * promise is pending and nothing is left that could settle it. Here: no tenant
   * timer pending, no subrequest, no request body still arriving, no other async
   * work in Node (crypto, compression, ...), and no script still loading — seen
   * twice, 100 ms apart, so that nothing in between could have started new work.
   */
  #watchForStalls(): void {
    if (this.#stallTimer) return;
    // The reading this turn started with: a new one is a system call, and the check now
    // starts again for most requests that find the child idle (below).
    this.#stall.cpuUs = this.#meter.lastReadingUs;
    this.#stall.strikes = 0;
    this.#stallTimer = setInterval(() => this.#checkForStalls(), STALL_CHECK_MS);
    this.#stallTimer.unref();
  }

  /**
   * Starts the stall check once this turn is over, if a handler is still waiting then. Most
   * handlers settle within the turn that ran them, and a check started for them woke the
   * child once more, 100 ms after each request that found it idle: clearing a Node timer
   * does not disarm the event loop's own, so that wake-up came either way (~100 µs of CPU
   * each on these machines). The immediate runs in the same pass of the event loop.
   */
  #watchForStallsSoon(): void {
    if (this.#stallTimer || this.#stallSoon) return;
    this.#stallSoon = setImmediate(() => {
      this.#stallSoon = null;
      if (this.#awaiting.size > 0) this.#watchForStalls();
    });
  }

  #checkForStalls(): void {
    if (this.#awaiting.size === 0) {
      clearInterval(this.#stallTimer!);
      this.#stallTimer = null;
      return;
    }
    // A script still loading will run the handlers waiting on it.
    if (this.#quietChecks(this.#stall, Boolean(this.#loading && !this.#script)) < STALL_STRIKES) return;
    for (const id of this.#awaiting.ids()) {
      this.#awaiting.delete(id);
      this.#stalled.add(id);
      this.#requests.delete(id);
      this.#inflight--;
      this.channel.sendJson(FrameType.HandlerError, id, {
        message: 'The script will never generate a response: its handler is waiting, and no timer, fetch, request body or other work is left that could settle it.',
        stack: null,
        passThrough: false,
        neverSettles: true,
      } satisfies HandlerErrorMessage);
      this.channel.sendSettled(id, { waitUntilFailures: 0, waitUntilTimedOut: false, cpuMs: this.#meter.settle(id) });
    }
    this.#maybeDrained();
  }

  /**
   * One stall check of the run `quiet`: how many checks in a row, this one included, found
   * nothing that could settle a wait (0 when this one did, or when `pending` says so).
   */
  #quietChecks(quiet: Quiet, pending = false): number {
    // Work Node runs in its thread pool for the tenant (zlib for DecompressionStream, PBKDF2 and
    // other crypto jobs) is not among the active resources below, but it burns CPU: a child that
    // used more than 2 ms since the last check is working, not stalled. A stalled child uses a
    // few hundredths of that (this check); one at work but starved of CPU by a loaded machine
    // still gets more (test/hostile/decompression-bomb.test.ts).
    const cpuUs = processCpuUs();
    const busy = cpuUs - quiet.cpuUs > STALL_BUSY_CPU_US;
    quiet.cpuUs = cpuUs;
    quiet.strikes = busy || pending || this.#workPending() ? 0 : quiet.strikes + 1;
    return quiet.strikes;
  }

  /** Whether anything is pending that could settle a promise the tenant waits on. */
  #workPending(): boolean {
    if (this.timers.pending > 0 || this.#subrequests.size > 0) return true;
    for (const stream of this.#requests.live()) if (stream.incoming && !stream.incoming.finished) return true;
    // Other work Node runs for the tenant (DNS, file handles, ...) shows up as active resources;
    // the channel and stdio pipes are always there, and timers are counted above.
    for (const type of process.getActiveResourcesInfo()) if (!IDLE_RESOURCES.has(type)) return true;
    return false;
  }

  /**
   * `loading`, failed with a clear error if it can never settle: a module whose top-level
   * await waits on nothing that is left to happen (as a request's handler can, above) would
   * otherwise keep the child loading, and every request to it waiting for --wall-ms. On
   * Workers such a script fails to start. The check starts only if the load is still pending
   * once this turn is over, so a script that loads at once arms no timer (see
   * #watchForStallsSoon), and it counts quiet checks as the handlers' stall check does.
   */
  #unlessLoadStalls<T>(loading: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: ReturnType<typeof setInterval> | null = null;
      const done = () => {
        settled = true;
        if (timer) clearInterval(timer);
      };
      loading.then(
        (value) => (done(), resolve(value)),
        (error: unknown) => (done(), reject(error)),
      );
      void endOfTurn().then(() => {
        if (settled) return;
        const quiet: Quiet = { cpuUs: processCpuUs(), strikes: 0 };
        timer = setInterval(() => {
          if (this.#quietChecks(quiet) < STALL_STRIKES) return;
          done();
          reject(
            new ScriptLoadError({
              kind: 'ScriptError',
              message:
                'its top-level await never settles: it waits, and no timer, fetch or other work is left that could settle it. A script must finish loading on its own; do asynchronous set-up in the handler',
              line: null,
              column: null,
            }),
          );
        }, STALL_CHECK_MS);
        timer.unref();
      });
    });
  }

  #sendHandlerError(id: number, error: unknown, passThrough: boolean): void {
    const message: HandlerErrorMessage = {
      message: describeError(error),
      stack: stackOf(error),
      passThrough,
      neverSettles: false,
    };
    this.channel.sendJson(FrameType.HandlerError, id, message);
  }

  /**
   * Waits for every waitUntil promise (including ones added meanwhile), at most
   * waitUntilMs from the response, then tells the daemon the request is done.
   * Work still running then is abandoned, as on Workers: it cannot be cancelled,
   * but it no longer holds the instance (it may be drained and stopped). Without
   * waitUntil work it tells the daemon at once and returns nothing to wait for.
   */
  #settle(id: number, invocation: Invocation): Promise<void> | undefined {
    if (invocation.waitUntil.length === 0) {
      // Hot path: most requests have no background work, and nothing to wait for.
      this.#cancelSubrequests(id);
      this.channel.sendSettled(id, { waitUntilFailures: 0, waitUntilTimedOut: false, cpuMs: this.#meter.settle(id) });
      return;
    }
    return this.#settleAfterWaitUntil(id, invocation);
  }

  async #settleAfterWaitUntil(id: number, invocation: Invocation): Promise<void> {
    let failures = 0;
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#waitUntilMs);
    });
    for (let seen = 0; seen < invocation.waitUntil.length && !timedOut; ) {
      const batch = invocation.waitUntil.slice(seen);
      seen = invocation.waitUntil.length;
      const results = await Promise.race([Promise.allSettled(batch), deadline]);
      if (results === 'timeout') {
        timedOut = true;
        this.log('warn', `waitUntil work was still running ${this.#waitUntilMs} ms after the response; it was abandoned (limit waitUntilMs)`);
        break;
      }
      for (const result of results) {
        if (result.status === 'rejected') {
          failures++;
          this.log('error', `waitUntil promise rejected: ${describeError(result.reason)}`);
        }
      }
    }
    clearTimeout(timer);
    this.#cancelSubrequests(id);
    this.channel.sendSettled(id, { waitUntilFailures: failures, waitUntilTimedOut: timedOut, cpuMs: this.#meter.settle(id) });
  }


  /**
   * The request is done (response sent, waitUntil settled): as on Workers, its
   * subrequests end with it. An unread subresponse body would otherwise hold the
   * origin connection and the daemon's stream open until the instance dies.
   */
  #cancelSubrequests(parent: number): void {
    for (const id of this.#subrequests.ids()) {
      const sub = this.#subrequests.get(id)!;
      if (sub.parent !== parent) continue;
      this.#subrequests.delete(id);
      this.channel.sendJson(FrameType.Abort, id, { reason: 'the request that made this subrequest has finished' });
      // A fetch still waiting for its response rejects instead of never settling.
      sub.reject(new TypeError('fetch aborted: the request that made this subrequest has finished'));
      sub.incoming.onAbort('the request that made this subrequest has finished');
      sub.outgoing?.abort('the request that made this subrequest has finished');
    }
  }

  #maybeDrained(): void {
    if (!this.#draining || this.#inflight > 0 || this.#leaving) return;
    this.#leaving = true;
    this.channel.sendEmpty(FrameType.Drained, 0);
    // Not before the socket has taken every frame: a daemon slow to read (a loaded host) would
    // otherwise lose the tail of the bodies this child just finished, and see it die mid-response.
    this.channel.end(() => process.exit(0));
  }
}

/**
 * The daemon's handle on one child: its lifecycle
 * (booting → warm → specialised → draining → dead), its channel, and the
 * exchanges (requests) and subrequests in flight on it. Everything the child
 * says is routed from here by stream id.
 */
import { FrameChannel } from '../../protocol/channel.js';
import { decodeResponse, decodeResponseHead, encodeRequestHeadFrame } from '../../protocol/heads.js';
import { IdTable } from '../../protocol/id-table.js';
import { decodeJson, decodeSettled, decodeTurnCounts, decodeWindow, type Frame } from '../../protocol/frames.js';
import {
  FrameType,
  type AbortMessage,
  type BindingCallMessage,
  type EchoMessage,
  type HandlerErrorMessage,
  type LoadFailedMessage,
  type LoadMessage,
  type LoadedMessage,
  type LogMessage,
  type ReadyMessage,
  type RequestHeadMessage,
  type ResponseHeadMessage,
  type RuntimeWorkDoneMessage,
  type SettledMessage,
  type SubrequestHeadMessage,
  type WebSocketCloseMessage,
} from '../../protocol/messages.js';
import { EdgeprocError } from '../errors.js';
import { IDLE_HOUSEKEEPING_MS, type Limits } from '../limits.js';
import { CpuEvent, CpuTrace } from './cpu-trace.js';
import * as priority from './priority.js';
import { spawnChild, type ChildHandle, type SpawnOptions } from './spawn.js';

/** What a load ended with: the child's Loaded, and the code cache it made if it was asked for one. */
export interface LoadResult extends LoadedMessage {
  madeCodeCache: Uint8Array | null;
}

export type InstanceState = 'booting' | 'warm' | 'specialised' | 'draining' | 'dead';

/** How a child ended: a record with reason flags, never a string to parse. */
export interface ExitOutcome {
  exitCode: number | null;
  signal: string | null;
  /** The daemon asked for it (dispose, drain timeout). */
  killed: boolean;
  /** It ended while still booting. */
  duringBoot: boolean;
  /** V8 ran out of heap (its fatal-error line reached stderr): a breach of the memory limit. */
  memoryExceeded: boolean;
}

/** The broker's side of one request on an instance. */
export interface Exchange {
  readonly requestId: string;
  /**
   * CPU time charged to this request so far: the watchdog adds to it, and takes back
   * what the child's own counts of settled requests show was theirs (Instance.chargeCpu).
   */
  cpuMs: number;
  /**
   * Where the CPU limit's count starts: 0, or for a request answered with a WebSocket, its
   * cpuMs when the client's last message was delivered (the limit holds per message, as for a
   * request; the charge itself keeps growing for the accounting).
   */
  cpuBaseMs: number;
  /** Subrequests (tenant fetch calls) made so far. */
  subrequests: number;
  /** KV operations made so far. */
  kvOperations: number;
  /**
   * Set by the instance: the sequence number of the last frame it sent the
   * child for this request (its head, body, credit, or a subresponse of one of
   * its fetches). See Instance.chargeCpu.
   */
  deliveredSeq?: number;
  /**
   * Set by the instance: what of cpuMs a late sample of the watchdog charged and the watchdog has
   * yet to confirm (Instance.chargeCpu with `held`, settleHeldCpu).
   */
  heldCpuMs?: number;
  /** The response head; with `whole`, its entire body too (a Response frame: no DATA or END follows). */
  onHead(head: ResponseHeadMessage, whole?: Uint8Array): void;
  onData(chunk: Uint8Array): void;
  onEnd(): void;
  /** The response body failed after the head was sent. */
  onAbort(reason: string): void;
  /** The handler threw (or returned no Response) before any head was sent. */
  onHandlerError(error: HandlerErrorMessage): void;
  /** The child consumed request body bytes and grants credit for more. */
  onWindow(bytes: number): void;
  /** A message of the WebSocket the request was answered with, for its client. */
  onWebSocketMessage(binary: boolean, data: Uint8Array): void;
  /** The worker closed that WebSocket (or answered the client's close). */
  onWebSocketClose(message: WebSocketCloseMessage): void;
  /** Response done and every waitUntil settled. */
  onSettled(message: SettledMessage): void;
  /** The child died with this exchange unfinished. */
  onInstanceDied(outcome: ExitOutcome): void;
  /** Ends the exchange with an error status decided by the daemon (e.g. the script failed to load). */
  fail(status: number, reason: string): void;
}

/** The outbound side of a subrequest, driven by frames from the child. */
export interface SubrequestSink {
  onData(chunk: Uint8Array): void;
  onEnd(): void;
  onAbort(reason: string): void;
  onWindow(bytes: number): void;
  /** A WebSocket the worker opened with this subrequest: a message for the server, or the worker's close. */
  onWebSocketMessage?(binary: boolean, data: Uint8Array): void;
  onWebSocketClose?(message: WebSocketCloseMessage): void;
}

export interface InstanceEvents {
  log(instance: Instance, requestStream: number, message: LogMessage): void;
  subrequest(instance: Instance, id: number, head: SubrequestHeadMessage): SubrequestSink;
  /** A KV or Cache API operation; the stream behaves as a subrequest's. */
  bindingCall(instance: Instance, id: number, call: BindingCallMessage): SubrequestSink;
  stderr(instance: Instance, line: string): void;
  exit(instance: Instance, outcome: ExitOutcome): void;
}

let instanceCounter = 0;
/** What the daemon sends back to a booting child's Echo: a body chunk of a typical response's size. */
const ECHO_BODY = new Uint8Array(256).fill(0x2e);

export class Instance {
  /** A number of its own, for tables keyed by instance (see IdTable). */
  readonly serial = ++instanceCounter;
  readonly id = `i${this.serial.toString(36)}`;
  /** The last events of its CPU accounting, for the log line of a CPU breach. */
  readonly cpuTrace = new CpuTrace();
  readonly spawnedAt = performance.now();
  state: InstanceState = 'booting';
  worker: string | null = null;
  version = 0;
  /** Requests dispatched over the instance's life. */
  served = 0;
  /** The limits of the worker this instance serves (null while warm). */
  limits: Limits | null = null;
  lastActiveAt = performance.now();
  bootMs = 0;
  /** Set by the watchdog while it samples this busy instance slowly (it has been quiet): called when it is sent anything. */
  onWake: (() => void) | null = null;
  readonly ready: Promise<void>;
  readonly exited: Promise<ExitOutcome>;

  readonly #child: ChildHandle;
  /** Opens when the fork server hands over the child's socket; nothing is sent before Ready. */
  #channel: FrameChannel | null = null;
  readonly #events: InstanceEvents;
  // By stream id; not Maps, see IdTable.
  readonly #exchanges = new IdTable<Exchange>();
  readonly #subrequests = new IdTable<SubrequestSink>();
  /** Subrequest id → stream of the request that made it. */
  readonly #subrequestParents = new IdTable<number>();
  /**
   * Orders what was sent to and heard from the child, for CPU attribution: a
   * request sent something after the child last spoke is one the child may be
   * busy with now.
   */
  #seq = 0;
  #heardSeq = 0;
  #nextStream = 1;
  #loaded: { resolve(m: LoadResult): void; reject(e: Error): void } | null = null;
  /** The load asked for a code cache and none came yet: the first CodeCacheMade is taken, no other. */
  #wantsCodeCache = false;
  #madeCodeCache: Uint8Array | null = null;
  #readyResolve!: () => void;
  #killed = false;
  /** Set when the pool gave up on the boot (see giveUpBoot): why the child died while booting. */
  #bootTimeoutMs: number | null = null;
  #drained: (() => void) | null = null;
  #heapExhausted = false;
  /**
   * CPU the watchdog has measured on this child since it began watching it afresh, less the
   * child's own counts of the requests that settled meanwhile: what the requests in flight may
   * be charged at most. Below zero, a count the watchdog has not sampled yet (a credit).
   */
  #unexplainedCpuMs = 0;
  /**
   * The child has been on a CPU without a pause, and silent, since #seq was this (-1: it is not).
   * A request sent after that cannot be what set it going: the child was busy before the request
   * reached it, most often with V8's garbage collection, which runs between the runner's turns
   * (incremental marking and the memory reducer are tasks of the event loop). Charged to the
   * requests that arrived meanwhile, a collection of 75-100 ms of CPU on a loaded host stopped
   * hello-world requests by the CPU limit (test/faults/kills-under-load.test.ts, seen in CI).
   * See #chargeRequests.
   */
  #burnSeq = -1;
  /** CPU of the current burn that requests sent during it were not charged (at most IDLE_HOUSEKEEPING_MS). */
  #burnSparedMs = 0;
  /** A Turn frame's counts while they are taken (#takeCounts): one table for the instance, not one per frame. */
  readonly #counts = new IdTable<number>();
  /** Some request in flight holds a charge of a late sample (Exchange.heldCpuMs). */
  #heldCpu = false;
  /** True from Load until Loaded/LoadFailed: CPU used meanwhile is the script's startup, not a request's. */
  loading = false;
  /**
   * True from RuntimeWork to RuntimeWorkDone: the runtime loads its own code for an API a request
   * used first (runner/runtime-work.ts), and CPU used meanwhile is the startup's, as while loading.
   */
  #runtimeWork = false;
  /** What the watchdog charged to the startup during the current runtime-work window. */
  #windowChargedMs = 0;
  /** The request whose turn the current runtime-work window is in (its stream; 0: none). */
  #windowOwner = 0;
  /** Runtime work the child measured that the watchdog has yet to sample: the startup's, not the next requests'. */
  #runtimeCreditMs = 0;
  /** CPU time of the script's global scope while loading, and of the runtime's set-up for APIs on their first use. */
  startupCpuMs = 0;

  constructor(events: InstanceEvents, spawn: SpawnOptions) {
    this.#events = events;
    this.#child = spawnChild(spawn);
    this.#child.channel.then(
      (socket) => {
        if (this.state === 'dead') {
          socket.destroy();
          return;
        }
        this.#channel = new FrameChannel(socket, (frame) => this.#onFrame(frame), () => {}, 'batched');
      },
      () => {},
    );
    let readyReject!: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#readyResolve = resolve;
      readyReject = reject;
    });
    // Readiness races exit: a child that dies while booting rejects `ready`.
    this.ready.catch(() => {});
    this.exited = this.#child.exited.then((result) => {
      const outcome: ExitOutcome = {
        exitCode: result.exitCode,
        signal: result.signal,
        killed: this.#killed,
        duringBoot: this.state === 'booting',
        memoryExceeded: this.#heapExhausted,
      };
      this.#onExit(outcome);
      readyReject(
        new EdgeprocError(
          'ERR_SPAWN',
          this.#bootTimeoutMs !== null
            ? `a child did not finish booting within ${this.#bootTimeoutMs} ms and was stopped; the machine is likely overloaded. Retry; a new child will be started`
            : `a child exited while booting (exit code ${outcome.exitCode}, signal ${outcome.signal}); its output is in the daemon log (source child-stderr)`,
        ),
      );
      return outcome;
    });
    this.#child.onOutput((text) => {
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        // V8's last words when the heap limit (--max-old-space-size) is hit.
        if (/heap out of memory|Reached heap limit/.test(line)) this.#heapExhausted = true;
        this.#events.stderr(this, line);
      }
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** dispose() was called: the child is being killed. */
  get disposed(): boolean {
    return this.#killed;
  }

  get busy(): boolean {
    return this.#exchanges.size > 0;
  }

  /** Requests dispatched and not yet settled. */
  get inflight(): number {
    return this.#exchanges.size;
  }

  /**
   * Sends the tenant's script, and the code cache an earlier instance of its version made, if
   * any. Resolves when it loaded; requests may be dispatched before that.
   */
  load(message: LoadMessage, codeCache: Uint8Array | null = null): Promise<LoadResult> {
    if (this.state !== 'warm') throw new Error(`cannot load a script into a ${this.state} instance`);
    this.state = 'specialised';
    this.worker = message.worker;
    this.version = message.version;
    // The idle clock starts at specialisation: a child that waited long in the pool is not idle yet.
    this.lastActiveAt = performance.now();
    this.loading = true;
    this.#wantsCodeCache = message.makeCodeCache;
    if (codeCache) this.#channel!.sendBytes(FrameType.CodeCache, 0, codeCache);
    this.#channel!.sendJson(FrameType.Load, 0, message);
    return new Promise((resolve, reject) => {
      this.#loaded = { resolve, reject };
    });
  }

  // Hot path: one call per request.
  dispatch(head: RequestHeadMessage, exchange: Exchange): number {
    const id = this.#nextStream;
    this.#nextStream += 2;
    this.#exchanges.set(id, exchange);
    exchange.deliveredSeq = ++this.#seq;
    this.served++;
    this.lastActiveAt = performance.now();
    this.cpuTrace.record(CpuEvent.Sent, this.lastActiveAt, this.#exchanges.size);
    this.#channel!.send(encodeRequestHeadFrame(id, head));
    return id;
  }

  sendData(id: number, chunk: Uint8Array): void {
    this.#delivered(id);
    this.#channel!.sendData(id, chunk);
  }

  sendEnd(id: number): void {
    this.#delivered(id);
    this.#channel!.sendEmpty(FrameType.End, id);
  }

  /** A message from the client of the WebSocket request `id` was answered with. */
  sendWebSocketMessage(id: number, binary: boolean, data: Uint8Array): void {
    this.#delivered(id);
    this.#channel!.sendWebSocketMessage(id, binary, data);
  }

  /** That WebSocket's client closed it (1006: the connection was lost), or answered the worker's close. */
  sendWebSocketClose(id: number, code: number, reason: string): void {
    this.#delivered(id);
    this.#channel!.sendJson(FrameType.WebSocketClose, id, { code, reason } satisfies WebSocketCloseMessage);
  }

  sendAbort(id: number, reason: string): void {
    this.#channel!.sendJson(FrameType.Abort, id, { reason });
  }

  sendWindow(id: number, bytes: number): void {
    this.#delivered(id);
    this.#channel!.sendWindow(id, bytes);
  }

  sendJson(type: FrameType, id: number, message: unknown): void {
    this.#delivered(id);
    this.#channel!.sendJson(type, id, message);
  }

  /** Notes that the request behind stream `id` (a request stream, or a subrequest of one) got something to act on. */
  #delivered(id: number): void {
    const exchange = this.#exchanges.get(id & 1 ? id : (this.#subrequestParents.get(id) ?? 0));
    if (exchange) exchange.deliveredSeq = ++this.#seq;
    if (this.onWake) this.onWake();
  }

  /**
   * Stops taking requests, lets in-flight requests and their waitUntil work
   * finish, then the child exits. Killed if that takes longer than `timeoutMs`;
   * a request still in flight then is answered with `outOfTime`'s status and
   * reason (it says why the instance went and which limit cut the wait), not
   * with the bare "instance stopped" of a child that died.
   */
  async drain(timeoutMs: number, outOfTime: (exchange: Exchange) => [status: number, reason: string]): Promise<void> {
    if (this.state === 'dead') return;
    this.state = 'draining';
    const drained = new Promise<void>((resolve) => (this.#drained = resolve));
    this.#channel!.sendEmpty(FrameType.Drain, 0);
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        resolve();
      }, timeoutMs);
    });
    try {
      await Promise.race([Promise.all([drained, this.exited]), timeout]);
    } finally {
      clearTimeout(timer);
      if (timedOut) this.terminate(outOfTime);
      else this.dispose();
    }
  }

  /** Kills a child that did not boot within `timeoutMs`; what waited for it is told so, not just "SIGKILL". */
  giveUpBoot(timeoutMs: number): void {
    if (this.state !== 'booting') return;
    this.#bootTimeoutMs = timeoutMs;
    this.dispose();
  }

  /** Kills the child now. Idempotent. */
  dispose(): void {
    if (this.#killed || this.state === 'dead') return;
    this.#killed = true;
    this.#channel?.close();
    this.#child.kill();
  }

  // Hot path: every frame from the child.
  #onFrame(frame: Frame): void {
    const id = frame.stream;
    this.#heardSeq = ++this.#seq;
    switch (frame.type) {
      case FrameType.ResponseHead:
        this.#exchanges.get(id)?.onHead(decodeResponseHead(frame));
        return;
      case FrameType.Response: {
        const { message, body } = decodeResponse(frame);
        this.#exchanges.get(id)?.onHead(message, body);
        return;
      }
      case FrameType.Data:
        if (id & 1) this.#exchanges.get(id)?.onData(frame.payload);
        else this.#subrequests.get(id)?.onData(frame.payload);
        return;
      case FrameType.End:
        if (id & 1) this.#exchanges.get(id)?.onEnd();
        else this.#subrequests.get(id)?.onEnd();
        return;
      case FrameType.Window:
        if (id & 1) this.#exchanges.get(id)?.onWindow(decodeWindow(frame));
        else this.#subrequests.get(id)?.onWindow(decodeWindow(frame));
        return;
      case FrameType.Abort: {
        const { reason } = decodeJson<AbortMessage>(frame);
        if (id & 1) this.#exchanges.get(id)?.onAbort(reason);
        else this.#subrequests.get(id)?.onAbort(reason);
        return;
      }
      case FrameType.WebSocketText:
      case FrameType.WebSocketBinary: {
        const binary = frame.type === FrameType.WebSocketBinary;
        if (id & 1) this.#exchanges.get(id)?.onWebSocketMessage(binary, frame.payload);
        else this.#subrequests.get(id)?.onWebSocketMessage?.(binary, frame.payload);
        return;
      }
      case FrameType.WebSocketClose: {
        const close = decodeJson<WebSocketCloseMessage>(frame);
        if (id & 1) this.#exchanges.get(id)?.onWebSocketClose(close);
        else this.#subrequests.get(id)?.onWebSocketClose?.(close);
        return;
      }
      case FrameType.Turn:
        // The child is about to run work of this request: it is the one keeping the child busy
        // now, as if it had just been sent something (see chargeCpu).
        this.#takeCounts(id, frame);
        this.#delivered(id);
        return;
      case FrameType.Settled: {
        const exchange = this.#exchanges.get(id);
        if (!exchange) return;
        this.#exchanges.delete(id);
        this.lastActiveAt = performance.now();
        const settled = decodeSettled(frame);
        this.#reconcileCpu(settled.cpuMs);
        this.cpuTrace.record(CpuEvent.Settled, this.lastActiveAt, settled.cpuMs, this.#exchanges.size);
        exchange.onSettled(settled);
        return;
      }
      case FrameType.HandlerError:
        this.#exchanges.get(id)?.onHandlerError(decodeJson<HandlerErrorMessage>(frame));
        return;
      case FrameType.Log:
        this.#events.log(this, id, decodeJson<LogMessage>(frame));
        return;
      case FrameType.SubrequestHead: {
        const head = decodeJson<SubrequestHeadMessage>(frame);
        this.#openSubstream(id, head.parent, () => this.#events.subrequest(this, id, head));
        return;
      }
      case FrameType.BindingCall: {
        const call = decodeJson<BindingCallMessage>(frame);
        this.#openSubstream(id, call.parent, () => this.#events.bindingCall(this, id, call));
        return;
      }
      case FrameType.Echo:
        // Only a booting child warms its channel; later, an Echo is not worth answering.
        if (this.state === 'booting') {
          this.#channel!.sendJson(FrameType.Echo, 0, decodeJson<EchoMessage>(frame));
          this.#channel!.sendData(0, ECHO_BODY);
          this.#channel!.sendEmpty(FrameType.End, 0);
        }
        return;
      case FrameType.Ready:
        this.bootMs = decodeJson<ReadyMessage>(frame).bootMs;
        if (this.state === 'booting') this.state = 'warm';
        priority.ready(this.pid);
        this.#readyResolve();
        return;
      case FrameType.RuntimeWork:
        // While loading, everything is the startup's already.
        if (this.loading) return;
        this.#runtimeWork = true;
        this.#windowChargedMs = 0;
        this.#windowOwner = id;
        return;
      case FrameType.RuntimeWorkDone:
        if (this.#runtimeWork) this.#endRuntimeWork(decodeJson<RuntimeWorkDoneMessage>(frame).cpuMs);
        return;
      case FrameType.CodeCacheMade:
        if (!this.loading || !this.#wantsCodeCache) return;
        this.#wantsCodeCache = false;
        // A copy: the payload is a view of the socket's read, which the cache would keep alive.
        this.#madeCodeCache = frame.payload.slice();
        return;
      case FrameType.Loaded:
        this.loading = false;
        this.#wantsCodeCache = false;
        this.#loaded?.resolve({ ...decodeJson<LoadedMessage>(frame), madeCodeCache: this.#madeCodeCache });
        this.#madeCodeCache = null;
        this.#loaded = null;
        return;
      case FrameType.LoadFailed: {
        this.loading = false;
        this.#wantsCodeCache = false;
        this.#madeCodeCache = null;
        const failure = decodeJson<LoadFailedMessage>(frame);
        const error = Object.assign(new Error(failure.message), { failure });
        this.#loaded?.reject(error);
        this.#loaded = null;
        return;
      }
      case FrameType.Drained:
        this.#drained?.();
        return;
    }
  }

  /** Fails every request in flight on this instance (its script failed to load); the child will not answer them. */
  failExchanges(status: number, reason: string): void {
    const exchanges = this.#exchanges.values();
    this.#exchanges.clear();
    for (const exchange of exchanges) exchange.fail(status, reason);
  }

  /**
   * Charges CPU time the watchdog measured on this child: to the script's startup
   * while it loads or the runtime sets up an API's first use, else to the
   * requests that may have used it. The child runs
   * one turn at a time and says something (a response, a log line, a fetch) at
   * the end of each, so a request that was sent something after the child last
   * spoke is the one it is busy with now: a `for (;;) {}` woken by its request
   * head or by a subresponse is charged alone, not split with requests idle
   * beside it (which would let k idle requests stretch a runaway's limit k
   * times). A turn the child starts itself (a timer, a crypto.subtle result,
   * a MessagePort message) is announced by a Turn frame naming its request,
   * which counts the same. When no request qualifies (the child is between
   * turns, or runs a continuation nobody announced, such as a message to a
   * port made at global scope), the time is split evenly among all in flight:
   * exact for one request, fair for many.
   * Either guess is corrected as requests settle (#reconcileCpu): what settled
   * requests' own counts explain is not charged. True if some request was charged.
   */
  chargeCpu(ms: number, held = false): boolean {
    if (this.loading || this.#runtimeWork) {
      this.startupCpuMs += ms;
      if (this.#runtimeWork) this.#windowChargedMs += ms;
      return false;
    }
    if (this.#runtimeCreditMs > 0) {
      const creditMs = Math.min(ms, this.#runtimeCreditMs);
      this.#runtimeCreditMs -= creditMs;
      this.startupCpuMs += creditMs;
      ms -= creditMs;
      if (ms <= 0) return false;
    }
    return this.#chargeRequests(ms, held);
  }

  /** Whether a late sample's charge is held (see chargeCpu, settleHeldCpu). */
  get holdsCpu(): boolean {
    return this.#heldCpu;
  }

  /**
   * Ends what a late sample of the watchdog charged with `held`: kept as charged, or taken back
   * from the requests still in flight (what was taken back is returned). Taken back, it is still
   * measured (#unexplainedCpuMs), as the spare of #chargeRequests is: no request may be charged it later.
   */
  settleHeldCpu(keep: boolean): number {
    if (!this.#heldCpu) return 0;
    this.#heldCpu = false;
    let backMs = 0;
    for (const exchange of this.#exchanges.live()) {
      if (!keep && exchange.heldCpuMs) {
        const ms = Math.min(exchange.heldCpuMs, exchange.cpuMs);
        exchange.cpuMs -= ms;
        backMs += ms;
      }
      exchange.heldCpuMs = 0;
    }
    return backMs;
  }

  /** Whether CPU used now counts against the startup limit (the script loads, or the runtime sets up an API). */
  get chargesStartup(): boolean {
    return this.loading || this.#runtimeWork;
  }

  /**
   * A runtime-work window closed, and the child measured `measuredMs` in it. The watchdog's samples
   * do not line up with it: one taken before the daemon read the window's opening frame charged the
   * window to its request, and the last few milliseconds of it are not sampled yet (a sampling
   * interval, a scheduler tick). So what the window used beyond what was charged to the startup
   * meanwhile is taken back from its request now, and what remains from the next samples; what the
   * samples took in beyond it (the turn's own work before the window) goes back to the requests.
   * Never more than the startup limit leaves: a child that lies can only move CPU from its
   * requests to its startup, where the limit still holds.
   */
  #endRuntimeWork(measuredMs: number): void {
    this.#runtimeWork = false;
    const measured = Number.isFinite(measuredMs) && measuredMs > 0 ? measuredMs : 0;
    const overMs = this.#windowChargedMs - measured;
    if (overMs > 0) {
      this.startupCpuMs -= overMs;
      this.#chargeRequests(overMs);
      return;
    }
    let owedMs = Math.max(0, Math.min(-overMs, (this.limits?.startupCpuMs ?? 0) - this.startupCpuMs - this.#runtimeCreditMs));
    const owner = this.#exchanges.get(this.#windowOwner);
    if (owner) {
      const backMs = Math.min(owedMs, owner.cpuMs);
      owner.cpuMs -= backMs;
      this.#unexplainedCpuMs -= backMs;
      this.startupCpuMs += backMs;
      owedMs -= backMs;
    }
    this.#runtimeCreditMs += owedMs;
  }

  /**
   * At each sample of the watchdog, before it charges what the sample found: `running` says
   * whether the child's main thread is on a CPU or waiting for one now, i.e. has not gone idle.
   * A burn that goes on while the child says nothing is one burn (see #burnSeq); a pause or a
   * word from the child ends it.
   */
  noteBurn(running: boolean): void {
    if (!running) {
      this.#burnSeq = -1;
    } else if (this.#burnSeq < 0 || this.#heardSeq > this.#burnSeq) {
      // Whatever was sent before now may have set it going: only what is sent from now on is spared.
      this.#burnSeq = this.#seq;
      this.#burnSparedMs = 0;
    }
  }

  /**
   * Charges CPU to the requests that may have used it: those sent something since the child last
   * spoke (suspects), else all in flight. A suspect sent its last frame during a silent burn that
   * began before it (#burnSeq) is spared, for at most IDLE_HOUSEKEEPING_MS of the burn, the
   * allowance an idle instance gets for its garbage collection: a runaway woken by a frame the
   * child read the moment a collection ended is still stopped, that much later.
   */
  #chargeRequests(ms: number, held = false): boolean {
    const sparedAfter = this.#burnSeq >= 0 && this.#heardSeq <= this.#burnSeq && this.#burnSparedMs < IDLE_HOUSEKEEPING_MS ? this.#burnSeq : Infinity;
    let chargedMs = 0;
    let suspects = 0;
    let spared = 0;
    for (const exchange of this.#exchanges.live()) {
      chargedMs += exchange.cpuMs;
      const seq = exchange.deliveredSeq ?? 0;
      if (seq > sparedAfter) spared++;
      else if (seq > this.#heardSeq) suspects++;
    }
    // Measured either way: the settle of a request sent during the burn takes its own count off.
    this.#unexplainedCpuMs += ms;
    if (spared > 0 && suspects === 0) {
      // Nothing in flight that the child was running for when the burn began: no request's.
      this.#burnSparedMs += ms;
      return false;
    }
    const chargeableMs = Math.min(ms, this.#unexplainedCpuMs - chargedMs);
    if (chargeableMs <= 0) return false;
    const share = chargeableMs / (suspects || this.#exchanges.size);
    for (const exchange of this.#exchanges.live()) {
      const seq = exchange.deliveredSeq ?? 0;
      if (suspects && (seq <= this.#heardSeq || seq > sparedAfter)) continue;
      exchange.cpuMs += share;
      if (held) exchange.heldCpuMs = (exchange.heldCpuMs ?? 0) + share;
    }
    if (held) this.#heldCpu = true;
    return true;
  }

  /** The watchdog measures this child afresh from now (nothing in flight): no charge or credit carries over. */
  openCpuWindow(): void {
    this.#heldCpu = false;
    this.#unexplainedCpuMs = 0;
    this.#runtimeCreditMs = 0;
    this.#burnSeq = -1;
  }

  /**
   * A request settled, with the child's own count of its CPU (its turns, read from the
   * process's clock: exact, where the watchdog could only guess whose turn it sampled).
   * Measured CPU that count explains is no longer owed by the requests still in flight:
   * their charges are scaled down to fit what is left. Without this, a request waiting
   * beside busy neighbours was charged a share of each of their turns, and CI saw a
   * hello-world request queued behind a fresh instance's backlog stopped by the CPU
   * limit for the backlog's work (test/limits/cpu-attribution.test.ts).
   */
  #reconcileCpu(childCpuMs: number): void {
    this.#unexplainedCpuMs -= childCpuWorth(childCpuMs, this.limits?.cpuMs ?? 0);
    if (this.#exchanges.size === 0) return;
    const roomMs = Math.max(0, this.#unexplainedCpuMs);
    let chargedMs = 0;
    for (const exchange of this.#exchanges.live()) chargedMs += exchange.cpuMs;
    if (chargedMs <= roomMs) return;
    const keep = roomMs / chargedMs;
    for (const exchange of this.#exchanges.live()) exchange.cpuMs *= keep;
  }

  /**
   * A Turn frame's counts: the child's own CPU count of each request in flight up to the turn it
   * starts now, for the request on stream `id` (one it does not list has used none). The
   * watchdog's charges were guesses of whose turn each sample saw; each request but `id` is
   * charged its count instead, and what they were charged beyond their counts goes to `id`, whose
   * work the samples that were read before this frame saw: charge moves, it is never dropped,
   * so a child that lies about its counts can only move the blame, not escape the limit.
   */
  #takeCounts(id: number, frame: Frame): void {
    const current = this.#exchanges.get(id);
    if (!current) return;
    const limitMs = this.limits?.cpuMs ?? 0;
    const counts = this.#counts;
    decodeTurnCounts(frame, (stream, cpuMs) => counts.set(stream, childCpuWorth(cpuMs, limitMs)));
    let beforeMs = 0;
    let othersMs = 0;
    let heldMs = 0;
    const streams = this.#exchanges.liveIds();
    const exchanges = this.#exchanges.live();
    for (let i = 0; i < exchanges.length; i++) {
      const exchange = exchanges[i]!;
      beforeMs += exchange.cpuMs;
      heldMs += exchange.heldCpuMs ?? 0;
      exchange.heldCpuMs = 0;
      if (exchange === current) continue;
      const countMs = counts.get(streams[i]!) ?? 0;
      exchange.cpuMs = countMs;
      // A WebSocket's limit counts from its last message: never from above what it is charged.
      if (exchange.cpuBaseMs > countMs) exchange.cpuBaseMs = countMs;
      othersMs += countMs;
    }
    const ownMs = counts.get(id) ?? 0;
    const chargedMs = current.cpuMs;
    current.cpuMs = Math.max(ownMs, beforeMs - othersMs);
    this.cpuTrace.record(CpuEvent.Turn, performance.now(), ownMs, chargedMs, current.cpuMs, exchanges.length);
    // A late sample's charge moves with the rest, still held (see settleHeldCpu): no count says
    // whose it was, and kept here, three hello-world requests' shares (~34 ms each) of ~100 ms a
    // late or stalled sample found on their child became one request's 101 ms and a 503 in a local full run
    // (test/faults/kills-under-load.test.ts). What the child's own count explains is not held.
    current.heldCpuMs = Math.min(heldMs, current.cpuMs - ownMs);
    this.#heldCpu = current.heldCpuMs > 0;
    counts.clear();
  }

  /** The request in flight with the most CPU charged against its limit (see Exchange.cpuBaseMs), for the limit check. */
  topCpu(): Exchange | null {
    let top: Exchange | null = null;
    for (const exchange of this.#exchanges.live()) {
      if (!top || exchange.cpuMs - exchange.cpuBaseMs > top.cpuMs - top.cpuBaseMs) top = exchange;
    }
    return top;
  }

  /** Ends every request in flight with a status and reason chosen per request, then kills the child. */
  terminate(reasonFor: (exchange: Exchange) => [status: number, reason: string]): void {
    const exchanges = this.#exchanges.values();
    this.#exchanges.clear();
    for (const exchange of exchanges) exchange.fail(...reasonFor(exchange));
    this.dispose();
  }

  /** The exchange (request) with this stream id, while it is in flight. */
  exchange(stream: number): Exchange | undefined {
    return this.#exchanges.get(stream);
  }

  /** The request id of a request stream, while it is in flight (for tagging the tenant's log lines). */
  requestIdOf(stream: number): string | undefined {
    return this.#exchanges.get(stream)?.requestId;
  }

  /**
   * Registers a stream the child opened (a fetch or a binding call) on behalf of request `parent`.
   * One refused or failed while starting has already ended (endSubrequest ran inside `start`):
   * registering its sink then would keep it until the instance dies, one entry per refusal.
   */
  #openSubstream(id: number, parent: number, start: () => SubrequestSink): void {
    this.#subrequestParents.set(id, parent);
    const sink = start();
    if (this.#subrequestParents.has(id)) this.#subrequests.set(id, sink);
  }

  /** Removes a finished subrequest. */
  endSubrequest(id: number): void {
    this.#subrequests.delete(id);
    this.#subrequestParents.delete(id);
  }

  #onExit(outcome: ExitOutcome): void {
    this.state = 'dead';
    this.#channel?.close();
    this.#loaded?.reject(
      Object.assign(new Error('the instance exited while loading its script'), {
        // Killed by the daemon (a startup limit) or out of heap: the script's doing. Any other death
        // (a signal from outside) need not be.
        failure: { kind: outcome.killed || outcome.memoryExceeded ? 'ScriptError' : 'Died', message: describeExit(outcome), line: null, column: null },
      }),
    );
    this.#loaded = null;
    const exchanges = this.#exchanges.values();
    this.#exchanges.clear();
    for (const sub of this.#subrequests.values()) sub.onAbort('the instance exited');
    this.#subrequests.clear();
    this.#subrequestParents.clear();
    for (const exchange of exchanges) exchange.onInstanceDied(outcome);
    this.#drained?.();
    this.#events.exit(this, outcome);
  }
}

export function describeExit(outcome: ExitOutcome): string {
  if (outcome.signal) return `the instance was killed by ${outcome.signal}`;
  return `the instance exited with code ${outcome.exitCode}`;
}

/**
 * What a child's own count of a request's CPU is worth: no more than the CPU limit it ran
 * under, so a forged count buys nothing more; 0 when it said nothing usable.
 */
export function childCpuWorth(childCpuMs: number | null, limitMs: number): number {
  return childCpuMs !== null && Number.isFinite(childCpuMs) && childCpuMs > 0 ? Math.min(childCpuMs, limitMs) : 0;
}

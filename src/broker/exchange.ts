/**
 * One client request served by one instance: streams the request body to the
 * child, writes the child's response to the client, and maps every way it
 * can fail to a clear status. Created by the broker, driven by frames.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { createBrotliCompress, createDeflate, createGzip } from 'node:zlib';
import type { HandlerErrorMessage, ResponseHeadMessage, SettledMessage, WebSocketCloseMessage } from '../../protocol/messages.js';
import type { Limits } from '../limits.js';
import type { Logger } from '../log.js';
import { describeExit, type Exchange, type ExitOutcome, type Instance } from '../pool/instance.js';
import { MAX_DATA_FRAME_BYTES, STREAM_WINDOW_BYTES } from '../../protocol/messages.js';
import { pumpReadable, WritableSink, type BodyPump } from './body.js';
import { bodyTooLargeReason, cutResponse, memoryReason, REQUEST_ID_HEADER, sendErrorResponse } from './outcome.js';
import { responseHeadProblem } from './response-head.js';
import { acceptWebSocket, WebSocketBridge, type UpgradeRequest } from './websocket-bridge.js';

/** Longest handler error message passed to the client (the runner clips at 1024 characters plus a note). */
const MAX_HANDLER_MESSAGE_CHARS = 2048;

/** Hop-by-hop headers describe one connection; the daemon's connection is not the tenant's. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

export interface ExchangeContext {
  worker: string;
  requestId: string;
  log: Logger;
  limits: Limits;
  /** Maps a bundled worker's stack frames back to its sources. */
  rewriteStack?: (text: string) => string;
  /** The client's response is over (sent, cut or failed). */
  onDone(exchange: HttpExchange): void;
  /**
   * The request is over for the child too: its waitUntil work settled (Settled, with the CPU the
   * child counted for it), or it never will (failed, instance gone: `childCpuMs` null). Once per request.
   */
  onAccount(exchange: HttpExchange, childCpuMs: number | null): void;
  /** The request got 504: its handler may still be running on `instance`, which should be replaced. */
  onWallTimeout(instance: Instance): void;
  /** The worker answered with a WebSocket, now open (the exchange lasts until it closes). */
  onWebSocket(): void;
}

let serials = 0;

export class HttpExchange implements Exchange {
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  /** The connection, when the client asked for a WebSocket (the worker may answer with one). */
  readonly #upgrade: UpgradeRequest | null;
  #webSocket: WebSocketBridge | null = null;
  readonly #ctx: ExchangeContext;
  /** Its key in the broker's table of requests in flight. */
  readonly serial = ++serials;
  readonly startedAt = performance.now();
  #instance: Instance | null = null;
  #id = 0;
  #upload: BodyPump | null = null;
  #sink: WritableSink | null = null;
  #compressor: Writable | null = null;
  #headSent = false;
  #finished = false;
  /** The accounting line: not yet (the response runs), waiting for the child's Settled, or written. */
  #accounting: 'pending' | 'awaitingSettle' | 'written' = 'pending';
  /** The child's CPU count, when its Settled came before the response was over. */
  #earlyChildCpuMs: number | null = null;
  /** See #contentLengthToHold. */
  #bodyBytesDue: number | null = null;
  #bodyBytesSent = 0;
  #wallTimer: NodeJS.Timeout | null = null;
  status = 0;
  /** From the start to the end of the client's response (for a WebSocket, to its close). */
  wallMs = 0;
  /** For a WebSocket: from the start to its 101. */
  handshakeMs = 0;
  cpuMs = 0;
  cpuBaseMs = 0;
  subrequests = 0;
  kvOperations = 0;

  constructor(req: IncomingMessage, res: ServerResponse, upgrade: UpgradeRequest | null, ctx: ExchangeContext) {
    this.#req = req;
    this.#res = res;
    this.#upgrade = upgrade;
    this.#ctx = ctx;
    res.on('close', () => {
      // The client went away before the response was complete: stop the child's work on it.
      if (!res.writableFinished && this.#instance && !this.#finished) {
        this.#instance.sendAbort(this.#id, 'the client disconnected');
        this.#finished = true;
        // Left running, it would fire wallMs later and recycle a healthy instance.
        this.#clearWallTimer();
        this.#upload?.stop();
        // Otherwise the broker counts it in flight forever and every drain waits out its timeout.
        this.#done(true);
      }
    });
  }

  get requestId(): string {
    return this.#ctx.requestId;
  }

  get instanceId(): string | undefined {
    return this.#instance?.id;
  }

  get instance(): Instance | null {
    return this.#instance;
  }

  /** Answered with a WebSocket (the exchange lasts until it closed). */
  get isWebSocket(): boolean {
    return this.#webSocket !== null;
  }

  /** Starts the request on `instance`: head first, then the body as it arrives. */
  start(instance: Instance, url: string, hasBody: boolean): void {
    this.#instance = instance;
    const { wallMs } = this.#ctx.limits;
    this.#wallTimer = setTimeout(() => {
      this.fail(504, `Worker "${this.#ctx.worker}" did not respond within ${wallMs} ms (--wall-ms).`);
      this.#ctx.onWallTimeout(instance);
    }, wallMs);
    const headers: Array<[string, string]> = [];
    const raw = this.#req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) headers.push([raw[i]!, raw[i + 1]!]);
    this.#id = instance.dispatch({ method: this.#req.method ?? 'GET', url, headers, hasBody }, this);
    if (hasBody) {
      this.#upload = pumpReadable(this.#req, instance, this.#id, this.#ctx.limits.requestBodyBytes, () =>
        this.fail(413, bodyTooLargeReason(this.#ctx.limits.requestBodyBytes)),
      );
    }
  }

  onHead(head: ResponseHeadMessage, whole?: Uint8Array): void {
    if (this.#finished) return;
    this.#clearWallTimer();
    if (head.status === 101 && !whole) {
      this.#acceptWebSocket(head);
      return;
    }
    const problem = responseHeadProblem(head, this.#ctx.limits.responseHeaderBytes) ?? (whole ? wholeBodyProblem(head, whole) : null);
    if (problem) {
      this.fail(500, `The worker returned a response the daemon cannot send: ${problem}.`);
      return;
    }
    const flat: string[] = [];
    let encoding: string | null = null;
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) continue;
      if (lower === 'content-encoding') encoding = value.trim().toLowerCase();
      flat.push(name, value);
    }
    const compressor = head.hasBody ? compressorFor(encoding) : null;
    if (compressor) {
      removeHeader(flat, 'content-length');
    } else if (head.bodyLength !== null) {
      // The child knows the exact size: say so instead of chunking (and never trust a tenant's own figure).
      removeHeader(flat, 'content-length');
      flat.push('content-length', String(head.bodyLength));
    }
    this.#bodyBytesDue = this.#contentLengthToHold(flat, head);
    try {
      this.#res.writeHead(head.status, head.statusText || undefined, flat);
    } catch (error) {
      this.fail(500, `The worker returned a response the daemon cannot send: ${(error as Error).message}`);
      return;
    }
    this.status = head.status;
    this.#headSent = true;
    if (!head.hasBody) {
      this.#finish();
      return;
    }
    if (whole) {
      // Hot path: the body came with the head, its length checked above and sent as Content-Length.
      if (compressor) {
        compressor.pipe(this.#res);
        this.#compressor = compressor;
      }
      this.#bodyBytesSent = whole.byteLength;
      this.#finish(whole);
      return;
    }
    if (compressor) {
      // As on Workers: a body whose Content-Encoding names a compression is compressed on the way out.
      compressor.pipe(this.#res);
      this.#compressor = compressor;
      this.#sink = new WritableSink(compressor, this.#instance!, this.#id, this.#onFlowViolation);
    } else {
      this.#sink = new WritableSink(this.#res, this.#instance!, this.#id, this.#onFlowViolation);
    }
  }

  /** The worker answered with a WebSocket: the client's connection becomes one (websocket-bridge.ts). */
  #acceptWebSocket(head: ResponseHeadMessage): void {
    if (!this.#upgrade) {
      this.fail(500, 'The worker returned a WebSocket (status 101) to a request that did not ask for one: a worker should check for an `Upgrade: websocket` header first.');
      return;
    }
    const problem = responseHeadProblem({ ...head, status: 200 }, this.#ctx.limits.responseHeaderBytes);
    if (problem) {
      this.fail(500, `The worker returned a response the daemon cannot send: ${problem}.`);
      return;
    }
    // The connection is the WebSocket's now; the HTTP response on it never gets written.
    this.#res.detachSocket(this.#upgrade.socket as Socket);
    this.status = 101;
    this.#headSent = true;
    this.handshakeMs = performance.now() - this.startedAt;
    const ws = acceptWebSocket(this.#req, this.#upgrade, head.headers);
    if (!ws) {
      // ws refused the handshake after all: it answered 400 and closed the connection.
      this.#finished = true;
      this.#instance?.sendWebSocketClose(this.#id, 1006, '');
      this.#done(true);
      return;
    }
    this.#webSocket = new WebSocketBridge(this.#instance!, this.#id, ws, {
      // The CPU limit counts afresh for the worker's handling of each message, as for a request.
      onMessage: () => (this.cpuBaseMs = this.cpuMs),
      onClose: () => {
        if (this.#finished) return;
        this.#finished = true;
        // The child ends the request once it hears the close, and says Settled after its waitUntil work.
        this.#done(true);
      },
      onViolation: (reason) => this.onAbort(reason),
    });
    this.#ctx.onWebSocket();
  }

  /** The daemon shuts down: an open WebSocket is closed with 1001 (its request ends when the close completes). */
  goAway(reason: string): void {
    if (!this.#finished) this.#webSocket?.close(1001, reason);
  }

  onWebSocketMessage(binary: boolean, data: Uint8Array): void {
    this.#webSocket?.send(binary, data);
  }

  onWebSocketClose(message: WebSocketCloseMessage): void {
    this.#webSocket?.close(message.code, String(message.reason));
  }

  onData(chunk: Uint8Array): void {
    if (this.#webSocket) return this.#bodyOnWebSocket();
    if (!this.#sink) return;
    const due = this.#bodyBytesDue;
    if (due !== null && this.#bodyBytesSent + chunk.byteLength > due) {
      this.#instance?.sendAbort(this.#id, 'the response body is longer than its Content-Length');
      this.onAbort(`the response body is longer than the ${due} bytes its Content-Length header promised`);
      return;
    }
    this.#bodyBytesSent += chunk.byteLength;
    this.#sink.write(chunk);
  }

  /**
   * The Content-Length the client is told, which the body is then held to; null when there is
   * none (chunked) or no body goes out (HEAD, 204, 304). Bytes past it would be read by a
   * keep-alive client as the next response: a tenant returning a stream with
   * `content-length: 5` and more behind it smuggled a whole response of its own into the
   * connection (test/hostile/content-length-mismatch.test.ts). A body with no bytes to send
   * (null) keeps no Content-Length, or the client would wait for bytes that never come.
   */
  #contentLengthToHold(flat: string[], head: ResponseHeadMessage): number | null {
    const noBodySent = this.#req.method === 'HEAD' || head.status === 204 || head.status === 304;
    let declared: string | null = null;
    for (let i = 0; i < flat.length; i += 2) if (flat[i]!.toLowerCase() === 'content-length') declared = flat[i + 1]!;
    if (declared === null || noBodySent) return null;
    // undici joins repeated headers with ", ": anything but one decimal number cannot be honoured.
    if (!head.hasBody || !/^\d{1,15}$/.test(declared.trim())) {
      removeHeader(flat, 'content-length');
      return null;
    }
    return Number(declared.trim());
  }

  /**
   * A 101's stream carries WebSocket frames, never a body: a runner that sends one is not the
   * runtime's (a forged 101 head, its Response's body behind it). Ended as the response would
   * have been, the socket stayed open with nobody behind it and out of --max-websockets' count.
   */
  #bodyOnWebSocket(): void {
    if (this.#finished) return;
    this.#instance?.sendAbort(this.#id, 'a response body on a WebSocket');
    this.onAbort('the instance sent a response body after its 101: a WebSocket carries none');
  }

  /** The child sent more body than it had credit for: it ignores flow control, and the client's socket would buffer it all. */
  readonly #onFlowViolation = (): void => {
    this.#instance?.sendAbort(this.#id, 'the response body overran its flow-control window');
    this.onAbort(`the instance sent more of the response body than its flow-control window allows (${STREAM_WINDOW_BYTES} bytes unacknowledged)`);
  };

  onEnd(): void {
    if (this.#webSocket) return this.#bodyOnWebSocket();
    const due = this.#bodyBytesDue;
    if (due !== null && this.#bodyBytesSent < due && !this.#finished) {
      this.onAbort(`the response body ended after ${this.#bodyBytesSent} of the ${due} bytes its Content-Length header promised`);
      return;
    }
    this.#finish();
  }

  onAbort(reason: string): void {
    if (this.#finished) return;
    this.#ctx.log.warn(this.#webSocket ? 'WebSocket closed with 1011' : 'response body failed mid-stream', { worker: this.#ctx.worker, requestId: this.requestId, reason });
    this.#finished = true;
    this.#clearWallTimer();
    if (this.#webSocket) this.#webSocket.close(1011, reason);
    else cutResponse(this.#res);
    this.#done(true);
  }

  onHandlerError(error: HandlerErrorMessage): void {
    this.#ctx.log.error('worker threw an exception', {
      worker: this.#ctx.worker,
      requestId: this.requestId,
      instance: this.#instance?.id,
      error: error.message,
      stack: error.stack ? (this.#ctx.rewriteStack?.(error.stack) ?? error.stack) : undefined,
    });
    if (error.neverSettles) {
      this.fail(500, `Worker "${this.#ctx.worker}": ${error.message}`, false);
      return;
    }
    const note = error.passThrough
      ? ' (the handler called passThroughOnException(), but edgeproc has no origin to pass the request to)'
      : '';
    // The runner bounds the message; a child that does not is still not let past this.
    this.fail(500, `Worker threw exception: ${String(error.message).slice(0, MAX_HANDLER_MESSAGE_CHARS)}${note}`, false);
  }

  onWindow(bytes: number): void {
    if (this.#webSocket) this.#webSocket.onWindow(bytes);
    else this.#upload?.window.grant(bytes);
  }

  onSettled(message: SettledMessage): void {
    // The child ends a WebSocket's request once the socket has closed: one still open has no one behind it.
    if (this.#webSocket && !this.#finished) this.onAbort('the request ended in the instance while its WebSocket was still open');
    // The client's response may have finished long before: waitUntil work ran after it.
    if (this.#finished) this.#account(message.cpuMs);
    else this.#earlyChildCpuMs = message.cpuMs;
  }

  onInstanceDied(outcome: ExitOutcome): void {
    this.#upload?.stop();
    if (outcome.memoryExceeded) {
      this.#ctx.log.warn('limit exceeded', { worker: this.#ctx.worker, requestId: this.requestId, instance: this.#instance?.id, limit: 'memoryMb', max: this.#ctx.limits.memoryMb });
      this.fail(503, memoryReason(this.#ctx.worker, 'its V8 heap ran out', this.#ctx.limits.memoryMb), false);
      return;
    }
    this.#ctx.log.error('instance died with a request in flight', {
      worker: this.#ctx.worker,
      requestId: this.requestId,
      instance: this.#instance?.id,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
    });
    this.fail(502, `The worker's instance stopped while handling this request (${describeExit(outcome)}). Retry; a new instance will serve it.`);
  }

  /** Ends the exchange with an error status (or cuts the response if its head already went out). */
  fail(status: number, reason: string, log = true): void {
    if (this.#finished) {
      // The instance ended it after the response (killed, or failing every request on it): no Settled will come.
      if (this.#accounting === 'awaitingSettle') this.#account(null);
      return;
    }
    this.#finished = true;
    this.#clearWallTimer();
    this.#upload?.stop();
    if (this.#instance && this.#id && !this.#headSent) this.#instance.sendAbort(this.#id, reason);
    if (log) this.#ctx.log.warn(reason, { worker: this.#ctx.worker, requestId: this.requestId, status });
    this.status = this.#headSent ? this.status : status;
    // A WebSocket's client is told in its close frame (1011: the server failed), in as much of the reason as fits.
    if (this.#webSocket) this.#webSocket.close(1011, reason);
    else sendErrorResponse(this.#res, status, reason, this.requestId);
    this.#done(false);
  }

  #clearWallTimer(): void {
    if (this.#wallTimer) clearTimeout(this.#wallTimer);
    this.#wallTimer = null;
  }

  /** The response is complete; `last` is the body of a one-frame response, written with the end. */
  #finish(last?: Uint8Array): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#clearWallTimer();
    (this.#compressor ?? this.#res).end(last);
    this.#done(true);
  }

  /**
   * The response is over. `awaitSettle`: the child still has the request (its handler answered,
   * or was told the client left) and will say Settled once its waitUntil work is over, or die;
   * a failed request is accounted now, since what the child does with it no longer counts.
   */
  #done(awaitSettle: boolean): void {
    this.wallMs = performance.now() - this.startedAt;
    this.#ctx.onDone(this);
    if (this.#earlyChildCpuMs !== null) this.#account(this.#earlyChildCpuMs);
    else if (awaitSettle && this.#instance) this.#accounting = 'awaitingSettle';
    else this.#account(null);
  }

  #account(childCpuMs: number | null): void {
    if (this.#accounting === 'written') return;
    this.#accounting = 'written';
    this.#ctx.onAccount(this, childCpuMs);
  }
}

/**
 * A whole-response frame must carry exactly the body its head announces, and no more than one
 * DATA frame could: it takes no flow-control credit, so a subverted runner must not use it to
 * push a body past the window, nor to send bytes past the Content-Length the client is told.
 */
function wholeBodyProblem(head: ResponseHeadMessage, whole: Uint8Array): string | null {
  if (!head.hasBody || head.bodyLength !== whole.byteLength) {
    return `its body of ${whole.byteLength} bytes does not match the length its head gave (${String(head.bodyLength)})`;
  }
  if (whole.byteLength > MAX_DATA_FRAME_BYTES) return `a whole-response frame of ${whole.byteLength} bytes, over the ${MAX_DATA_FRAME_BYTES} one frame may carry`;
  return null;
}

function compressorFor(encoding: string | null) {
  switch (encoding) {
    case 'gzip':
      return createGzip();
    case 'deflate':
      return createDeflate();
    case 'br':
      return createBrotliCompress();
    default:
      return null;
  }
}

function removeHeader(flat: string[], name: string): void {
  for (let i = flat.length - 2; i >= 0; i -= 2) {
    if (flat[i]!.toLowerCase() === name) flat.splice(i, 2);
  }
}

export { REQUEST_ID_HEADER };

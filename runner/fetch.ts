/**
 * The tenant's `fetch`: validates the request as the Fetch standard says (by
 * building a Request), then hands it to the daemon as a subrequest, which
 * performs it, counts it and applies egress policy. Bodies stream both ways
 * with flow control like any other body.
 */
import { FrameType, type SubrequestHeadMessage, type SubresponseHeadMessage } from '../protocol/messages.js';
import { IncomingBody, OutgoingBody } from './body.js';
import type { Channel } from './ipc.js';
import { Request, requestBodyLength, Response, signalOf } from './web.js';
import { remoteEnd, type WebSocketArrival } from './websocket.js';
import { routeArrival, WebSocketLink, type WebSocketRoute } from './websocket-link.js';

/** The runner's record of one subrequest, found by stream id when frames arrive. */
export interface SubrequestStream {
  /** Stream id of the request that made it; its body is cancelled when that request settles. */
  parent: number;
  incoming: IncomingBody;
  outgoing: OutgoingBody | WebSocketLink | null;
  /** A WebSocket the server accepted: where its messages and close go. */
  webSocket?: WebSocketRoute;
  /** What that WebSocket's server sent before `webSocket` was made (runtime.ts): delivered to it first. */
  early?: WebSocketArrival[];
  /** Takes the stream's head: a SubresponseHead for a fetch, a BindingResult for a binding call. */
  resolve: (head: never) => void;
  reject: (error: Error) => void;
}

export interface SubrequestHost {
  channel: Channel;
  /** A fresh even stream id, shared by fetch and binding calls. */
  nextStreamId(): number;
  /** Stream id of the request being served now (0 outside a request). */
  currentRequest(): number;
  /** Whether that request is still in flight: its handler or its waitUntil work is running. */
  isInFlight(stream: number): boolean;
  register(id: number, stream: SubrequestStream): void;
  unregister(id: number): void;
}

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);

/**
 * Opens a fresh even stream for a fetch or a binding call on behalf of request `parent`: registers
 * it, sends `headType` with `head`, and streams `body` after it. `answer` settles with the
 * daemon's head (SubresponseHead or BindingResult), or rejects (SubrequestFailed, the request ended).
 */
export function openSubstream<Answer>(
  host: SubrequestHost,
  parent: number,
  headType: FrameType,
  head: object,
  body: ReadableStream<Uint8Array> | null,
): { id: number; stream: SubrequestStream; answer: Promise<Answer> } {
  const { channel } = host;
  const id = host.nextStreamId();
  let stream!: SubrequestStream;
  const outgoing = body ? new OutgoingBody(channel, id) : null;
  const answer = new Promise<Answer>((resolve, reject) => {
    stream = { parent, incoming: new IncomingBody(channel, id), outgoing, resolve, reject };
  });
  host.register(id, stream);
  channel.sendJson(headType, id, head);
  // A failed upload is reported by the daemon (SubrequestFailed, or the call's error); nothing to add here.
  if (outgoing && body) outgoing.pump(body).catch(() => {});
  return { id, stream, answer };
}

export function createFetch(host: SubrequestHost): typeof globalThis.fetch {
  return async function fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const request = new Request(input, init);
    // Undefined when the request follows no signal: it can never abort, and making one costs.
    const signal = signalOf(request);
    if (signal?.aborted) throw signal.reason;
    const { protocol } = new URL(request.url);
    if (protocol !== 'http:' && protocol !== 'https:') {
      throw new TypeError(`fetch: ${protocol} URLs are not supported, only http: and https:`);
    }
    // As on Workers, a subrequest belongs to a request in flight. Code that outlived its request
    // (a timer set before the response, waitUntil work past --wait-until-ms, a MessagePort or
    // FinalizationRegistry callback) or runs at global scope has none: the daemon counts
    // subrequests per request, and these were counted against nothing
    // (test/hostile/fetch-after-response.test.ts).
    const parent = host.currentRequest();
    if (!host.isInFlight(parent)) {
      throw new TypeError(
        'fetch: no request is in flight here (the request this code ran for has finished, or this is the global scope); a worker fetches only while handling a request or its waitUntil work',
      );
    }
    const upgrade = request.headers.get('upgrade')?.trim().toLowerCase() === 'websocket';
    const message: SubrequestHeadMessage = {
      parent,
      method: request.method,
      url: request.url,
      headers: [...request.headers],
      hasBody: request.body !== null,
      contentLength: requestBodyLength(request),
      redirect: request.redirect as SubrequestHeadMessage['redirect'],
    };
    const { id, stream, answer: head } = openSubstream<SubresponseHeadMessage>(host, parent, FrameType.SubrequestHead, message, request.body);
    const { channel } = host;
    signal?.addEventListener(
      'abort',
      () => {
        channel.sendJson(FrameType.Abort, id, { reason: 'the subrequest was aborted' });
        stream.reject(signal.reason ?? new DOMException('The operation was aborted', 'AbortError'));
        stream.incoming.onAbort('the subrequest was aborted');
      },
      { once: true },
    );
    try {
      const responseHead = await head;
      if (responseHead.status === 101 && upgrade) return acceptedWebSocket(host, id, stream, responseHead);
      const hasBody = responseHead.hasBody && !NULL_BODY_STATUS.has(responseHead.status);
      if (!hasBody) host.unregister(id);
      const response = new Response(hasBody ? stream.incoming.stream : null, {
        status: responseHead.status,
        statusText: responseHead.statusText,
        headers: responseHead.headers,
      });
      // A fetched response knows where it came from; Response's constructor cannot set these.
      Object.defineProperties(response, {
        url: { value: responseHead.url, enumerable: true },
        redirected: { value: responseHead.redirected, enumerable: true },
      });
      return response;
    } catch (error) {
      host.unregister(id);
      throw error;
    }
  };
}

/**
 * The server accepted the WebSocket the worker asked for: the Response's `webSocket` is the
 * worker's end (to accept() before use), its messages crossing on the subrequest's stream, which
 * stays open until the socket has closed or the worker's request ends.
 */
function acceptedWebSocket(host: SubrequestHost, id: number, stream: SubrequestStream, head: SubresponseHeadMessage): Response {
  const link = new WebSocketLink(host.channel, id);
  const { socket, arrive } = remoteEnd(link);
  stream.outgoing = link;
  stream.webSocket = { link, arrive };
  for (const arrival of stream.early?.splice(0) ?? []) routeArrival(stream.webSocket, arrival);
  link.start();
  void link.closed.then(() => host.unregister(id));
  const response = new Response(null, { status: 101, statusText: head.statusText, headers: head.headers, webSocket: socket } as ResponseInit);
  Object.defineProperties(response, {
    url: { value: head.url, enumerable: true },
    redirected: { value: false, enumerable: true },
  });
  return response;
}

/**
 * Tenant `fetch`, carried out by the daemon with undici: the one place where
 * subrequests are performed, so they can be counted and policed. The upload
 * streams from the child, the response streams back, both flow-controlled.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { dispatchFetch, type SubresponseSink } from './dispatch-fetch.js';
import { SendWindow } from '../../protocol/flow.js';
import { FrameType, type SubrequestHeadMessage } from '../../protocol/messages.js';
import type { Limits } from '../limits.js';
import type { Logger } from '../log.js';
import type { Instance, SubrequestSink } from '../pool/instance.js';
import { DROPPED_STREAM, FrameSource, streamSink } from './body.js';
import { EgressDeniedError, type EgressPolicy } from './egress.js';
import { egressConnector } from './egress-connector.js';
import { WebSocketBridge } from './websocket-bridge.js';
import { asksForWebSocket, openOutboundWebSocket } from './websocket-client.js';

/** How long the start-up warm-up fetch may take (Outbound.warmUp). */
const WARM_UP_TIMEOUT_MS = 5_000;

export class Outbound {
  readonly #log: Logger;
  readonly #dispatcher: Agent;
  readonly #egress: EgressPolicy;
  #count = 0;

  readonly #limits: Limits;

  constructor(log: Logger, limits: Limits, egress: EgressPolicy) {
    this.#log = log;
    this.#limits = limits;
    this.#egress = egress;
    // Every connection, redirects included, goes through the egress policy.
    this.#dispatcher = new Agent({ connections: 128, keepAliveTimeout: 10_000, connect: egressConnector(egress) });
  }

  get count(): number {
    return this.#count;
  }

  perform(instance: Instance, id: number, head: SubrequestHeadMessage): SubrequestSink {
    this.#count++;
    const parent = instance.exchange(head.parent);
    const { subrequests } = instance.limits ?? this.#limits;
    if (!parent) {
      // The runner sends no fetch outside a request (it rejects it itself); one that names no
      // request in flight comes from a subverted runner and would be counted against nothing.
      instance.sendJson(FrameType.SubrequestFailed, id, {
        message: `fetch to ${head.url} denied: it names no request in flight; a worker fetches only while handling a request or its waitUntil work`,
      });
      instance.endSubrequest(id);
      this.#log.warn('subrequest refused: no request in flight', { worker: instance.worker ?? undefined, parent: head.parent });
      return DROPPED_STREAM;
    }
    if (++parent.subrequests > subrequests) {
      // As on Workers, the fetch rejects inside the tenant, which may catch it.
      instance.sendJson(FrameType.SubrequestFailed, id, {
        message: `Too many subrequests: this request already made ${subrequests}; the limit is ${subrequests} per request (--subrequests).`,
      });
      instance.endSubrequest(id);
      this.#log.warn('limit exceeded', {
        worker: instance.worker ?? undefined,
        requestId: parent.requestId,
        limit: 'subrequests',
        value: parent.subrequests,
        max: subrequests,
      });
      return DROPPED_STREAM;
    }
    // undici would also serve data: and blob: without a connection to police; the runner sends only
    // http: and https:, so anything else comes from a subverted one.
    const badScheme = this.#egress.checkScheme(head.url);
    if (badScheme) {
      this.#deny(instance, id, head, `fetch to ${head.url} denied: ${badScheme}`, { reason: 'scheme' });
      return DROPPED_STREAM;
    }
    if (asksForWebSocket(head.headers)) return this.#openWebSocket(instance, id, head);
    const upload = head.hasBody ? new FrameSource(instance, id) : null;
    const window = new SendWindow();
    const abort = dispatchFetch(
      this.#dispatcher,
      {
        url: head.url,
        method: head.method,
        headers: head.headers,
        redirect: head.redirect,
        body: upload,
        // A subverted child's nonsense is dropped (a wrong number only fails its own fetch: undici checks the bytes).
        contentLength: upload && Number.isSafeInteger(head.contentLength) && head.contentLength! >= 0 ? head.contentLength : null,
      },
      window,
      this.#sinkFor(instance, id, head),
    );
    // Aborted by the child (the tenant cancelled, or its request ended): nothing failed, and
    // after this the sink hears nothing more.
    return streamSink(upload, window, (reason) => {
      abort(new Error(reason));
      instance.endSubrequest(id);
    });
  }

  /** The subresponse's way to the child: its head, its body as DATA frames, or why it failed. */
  #sinkFor(instance: Instance, id: number, head: SubrequestHeadMessage): SubresponseSink {
    return {
      head: (message) => {
        instance.sendJson(FrameType.SubresponseHead, id, message);
        if (!message.hasBody) instance.endSubrequest(id);
      },
      data: (chunk) => instance.sendData(id, chunk),
      end: () => {
        instance.sendEnd(id);
        instance.endSubrequest(id);
      },
      error: (error, afterHead) => {
        const cause = error instanceof EgressDeniedError ? error : (error as Error & { cause?: unknown }).cause;
        if (cause instanceof EgressDeniedError) {
          this.#deny(instance, id, head, cause.messageFor(head.url), { destination: cause.origin, reason: cause.denial.reason });
          return;
        }
        if (afterHead) {
          instance.sendAbort(id, `the response body of ${head.url} failed: ${error.message}`);
          this.#log.warn('subrequest body failed', { worker: instance.worker ?? undefined, url: head.url });
        } else {
          instance.sendJson(FrameType.SubrequestFailed, id, { message: `fetch ${head.url} failed: ${error.message}` });
        }
        instance.endSubrequest(id);
      },
    };
  }

  /**
   * A WebSocket the worker opens: the subrequest's stream carries its messages once the server
   * answered 101 (websocket-bridge.ts), and ends when it closes or the worker's request ends.
   */
  #openWebSocket(instance: Instance, id: number, head: SubrequestHeadMessage): SubrequestSink {
    let bridge: WebSocketBridge | null = null;
    const abandon = openOutboundWebSocket(this.#egress, head, {
      open: (ws, subresponse) => {
        instance.sendJson(FrameType.SubresponseHead, id, subresponse);
        bridge = new WebSocketBridge(instance, id, ws, {
          // As for the client's messages: the CPU limit counts afresh for the handling of each (a
          // relay of a server's feed would otherwise run out after some thousands of messages).
          onMessage: () => {
            const parent = instance.exchange(head.parent);
            if (parent) parent.cpuBaseMs = parent.cpuMs;
          },
          onClose: () => instance.endSubrequest(id),
          onViolation: (reason) => {
            instance.sendAbort(id, reason);
            instance.endSubrequest(id);
            this.#log.warn('subrequest WebSocket closed', { worker: instance.worker ?? undefined, url: head.url, reason });
          },
        });
      },
      refused: (subresponse, body) => {
        instance.sendJson(FrameType.SubresponseHead, id, subresponse);
        if (subresponse.hasBody) {
          instance.sendData(id, body);
          instance.sendEnd(id);
        }
        instance.endSubrequest(id);
      },
      error: (error) => this.#sinkFor(instance, id, head).error(error, false),
    });
    return {
      onData: () => {},
      onEnd: () => {},
      onWindow: (bytes) => bridge?.onWindow(bytes),
      // The worker's request ended (or it gave up): the socket goes with it.
      onAbort: () => {
        if (bridge) bridge.close(1001, 'the worker that opened this WebSocket has finished');
        else abandon();
        instance.endSubrequest(id);
      },
      onWebSocketMessage: (binary, data) => bridge?.send(binary, data),
      onWebSocketClose: ({ code, reason }) => bridge?.close(code, String(reason)),
    };
  }

  /** A subrequest the egress policy refused: rejects inside the tenant (which may catch it) and says so in the log. */
  #deny(instance: Instance, id: number, head: SubrequestHeadMessage, message: string, fields: Record<string, string>): void {
    instance.sendJson(FrameType.SubrequestFailed, id, { message });
    instance.endSubrequest(id);
    this.#log.warn('egress denied', {
      worker: instance.worker ?? undefined,
      requestId: instance.exchange(head.parent)?.requestId,
      url: head.url,
      ...fields,
      message,
    });
  }

  /**
   * One exchange through the outbound path to a throwaway loopback server, at the daemon's start:
   * the first tenant fetch otherwise paid for undici's first use (its HTTP parser, WebAssembly
   * compiled on the first connection) and this path's, ~40 ms of that fetch's latency. Its own
   * agent, outside the egress policy: it reaches only the server made for it. A failure only
   * leaves the first fetch slower.
   */
  async warmUp(): Promise<void> {
    const server = createServer((_request, response) => response.end('warm'));
    const agent = new Agent({ connections: 1 });
    try {
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      await new Promise<void>((resolve, reject) => {
        // Bounded: the daemon's close waits for this.
        const timer = setTimeout(() => abort(new Error('the warm-up fetch took too long')), WARM_UP_TIMEOUT_MS);
        const done = (error?: Error) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        };
        const abort = dispatchFetch(agent, { url, method: 'GET', headers: [], redirect: 'follow', body: null, contentLength: null }, new SendWindow(), {
          head: () => {},
          data: () => {},
          end: () => done(),
          error: (error) => done(error),
        });
      });
    } finally {
      await agent.close();
      server.close();
    }
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }
}

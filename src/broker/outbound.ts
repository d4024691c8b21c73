/**
 * Tenant `fetch`, carried out by the daemon with undici: the one place where
 * subrequests are performed, so they can be counted and policed. The upload
 * streams from the child, the response streams back, both flow-controlled.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetch as undiciFetch, Agent } from 'undici';
import { SendWindow } from '../../protocol/flow.js';
import { FrameType, type SubrequestHeadMessage, type SubresponseHeadMessage } from '../../protocol/messages.js';
import type { Limits } from '../limits.js';
import type { Logger } from '../log.js';
import type { Instance, SubrequestSink } from '../pool/instance.js';
import { DROPPED_STREAM, FrameSource, pumpWebStream, streamSink } from './body.js';
import { EgressDeniedError, type EgressPolicy } from './egress.js';
import { egressConnector } from './egress-connector.js';

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);
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
      this.#log.warn('subrequest refused: no request in flight', { worker: instance.worker ?? undefined, parent: head.parent });
      return DROPPED_STREAM;
    }
    if (++parent.subrequests > subrequests) {
      // As on Workers, the fetch rejects inside the tenant, which may catch it.
      instance.sendJson(FrameType.SubrequestFailed, id, {
        message: `Too many subrequests: this request already made ${subrequests}; the limit is ${subrequests} per request (--subrequests).`,
      });
      this.#log.warn('limit exceeded', {
        worker: instance.worker ?? undefined,
        requestId: parent.requestId,
        limit: 'subrequests',
        value: parent.subrequests,
        max: subrequests,
      });
      return DROPPED_STREAM;
    }
    const upload = head.hasBody ? new FrameSource(instance, id) : null;
    const window = new SendWindow();
    const controller = new AbortController();
    void this.#run(instance, id, head, upload, window, controller.signal);
    return streamSink(upload, window, (reason) => controller.abort(new Error(reason)));
  }

  async #run(
    instance: Instance,
    id: number,
    head: SubrequestHeadMessage,
    upload: FrameSource | null,
    window: SendWindow,
    signal: AbortSignal,
  ): Promise<void> {
    // undici's fetch also serves data: and blob: itself, without a connection to police.
    const badScheme = this.#egress.checkScheme(head.url);
    if (badScheme) {
      this.#deny(instance, id, head, `fetch to ${head.url} denied: ${badScheme}`, { reason: 'scheme' });
      return;
    }
    let response: Response;
    try {
      response = (await undiciFetch(head.url, {
        method: head.method,
        headers: head.headers,
        body: upload ?? undefined,
        duplex: 'half',
        redirect: head.redirect,
        signal,
        dispatcher: this.#dispatcher,
      } as never)) as unknown as Response;
    } catch (error) {
      const cause = (error as Error & { cause?: Error }).cause;
      if (cause instanceof EgressDeniedError) {
        this.#deny(instance, id, head, cause.messageFor(head.url), { destination: cause.origin, reason: cause.denial.reason });
        return;
      }
      const reason = cause?.message ?? (error as Error).message;
      instance.sendJson(FrameType.SubrequestFailed, id, { message: `fetch ${head.url} failed: ${reason}` });
      instance.endSubrequest(id);
      return;
    }
    const hasBody = response.body !== null && !NULL_BODY_STATUS.has(response.status);
    const message: SubresponseHeadMessage = {
      status: response.status,
      statusText: response.statusText,
      headers: [...response.headers],
      hasBody,
      url: response.url,
      redirected: response.redirected,
    };
    instance.sendJson(FrameType.SubresponseHead, id, message);
    if (!hasBody) {
      instance.endSubrequest(id);
      return;
    }
    try {
      await pumpWebStream(response.body!, instance, id, window);
    } catch (error) {
      // Aborted by the child (the tenant cancelled, or its request ended): nothing failed.
      if (signal.aborted) return;
      instance.sendAbort(id, `the response body of ${head.url} failed: ${(error as Error).message}`);
      this.#log.warn('subrequest body failed', { worker: instance.worker ?? undefined, url: head.url });
    } finally {
      instance.endSubrequest(id);
    }
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
   * One fetch through undici to a throwaway loopback server, at the daemon's start: the first
   * tenant fetch otherwise paid for undici's first use (its HTTP parser, WebAssembly compiled
   * on the first connection, and fetch's own code), ~40 ms of that fetch's latency. Its own
   * agent, outside the egress policy: it reaches only the server made for it. A failure only
   * leaves the first fetch slower.
   */
  async warmUp(): Promise<void> {
    const server = createServer((_request, response) => response.end('warm'));
    const agent = new Agent({ connections: 1 });
    try {
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
      // Bounded: the daemon's close waits for this.
      const signal = AbortSignal.timeout(WARM_UP_TIMEOUT_MS);
      const response = await undiciFetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { dispatcher: agent, signal });
      await response.arrayBuffer();
    } finally {
      await agent.close();
      server.close();
    }
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }
}

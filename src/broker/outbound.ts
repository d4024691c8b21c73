/**
 * Tenant `fetch`, carried out by the daemon with undici: the one place where
 * subrequests are performed, so they can be counted and policed. The upload
 * streams from the child, the response streams back, both flow-controlled.
 */
import { fetch as undiciFetch, Agent } from 'undici';
import { SendWindow } from '../../protocol/flow.js';
import { FrameType, type SubrequestHeadMessage, type SubresponseHeadMessage } from '../../protocol/messages.js';
import type { Limits } from '../limits.js';
import type { Logger } from '../log.js';
import type { Instance, SubrequestSink } from '../pool/instance.js';
import { FrameSource, pumpWebStream } from './body.js';

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);

export class Outbound {
  readonly #log: Logger;
  readonly #dispatcher = new Agent({ connections: 128, keepAliveTimeout: 10_000 });
  #count = 0;

  readonly #limits: Limits;

  constructor(log: Logger, limits: Limits) {
    this.#log = log;
    this.#limits = limits;
  }

  get count(): number {
    return this.#count;
  }

  perform(instance: Instance, id: number, head: SubrequestHeadMessage): SubrequestSink {
    this.#count++;
    const parent = instance.exchange(head.parent);
    const { subrequests } = instance.limits ?? this.#limits;
    if (parent && ++parent.subrequests > subrequests) {
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
      return { onData() {}, onEnd() {}, onAbort() {}, onWindow() {} };
    }
    const upload = head.hasBody ? new FrameSource(instance, id) : null;
    const window = new SendWindow();
    const controller = new AbortController();
    void this.#run(instance, id, head, upload, window, controller.signal);
    return {
      onData: (chunk) => upload?.push(chunk.slice()),
      onEnd: () => upload?.end(),
      onAbort: (reason) => {
        upload?.fail(new Error(reason));
        window.fail(new Error(reason));
        controller.abort(new Error(reason));
      },
      onWindow: (bytes) => window.grant(bytes),
    };
  }

  async #run(
    instance: Instance,
    id: number,
    head: SubrequestHeadMessage,
    upload: FrameSource | null,
    window: SendWindow,
    signal: AbortSignal,
  ): Promise<void> {
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

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }
}

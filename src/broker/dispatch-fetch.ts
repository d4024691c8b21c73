/**
 * A tenant's fetch, carried out on undici's dispatcher with the Fetch standard's network
 * semantics: redirects (follow, manual, error), transparent decoding of the response body,
 * the request headers fetch adds, and the final URL. undici's own `fetch` does the same for
 * ~165 µs of CPU per exchange on this host, against ~30 for a bare dispatch (a bare process,
 * 16 at a time against a loopback origin): most of it builds WHATWG Request, Response, Headers,
 * AbortSignal and ReadableStream objects that the daemon never hands to anyone, since the
 * tenant's objects live in its child. Here the response head and body go straight from undici's
 * callbacks to a sink, paced by the child's flow-control window (`npm run bench -- proxy`).
 *
 * Only http: and https: reach this (outbound.ts checks the scheme; the child refuses others).
 */
import { Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import type { Dispatcher } from 'undici';
import type { SendWindow } from '../../protocol/flow.js';
import type { HeaderList, SubrequestHeadMessage, SubresponseHeadMessage } from '../../protocol/messages.js';

/** Where the response goes: the head once, then (if it has a body) the body's chunks and its end, or an error. */
export interface SubresponseSink {
  head(message: SubresponseHeadMessage): void;
  data(chunk: Uint8Array): void;
  end(): void;
  /** The exchange failed: before `head` the tenant's fetch rejects, after it its body does. */
  error(error: Error, afterHead: boolean): void;
}

export interface FetchRequest {
  url: string;
  method: string;
  headers: HeaderList;
  redirect: SubrequestHeadMessage['redirect'];
  /**
   * The tenant's body, streamed from the child. Sent again after a 307 or 308 only when it is
   * short and of known length (ReplayableBody); a stream cannot follow one.
   */
  body: AsyncIterable<Uint8Array> | null;
  /** Its length, when the tenant's fetch knew it: sent as Content-Length instead of chunked. */
  contentLength: number | null;
}

/** Why an exchange failed in a way fetch itself defines (the tenant sees the message in its TypeError). */
class FetchNetworkError extends Error {}

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
/** As the Fetch standard's redirect limit. */
const MAX_REDIRECTS = 20;
/** As undici's fetch: more codings than this is a resource-exhaustion attempt, not a real response. */
const MAX_CONTENT_CODINGS = 5;
/** Dropped with the body when a redirect turns the request into a GET (Fetch's request-body-header names). */
const BODY_HEADERS = new Set(['content-encoding', 'content-language', 'content-location', 'content-type', 'content-length']);
/**
 * The longest body of known length kept while it is sent, so that a redirect can send it again as
 * fetch does for a body it has whole: JSON and form posts, without holding megabytes per upload
 * for as long as an origin takes to answer.
 */
const REPLAYABLE_BYTES = 64 * 1024;
/** Not sent to another origin after a redirect. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);
const noop = (): void => {};

/**
 * Starts the exchange; returns its abort (the tenant aborted, or its request ended), after which
 * the sink hears nothing more.
 */
export function dispatchFetch(dispatcher: Dispatcher, request: FetchRequest, window: SendWindow, sink: SubresponseSink): (reason: Error) => void {
  const exchange = new FetchExchange(dispatcher, request, window, sink);
  exchange.send();
  return (reason) => exchange.abort(reason);
}

class FetchExchange {
  readonly #dispatcher: Dispatcher;
  readonly #window: SendWindow;
  readonly #sink: SubresponseSink;
  readonly #redirectMode: FetchRequest['redirect'];
  #url: URL;
  #method: string;
  #headers: HeaderList;
  #body: AsyncIterable<Uint8Array> | null;
  #contentLength: number | null;
  #redirects = 0;
  #controller: Dispatcher.DispatchController | null = null;
  #headSent = false;
  #done = false;
  #decoder: Decoder | null = null;
  /** Waiting for the child to grant credit (one waiter at a time: SendWindow keeps one). */
  #waitingForCredit = false;

  constructor(dispatcher: Dispatcher, request: FetchRequest, window: SendWindow, sink: SubresponseSink) {
    this.#dispatcher = dispatcher;
    this.#window = window;
    this.#sink = sink;
    this.#redirectMode = request.redirect;
    this.#url = new URL(request.url);
    this.#method = request.method;
    this.#headers = request.headers;
    this.#contentLength = request.contentLength;
    this.#body =
      request.body && request.contentLength !== null && request.contentLength <= REPLAYABLE_BYTES ? new ReplayableBody(request.body) : request.body;
  }

  send(): void {
    const url = this.#url;
    // A bare `?` is part of what the tenant asked for, though URL's search drops it.
    const query = url.search || (withoutFragment(url).endsWith('?') ? '?' : '');
    // Set when this hop's answer is a redirect to follow: its own body is read and dropped (so its
    // connection is kept), and the next hop starts once it has ended.
    let redirect: { status: number; location: string } | null = null;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (controller) => {
        if (this.#done) controller.abort(new Error('aborted'));
        else this.#controller = controller;
      },
      onResponseStart: (controller, status, headers, statusText) => {
        if (this.#done || status < 200) return;
        const location = REDIRECT_STATUS.has(status) ? headers.location : undefined;
        if (location !== undefined && this.#redirectMode !== 'manual') {
          if (this.#redirectMode === 'error') return this.#fail(new FetchNetworkError(`the origin redirected (${status}) and the request's redirect mode is 'error'`));
          redirect = { status, location: typeof location === 'string' ? location : location.join(', ') };
          return;
        }
        this.#head(status, statusText ?? '', headerList(headers), headers['content-encoding']);
      },
      onResponseData: (controller, chunk) => {
        if (redirect || this.#done) return;
        if (!this.#decoder) return this.#forward(chunk, controller);
        const { input } = this.#decoder;
        if (!input.write(chunk)) {
          controller.pause();
          input.once('drain', () => controller.resume());
        }
      },
      onResponseEnd: () => {
        if (this.#done) return;
        if (redirect) this.#redirect(redirect.status, redirect.location);
        else if (this.#decoder) this.#decoder.input.end();
        else this.#finish();
      },
      onResponseError: (_controller, error) => this.#fail(error),
    };
    const headers = requestHeaders(this.#headers, this.#method, this.#body === null ? null : this.#contentLength, this.#body !== null, url);
    this.#dispatcher.dispatch({ origin: url.origin, path: url.pathname + query, method: this.#method, headers, body: this.#body as never }, handler);
  }

  abort(reason: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller?.abort(reason);
    this.#discardDecoder();
  }

  #head(status: number, statusText: string, headers: HeaderList, encoding: string | string[] | undefined): void {
    const hasBody = this.#method !== 'HEAD' && !NULL_BODY_STATUS.has(status);
    if (hasBody && typeof encoding === 'string') {
      const decoder = decoderFor(encoding);
      if (decoder instanceof Error) return this.#fail(decoder);
      if (decoder) this.#decode(decoder);
    }
    this.#headSent = true;
    // Without a body the head is all the sink hears; what the origin still sends is dropped.
    if (!hasBody) this.#done = true;
    this.#sink.head({ status, statusText, headers, hasBody, url: withoutFragment(this.#url), redirected: this.#redirects > 0 });
  }

  #decode(decoder: Decoder): void {
    this.#decoder = decoder;
    const { output } = decoder;
    output.on('data', (chunk: Buffer) => {
      if (!this.#done) this.#forward(chunk, output);
    });
    output.once('end', () => this.#finish());
    output.once('error', (error) => {
      this.#controller?.abort(error);
      this.#fail(error);
    });
  }

  /** A body chunk to the sink; `source` (undici's controller, or the decoder) waits while the child has no credit. */
  #forward(chunk: Uint8Array, source: { pause(): void; resume(): void }): void {
    this.#window.spend(chunk.byteLength);
    this.#sink.data(chunk);
    if (this.#window.credit <= 0) {
      source.pause();
      this.#whenCredit(() => source.resume());
    }
  }

  #whenCredit(resume: () => void): void {
    if (this.#waitingForCredit) return;
    const ready = this.#window.ready();
    if (!ready) return resume();
    this.#waitingForCredit = true;
    // A failed window is the child's abort, which abort() handles.
    ready.then(() => {
      this.#waitingForCredit = false;
      if (!this.#done) resume();
    }, noop);
  }

  /** Fetch's HTTP-redirect fetch, for the modes that follow. */
  #redirect(status: number, location: string): void {
    let next: URL;
    try {
      next = new URL(location, this.#url);
    } catch {
      return this.#fail(new FetchNetworkError(`the origin redirected to ${JSON.stringify(location)}, which is not a URL`));
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      return this.#fail(new FetchNetworkError(`the origin redirected to ${next.protocol} (${next.href}); only http: and https: are fetched`));
    }
    if (++this.#redirects > MAX_REDIRECTS) return this.#fail(new FetchNetworkError(`redirect count exceeded (more than ${MAX_REDIRECTS})`));
    if (this.#body !== null && status !== 303 && !(this.#body instanceof ReplayableBody)) {
      return this.#fail(
        new FetchNetworkError(
          `the origin redirected (${status}) a request whose body was streamed and cannot be sent again (only a body of known length up to ${REPLAYABLE_BYTES / 1024} KiB is); fetch with redirect: 'manual' to handle the redirect yourself`,
        ),
      );
    }
    let headers = this.#headers;
    if (((status === 301 || status === 302) && this.#method === 'POST') || (status === 303 && this.#method !== 'GET' && this.#method !== 'HEAD')) {
      this.#method = 'GET';
      this.#body = null;
      this.#contentLength = null;
      headers = headers.filter(([name]) => !BODY_HEADERS.has(name));
    }
    if (next.origin !== this.#url.origin) headers = headers.filter(([name]) => !CREDENTIAL_HEADERS.has(name));
    this.#headers = headers;
    this.#url = next;
    this.#controller = null;
    this.send();
  }

  #discardDecoder(): void {
    this.#decoder?.input.destroy();
    this.#decoder?.output.destroy();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#sink.end();
  }

  #fail(error: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#discardDecoder();
    this.#sink.error(error, this.#headSent);
  }
}

/** A URL as fetch reports a response's: without its fragment. */
function withoutFragment({ href, hash }: URL): string {
  return hash ? href.slice(0, -hash.length) : href;
}

/**
 * A body kept as it goes out, so that every pass over it (the first request, then each redirect
 * that keeps the body) starts from its first byte: what was kept, then the rest as the child
 * sends it. One read of the source at a time, shared by the passes, keeps the chunks in order
 * should undici abandon a pass while a read is pending.
 */
class ReplayableBody implements AsyncIterable<Uint8Array> {
  readonly #source: AsyncIterator<Uint8Array>;
  readonly #chunks: Uint8Array[] = [];
  #ended = false;
  #reading: Promise<void> | null = null;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#source = source[Symbol.asyncIterator]();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (let at = 0; ; at++) {
      while (at >= this.#chunks.length) {
        if (this.#ended) return;
        await (this.#reading ??= this.#read());
      }
      yield this.#chunks[at]!;
    }
  }

  async #read(): Promise<void> {
    const { done, value } = await this.#source.next();
    if (done) this.#ended = true;
    else this.#chunks.push(value);
    this.#reading = null;
  }
}

/** undici's parsed headers (names lower-cased, repeats as arrays) as the list a Headers takes. */
function headerList(headers: Record<string, string | string[] | undefined>): HeaderList {
  const list: HeaderList = [];
  for (const name in headers) {
    const value = headers[name];
    if (typeof value === 'string') list.push([name, value]);
    else if (value) for (const each of value) list.push([name, each]);
  }
  return list;
}

/**
 * The tenant's headers as undici's flat list, with what fetch adds when the tenant did not set
 * it: `accept`, `user-agent` and an `accept-encoding` this module can decode, the body's
 * `content-length` when its length is known (else undici sends it chunked), and a zero one on
 * a POST or PUT without a body. `host` is undici's to set (fetch drops a
 * tenant's). fetch's browser-only additions (`sec-fetch-mode`, `accept-language: *`) are not
 * sent: Workers does not send them either.
 */
function requestHeaders(headers: HeaderList, method: string, bodyLength: number | null, hasBody: boolean, url: URL): string[] {
  const flat: string[] = [];
  let accept = false;
  let userAgent = false;
  let acceptEncoding = false;
  let range = false;
  let contentLength = false;
  for (const [name, value] of headers) {
    switch (name) {
      case 'host':
        continue;
      case 'accept':
        accept = true;
        break;
      case 'user-agent':
        userAgent = true;
        break;
      case 'accept-encoding':
        acceptEncoding = true;
        break;
      case 'range':
        range = true;
        break;
      case 'content-length':
        contentLength = true;
        break;
    }
    flat.push(name, value);
  }
  if (!accept) flat.push('accept', '*/*');
  if (!userAgent) flat.push('user-agent', 'undici');
  // A range is of the encoded bytes; asking for an encoding would move it.
  if (!acceptEncoding) flat.push('accept-encoding', range ? 'identity' : url.protocol === 'https:' ? 'br, gzip, deflate' : 'gzip, deflate');
  if (!contentLength && bodyLength !== null) flat.push('content-length', String(bodyLength));
  else if (!hasBody && !contentLength && (method === 'POST' || method === 'PUT')) flat.push('content-length', '0');
  return flat;
}

/**
 * The decoder for a response's Content-Encoding (codings applied in order, so undone in reverse),
 * null when there is nothing to undo or a coding is unknown (the body then goes as it came, as
 * fetch does), an Error past MAX_CONTENT_CODINGS.
 */
function decoderFor(contentEncoding: string): Decoder | Error | null {
  const codings = contentEncoding.toLowerCase().split(',');
  if (codings.length > MAX_CONTENT_CODINGS) {
    return new FetchNetworkError(`too many content-encodings in the response: ${codings.length}, at most ${MAX_CONTENT_CODINGS} are decoded`);
  }
  const decoders: Transform[] = [];
  for (let i = codings.length - 1; i >= 0; i--) {
    const coding = codings[i]!.trim();
    // Lenient flushing as curl and undici's fetch: servers send slightly truncated streams that clients accept.
    if (coding === 'gzip' || coding === 'x-gzip') decoders.push(zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }));
    else if (coding === 'deflate') decoders.push(new DeflateDecoder());
    else if (coding === 'br') decoders.push(zlib.createBrotliDecompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH }));
    else if (coding === 'identity' || coding === '') continue;
    else return null;
  }
  if (decoders.length === 0) return null;
  for (let i = 1; i < decoders.length; i++) {
    const next = decoders[i]!;
    decoders[i - 1]!.once('error', (error) => next.destroy(error)).pipe(next);
  }
  return { input: decoders[0]!, output: decoders[decoders.length - 1]! };
}

/** Encoded bytes are written to `input`, decoded ones read from `output` (the same stream for one coding). */
interface Decoder {
  input: Transform;
  output: Transform;
}

/**
 * `deflate` as servers send it: the zlib format the name means, or raw deflate, which some send
 * under the same name. The first byte tells them apart (as in undici's fetch and browsers).
 */
class DeflateDecoder extends Transform {
  #inflate: zlib.Inflate | zlib.InflateRaw | null = null;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.#inflate) {
      if (chunk.byteLength === 0) return callback();
      const options = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
      this.#inflate = (chunk[0]! & 0x0f) === 0x08 ? zlib.createInflate(options) : zlib.createInflateRaw(options);
      this.#inflate.on('data', (out: Buffer) => this.push(out));
      this.#inflate.once('error', (error) => this.destroy(error));
    }
    this.#inflate.write(chunk, callback);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.#inflate) return callback();
    this.#inflate.once('end', () => callback());
    this.#inflate.end();
  }
}

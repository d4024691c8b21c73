/**
 * Bodies crossing the channel, daemon side, each with flow control so that a
 * slow reader on either end bounds memory instead of growing it:
 *   - pumpReadable:  a Node Readable (client request body) → DATA frames;
 *   - WritableSink:  DATA frames → a Node Writable (the client response);
 *   - FrameSource:   DATA frames → an async iterable (a subrequest body for undici);
 *   - pumpWebStream: a web ReadableStream (a subresponse body) → DATA frames.
 */
import type { Readable, Writable } from 'node:stream';
import { ReceiveWindow, SendWindow } from '../../protocol/flow.js';
import { MAX_DATA_FRAME_BYTES, STREAM_WINDOW_BYTES } from '../../protocol/messages.js';
import type { Instance, SubrequestSink } from '../pool/instance.js';

export interface BodyPump {
  window: SendWindow;
  /** Stops sending (the stream was aborted). */
  stop(): void;
}

/** Sends a Node Readable as DATA frames, pausing it while the child has no credit left. */
export function pumpReadable(
  source: Readable,
  instance: Instance,
  id: number,
  maxBytes: number,
  onTooLarge: () => void,
): BodyPump {
  const window = new SendWindow();
  let sent = 0;
  let stopped = false;
  const onData = (chunk: Buffer) => {
    if (stopped) return;
    sent += chunk.byteLength;
    if (sent > maxBytes) {
      stop();
      instance.sendAbort(id, `the request body exceeded ${maxBytes} bytes`);
      onTooLarge();
      return;
    }
    instance.sendData(id, chunk);
    window.spend(chunk.byteLength);
    if (window.credit <= 0) source.pause();
  };
  const onEnd = () => {
    if (!stopped) instance.sendEnd(id);
    stopped = true;
  };
  const onAborted = () => {
    if (!stopped) instance.sendAbort(id, 'the client aborted the request body');
    stop();
  };
  const stop = () => {
    stopped = true;
    source.off('data', onData);
    source.off('end', onEnd);
  };
  source.on('data', onData);
  source.on('end', onEnd);
  source.on('error', onAborted);
  const grant = window.grant.bind(window);
  window.grant = (bytes: number) => {
    grant(bytes);
    if (!stopped && window.credit > 0 && source.isPaused()) source.resume();
  };
  return { window, stop };
}

/** Writes DATA frames to a Node Writable and returns credit to the child as the writable drains. */
export class WritableSink {
  readonly #target: Writable;
  readonly #instance: Instance;
  readonly #id: number;
  #unacknowledged = 0;
  #waitingForDrain = false;
  #bytes = 0;

  readonly #onViolation: () => void;
  #violated = false;

  /** `onViolation`: the child sent more than STREAM_WINDOW_BYTES unacknowledged; nothing more is written. */
  constructor(target: Writable, instance: Instance, id: number, onViolation: () => void) {
    this.#target = target;
    this.#instance = instance;
    this.#id = id;
    this.#onViolation = onViolation;
  }

  get bytes(): number {
    return this.#bytes;
  }

  // Hot path: every response body chunk.
  write(chunk: Uint8Array): void {
    if (this.#violated) return;
    this.#bytes += chunk.byteLength;
    this.#unacknowledged += chunk.byteLength;
    // Unacknowledged bytes are what the child may have in flight: past the window it ignores the
    // credit it was given (a subverted runner), and a slow client would make the daemon hold it all.
    if (this.#unacknowledged > STREAM_WINDOW_BYTES) {
      this.#violated = true;
      this.#onViolation();
      return;
    }
    if (!this.#target.write(chunk)) {
      // The client reads slower than the child writes: hold the credit until the socket drains.
      if (!this.#waitingForDrain) {
        this.#waitingForDrain = true;
        this.#target.once('drain', this.#onDrain);
      }
      return;
    }
    if (!this.#waitingForDrain && this.#unacknowledged >= STREAM_WINDOW_BYTES / 2) this.#acknowledge();
  }

  readonly #onDrain = (): void => {
    this.#waitingForDrain = false;
    this.#acknowledge();
  };

  #acknowledge(): void {
    if (this.#unacknowledged === 0) return;
    this.#instance.sendWindow(this.#id, this.#unacknowledged);
    this.#unacknowledged = 0;
  }
}

/** DATA frames → an async iterable, granting the child credit as the consumer pulls. */
export class FrameSource implements AsyncIterable<Uint8Array> {
  readonly #instance: Instance;
  readonly #id: number;
  readonly #queue: Uint8Array[] = [];
  readonly #window = new ReceiveWindow();
  #ended = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;
  /** Bytes received and not yet acknowledged: what the child has in flight. */
  #outstanding = 0;

  constructor(instance: Instance, id: number) {
    this.#instance = instance;
    this.#id = id;
  }

  push(chunk: Uint8Array): void {
    if (this.#error) return;
    // The child may have at most the window unacknowledged; past it, it ignores flow control and
    // the queue would grow without bound while the origin reads slowly.
    this.#outstanding += chunk.byteLength;
    if (this.#outstanding > STREAM_WINDOW_BYTES) {
      this.#queue.length = 0;
      this.fail(new Error(`the subrequest body overran its flow-control window (${STREAM_WINDOW_BYTES} bytes unacknowledged)`));
      return;
    }
    this.#queue.push(chunk);
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  fail(error: Error): void {
    this.#error = error;
    this.#notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const chunk = this.#queue.shift();
      if (chunk) {
        this.#acknowledge(this.#window.consumed(chunk.byteLength));
        yield chunk;
        continue;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return;
      this.#acknowledge(this.#window.flush());
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #acknowledge(bytes: number): void {
    if (bytes <= 0) return;
    this.#outstanding -= bytes;
    this.#instance.sendWindow(this.#id, bytes);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

/** Sends a web ReadableStream as DATA frames, no faster than the child grants credit. */
export async function pumpWebStream(
  body: ReadableStream<Uint8Array>,
  instance: Instance,
  id: number,
  window: SendWindow,
): Promise<void> {
  const reader = body.getReader();
  try {
    for (;;) {
      const wait = window.ready();
      if (wait) await wait;
      const { done, value } = await reader.read();
      if (done) break;
      window.spend(value.byteLength);
      instance.sendData(id, value);
    }
    instance.sendEnd(id);
  } catch (error) {
    reader.cancel(error).catch(() => {});
    throw error;
  }
}

/** Sends bytes held in memory (a KV value, a cached body) as DATA frames, no faster than the child grants credit. */
export async function pumpBytes(bytes: Uint8Array, instance: Instance, id: number, window: SendWindow): Promise<void> {
  for (let at = 0; at < bytes.byteLength; ) {
    const wait = window.ready();
    if (wait) await wait;
    const size = Math.min(MAX_DATA_FRAME_BYTES, window.credit, bytes.byteLength - at);
    window.spend(size);
    instance.sendData(id, bytes.subarray(at, at + size));
    at += size;
  }
  instance.sendEnd(id);
}

/**
 * Reads a body from the child into memory, up to `maxBytes`. Past that it keeps reading only
 * to count (the message to the tenant says how long its value was) and returns `bytes: null`.
 */
export async function collectBody(source: FrameSource, maxBytes: number): Promise<{ bytes: Buffer | null; length: number }> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of source) {
    length += chunk.byteLength;
    if (length <= maxBytes) chunks.push(chunk);
    else chunks.length = 0;
  }
  return { bytes: length <= maxBytes ? Buffer.concat(chunks, length) : null, length };
}

/** The sink of a stream the daemon refused: whatever the child still sends on it is dropped. */
export const DROPPED_STREAM: SubrequestSink = Object.freeze({ onData() {}, onEnd() {}, onAbort() {}, onWindow() {} });

/**
 * The sink of a subrequest or binding call: its body from the child goes to `upload`, credit for
 * the reply to `window`, and an Abort from the child fails both (then `onAbort`, for the caller's own).
 */
export function streamSink(upload: FrameSource | null, window: SendWindow, onAbort: (reason: string) => void = () => {}): SubrequestSink {
  return {
    onData: (chunk) => upload?.push(chunk.slice()),
    onEnd: () => upload?.end(),
    onAbort: (reason) => {
      upload?.fail(new Error(reason));
      window.fail(new Error(reason));
      onAbort(reason);
    },
    onWindow: (bytes) => window.grant(bytes),
  };
}

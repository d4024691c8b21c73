/**
 * Bodies crossing the channel, child side: an incoming body (request body,
 * subresponse body) becomes a ReadableStream fed by DATA frames; an outgoing
 * body (response body, subrequest body) is pumped from a ReadableStream into
 * DATA frames no faster than the daemon grants credit.
 */
import { FrameType } from '../protocol/messages.js';
import { ReceiveWindow, SendWindow } from '../protocol/flow.js';
import { messageOf } from './describe.js';
import type { Channel } from './ipc.js';

export class IncomingBody {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly #window = new ReceiveWindow();
  readonly #channel: Channel;
  readonly #id: number;
  /** Bytes enqueued that the consumer has not read yet. */
  #queuedBytes = 0;
  #done = false;

  constructor(channel: Channel, id: number) {
    this.#channel = channel;
    this.#id = id;
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        // Called when the consumer has drained the queue: everything queued was read.
        pull: () => this.#consumed(true),
        cancel: (reason) => {
          if (this.#done) return;
          this.#done = true;
          this.#channel.sendJson(FrameType.Abort, this.#id, { reason: String(reason ?? 'body cancelled') });
        },
      },
      { highWaterMark: 0 },
    );
  }

  /** The body ended, failed or was cancelled: no more bytes will arrive. */
  get finished(): boolean {
    return this.#done;
  }

  onData(payload: Uint8Array): void {
    if (this.#done) return;
    // Copy: the payload is a view into a socket buffer, and a chunk handed to the
    // tenant must own its ArrayBuffer.
    this.#controller.enqueue(payload.slice());
    this.#queuedBytes += payload.byteLength;
    // desiredSize stays at 0 when a waiting read took the chunk at once.
    if ((this.#controller.desiredSize ?? -1) >= 0) this.#consumed(false);
  }

  onEnd(): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller.close();
  }

  onAbort(reason: string): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller.error(new TypeError(reason));
  }

  /** Returns credit for what the consumer read: in half-window steps, or all of it when it waits for more. */
  #consumed(waiting: boolean): void {
    let ack = this.#window.consumed(this.#queuedBytes);
    this.#queuedBytes = 0;
    if (waiting) ack += this.#window.flush();
    if (ack > 0 && !this.#done) this.#channel.sendWindow(this.#id, ack);
  }
}

export class OutgoingBody {
  readonly window = new SendWindow();
  readonly #channel: Channel;
  readonly #id: number;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;

  constructor(channel: Channel, id: number) {
    this.#channel = channel;
    this.#id = id;
  }

  /**
   * Sends `body` on the stream. Resolves when the End frame is sent; rejects
   * (after sending Abort) when the body errors or is not made of bytes.
   */
  async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    return this.pumpFrom(body.getReader(), null);
  }

  /** As pump(), from a reader whose first read() (`first`) may already be under way. */
  async pumpFrom(reader: ReadableStreamDefaultReader<Uint8Array>, first: Promise<ReadableStreamReadResult<Uint8Array>> | null): Promise<void> {
    this.#reader = reader;
    let pending = first;
    try {
      for (;;) {
        const wait = this.window.ready();
        if (wait) await wait;
        const { done, value } = await (pending ?? reader.read());
        pending = null;
        if (done) break;
        const bytes = asBytes(value);
        // Never more than the credit, even for one chunk: a tenant's chunk can be any size, the
        // receiver buffers what it is sent, and the daemon treats bytes past the window as a
        // protocol violation (src/broker/body.ts).
        for (let at = 0; at < bytes.byteLength; ) {
          const more = this.window.ready();
          if (more) await more;
          const part = at === 0 && bytes.byteLength <= this.window.credit ? bytes : bytes.subarray(at, at + this.window.credit);
          this.window.spend(part.byteLength);
          this.#channel.sendData(this.#id, part);
          at += part.byteLength;
        }
      }
      this.#channel.sendEmpty(FrameType.End, this.#id);
    } catch (error) {
      // messageOf, not error.message: reading a tenant's error may throw, and then no Abort would
      // go out and the client would wait for the rest of the body for ever.
      this.#channel.sendJson(FrameType.Abort, this.#id, { reason: messageOf(error) });
      reader.cancel(error).catch(() => {});
      throw error;
    }
  }

  /** The receiver went away: stop reading and release the tenant's stream. */
  abort(reason: string): void {
    const error = new TypeError(reason);
    this.window.fail(error);
    this.#reader?.cancel(error).catch(() => {});
  }
}

function asBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError(
    `This ReadableStream did not return bytes: a body chunk was ${describe(value)}, expected a Uint8Array; encode strings with TextEncoder or TextEncoderStream`,
  );
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}

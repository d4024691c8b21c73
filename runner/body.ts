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
import { readsAtOnce, streamQueue, takeQueued, type StreamQueue } from './stream-queue.js';

/** Chunks kept in order, to be taken as one (joined only when there are several). */
class Chunks {
  #parts: Uint8Array[] = [];
  bytes = 0;

  push(chunk: Uint8Array): void {
    this.#parts.push(chunk);
    this.bytes += chunk.byteLength;
  }

  /** Everything kept, as one chunk; the list is empty after. Call only when bytes > 0. */
  take(): Uint8Array {
    const parts = this.#parts;
    const bytes = this.bytes;
    this.clear();
    return parts.length === 1 ? parts[0]! : joined(parts, bytes);
  }

  clear(): void {
    this.#parts = [];
    this.bytes = 0;
  }
}

export class IncomingBody {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly #window = new ReceiveWindow();
  readonly #channel: Channel;
  readonly #id: number;
  /**
   * Bytes that arrived while no read was waiting, copied out of the socket's buffer. The next
   * read gets them as one chunk: a stream of small frames (an origin's many small writes) that
   * a busy consumer falls behind costs it one call per read, not one per frame; a page of 20,000
   * links was 20,000 rewriter writes.
   */
  readonly #pending = new Chunks();
  /** A read is waiting and nothing was pending when it asked (the stream called pull). */
  #wanted = false;
  #done = false;

  constructor(channel: Channel, id: number) {
    this.#channel = channel;
    this.#id = id;
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        // Called when a read waits and the queue is empty (highWaterMark 0): everything delivered was read.
        pull: () => {
          if (this.#pending.bytes > 0) return this.#hand(this.#pending.take());
          this.#wanted = true;
          // The consumer waits for more: all it read goes back as credit now, not at the half window.
          const ack = this.#window.flush();
          if (ack > 0 && !this.#done) this.#channel.sendWindow(this.#id, ack);
        },
        cancel: (reason) => {
          this.#pending.clear();
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
    const chunk = payload.slice();
    // Hot path: a reader that keeps up gets each frame as it comes.
    if (this.#wanted) return this.#hand(chunk);
    this.#pending.push(chunk);
  }

  onEnd(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#pending.bytes > 0) this.#hand(this.#pending.take());
    this.#controller.close();
  }

  onAbort(reason: string): void {
    if (this.#done) return;
    this.#done = true;
    this.#pending.clear();
    this.#controller.error(new TypeError(reason));
  }

  /** `chunk` to the reader; its bytes count as read, returned as credit in half-window steps. */
  #hand(chunk: Uint8Array): void {
    this.#wanted = false;
    this.#controller.enqueue(chunk);
    const ack = this.#window.consumed(chunk.byteLength);
    if (ack > 0 && !this.#done) this.#channel.sendWindow(this.#id, ack);
  }
}

function joined(parts: readonly Uint8Array[], bytes: number): Uint8Array {
  const whole = new Uint8Array(bytes);
  let at = 0;
  for (const part of parts) {
    whole.set(part, at);
    at += part.byteLength;
  }
  return whole;
}

/**
 * Chunks smaller than this are held and leave together, as one DATA frame, when the turn that
 * read them ends (the channel writes a turn's frames at its end anyway) or this much is held.
 * A tenant enqueuing a page as thousands of small pieces sent a frame each, and the daemon wrote
 * each to the client as an HTTP chunk of its own.
 */
const HOLD_BELOW_BYTES = 16 * 1024;

export class OutgoingBody {
  readonly window = new SendWindow();
  readonly #channel: Channel;
  readonly #id: number;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  /** Small chunks read and not sent yet, in order; never more than the credit left. */
  readonly #held = new Chunks();
  #flushQueued = false;

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
    /** The stream's own queue (stream-queue.ts), looked up after the first read; null: not visible. */
    let queue: StreamQueue | null | undefined;
    /** Chunks taken from that queue in one go, sent before the next read. */
    let taken: readonly unknown[] = [];
    let next = 0;
    try {
      for (;;) {
        const wait = this.window.ready();
        if (wait) await wait;
        let value: unknown;
        if (next < taken.length) {
          value = taken[next++];
        } else {
          const read = await (pending ?? reader.read());
          pending = null;
          if (read.done) break;
          value = read.value;
          if (queue === undefined) queue = streamQueue(reader);
          if (queue) taken = takeQueued(queue);
          next = 0;
        }
        const bytes = asBytes(value);
        if (this.#held.bytes + bytes.byteLength < Math.min(HOLD_BELOW_BYTES, this.window.credit)) {
          this.#hold(bytes, next < taken.length || (queue != null && readsAtOnce(queue)));
          continue;
        }
        this.#sendHeld();
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
      this.#sendHeld();
      this.#channel.sendEmpty(FrameType.End, this.#id);
    } catch (error) {
      // What the tenant sent before its stream failed goes first, as it did unheld.
      this.#sendHeld();
      // messageOf, not error.message: reading a tenant's error may throw, and then no Abort would
      // go out and the client would wait for the rest of the body for ever.
      this.#channel.sendJson(FrameType.Abort, this.#id, { reason: messageOf(error) });
      reader.cancel(error).catch(() => {});
      throw error;
    }
  }

  /**
   * `more`: the next chunk, or the end, comes without waiting (the loop sends what is held then),
   * so no flush needs scheduling: a body of one chunk then its end costs no extra immediate.
   */
  #hold(bytes: Uint8Array, more: boolean): void {
    this.#held.push(bytes);
    if (more || this.#flushQueued) return;
    this.#flushQueued = true;
    setImmediate(this.#flushHeld);
  }

  readonly #flushHeld = (): void => {
    this.#flushQueued = false;
    this.#sendHeld();
  };

  #sendHeld(): void {
    if (this.#held.bytes === 0) return;
    const bytes = this.#held.take();
    this.window.spend(bytes.byteLength);
    this.#channel.sendData(this.#id, bytes);
  }

  /** The receiver went away: stop reading and release the tenant's stream. */
  abort(reason: string): void {
    this.#held.clear();
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

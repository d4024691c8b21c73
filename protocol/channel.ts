/**
 * One end of the frame channel, used by both the daemon and the child over
 * the socket pair of the child's fourth stdio slot.
 *
 * When to flush is a choice between syscalls and overlap (wrk -c32 on two
 * cores, hello world):
 *   - 'per-turn' corks writes until the event loop's check phase, so every
 *     frame made while handling one batch of input leaves in one writev. The
 *     child uses it: all the responses to one batch of requests go together.
 *   - 'immediate' writes each frame (a DATA header with its payload) at once.
 *     The daemon uses it: a request reaches the child while the daemon is
 *     still parsing the next ones, so both processes work at the same time.
 *     Batching on the daemon side too left one core idle while the other
 *     worked: 17-19k req/s against 21-23.5k.
 */
import type { Socket } from 'node:net';
import { FrameDecoder, type Frame, encodeHeader, encodeJsonBodyHeader, encodeJsonFrame, encodeSettledFrame, encodeWindowFrame } from './frames.js';
import { FrameType, MAX_DATA_FRAME_BYTES, type SettledMessage } from './messages.js';

export type FrameHandler = (frame: Frame) => void;
export type FlushPolicy = 'per-turn' | 'immediate';

export class FrameChannel {
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #onClose: (error?: Error) => void;
  readonly #immediate: boolean;
  #corked = false;
  #closed = false;
  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket.uncork();
  };

  constructor(socket: Socket, onFrame: FrameHandler, onClose: (error?: Error) => void, flush: FlushPolicy) {
    this.#socket = socket;
    this.#immediate = flush === 'immediate';
    this.#onClose = onClose;
    this.#decoder = new FrameDecoder(onFrame);
    socket.on('data', (chunk: Uint8Array) => {
      try {
        this.#decoder.push(chunk);
      } catch (error) {
        // A malformed frame means the peer is broken or hostile: drop the channel.
        this.#close(error as Error);
      }
    });
    socket.on('error', (error) => this.#close(error));
    socket.on('close', () => this.#close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  // Hot path: every frame sent goes through here.
  send(frame: Uint8Array): void {
    if (this.#closed) return;
    if (!this.#corked && !this.#immediate) {
      this.#corked = true;
      this.#socket.cork();
      setImmediate(this.#uncork);
    }
    this.#socket.write(frame);
  }

  /** Writes corked frames now instead of at the check phase, which a tenant that never yields never reaches. */
  flush(): void {
    if (this.#corked) this.#uncork();
  }

  sendJson(type: FrameType, stream: number, message: unknown): void {
    this.send(encodeJsonFrame(type, stream, message));
  }

  /** One frame holding `message` and then `body` (see FrameType.Response); the body is not copied. */
  sendJsonWithBody(type: FrameType, stream: number, message: unknown, body: Uint8Array): void {
    const pair = this.#immediate && !this.#closed;
    if (pair) this.#socket.cork();
    this.send(encodeJsonBodyHeader(type, stream, message, body.byteLength));
    if (body.byteLength > 0) this.send(body);
    if (pair) this.#socket.uncork();
  }

  sendSettled(stream: number, message: SettledMessage): void {
    this.send(encodeSettledFrame(stream, message));
  }

  sendEmpty(type: FrameType, stream: number): void {
    this.send(encodeHeader(type, stream, 0));
  }

  /** Sends body bytes on a stream, split into frames of at most MAX_DATA_FRAME_BYTES, without copying. */
  sendData(stream: number, chunk: Uint8Array): void {
    // In immediate mode, still one syscall for a header and its payload.
    const pair = this.#immediate && !this.#closed;
    if (pair) this.#socket.cork();
    for (let at = 0; at < chunk.byteLength; at += MAX_DATA_FRAME_BYTES) {
      const part = chunk.subarray(at, Math.min(at + MAX_DATA_FRAME_BYTES, chunk.byteLength));
      this.send(encodeHeader(FrameType.Data, stream, part.byteLength));
      this.send(part);
    }
    if (pair) this.#socket.uncork();
  }

  sendWindow(stream: number, bytes: number): void {
    this.send(encodeWindowFrame(FrameType.Window, stream, bytes));
  }

  close(): void {
    if (this.#closed) return;
    this.#socket.end();
    this.#close();
  }

  #close(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#onClose(error);
  }
}

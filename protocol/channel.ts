/**
 * One end of the frame channel, used by both the daemon and the child over
 * the socket pair of the child's fourth stdio slot.
 *
 * When to flush is a choice between syscalls and overlap (wrk -c32 on two
 * cores, hello world):
 *   - 'per-turn' corks writes until the event loop's check phase, so every
 *     frame made while handling one batch of input leaves in one writev. The
 *     child uses it: all the responses to one batch of requests go together.
 *   - 'batched' writes the first frame of a turn at once, then corks the
 *     rest until BATCH_FRAMES frames are waiting or the check phase. The
 *     daemon uses it: the first requests of a batch reach the child while the
 *     daemon is still parsing the next ones, so both processes work at the
 *     same time. Batching a whole turn left one core idle while the other
 *     worked: 17-19k req/s against 21-23.5k (Intel Xeon). Writing each frame
 *     at once cost one write(2) per request, ~2 µs of system time each on
 *     these VMs before the rest of Node's write path; see BATCH_FRAMES. The
 *     first frame does not wait because a lone request (the common case below
 *     saturation, and every cold start) would otherwise sit corked through the
 *     rest of its turn: the watchdog's baseline, the wall timer, the parser's
 *     own bookkeeping.
 */
import type { Socket } from 'node:net';
import { FrameDecoder, type Frame, encodeHeader, encodeJsonFrame, encodeSettledFrame, encodeTurnFrame, encodeWindowFrame } from './frames.js';
import type { IdTable } from './id-table.js';
import { encodeResponseHeader, encodeResponseHeadFrame } from './heads.js';
import { FrameType, MAX_DATA_FRAME_BYTES, type ResponseHeadMessage, type SettledMessage } from './messages.js';

export type FrameHandler = (frame: Frame) => void;
export type FlushPolicy = 'per-turn' | 'batched';

/**
 * Frames a 'batched' channel holds before writing them. In alternating runs (AMD EPYC,
 * wrk -c32) 8 against 1 gave a median 1.12× the requests a second over 8 pairs and 1.03×
 * over 6 more: within the host's noise (single pairs 0.72-1.73×). What it surely saves is
 * the syscalls: ~1 write(2) per request to the child became ~1 writev per 8.
 */
export const BATCH_FRAMES = 8;

export class FrameChannel {
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #onClose: (error?: Error) => void;
  readonly #batched: boolean;
  #corked = false;
  /** Frames written since the channel corked ('batched'). */
  #held = 0;
  #closed = false;
  /** Grows with every frame sent (a header and its payload may count once or twice). */
  #sent = 0;
  readonly #uncork = (): void => {
    // The check phase of a turn whose frames already left when BATCH_FRAMES were held.
    if (!this.#corked) return;
    this.#corked = false;
    this.#held = 0;
    this.#socket.uncork();
  };

  constructor(socket: Socket, onFrame: FrameHandler, onClose: (error?: Error) => void, flush: FlushPolicy) {
    this.#socket = socket;
    this.#batched = flush === 'batched';
    this.#onClose = onClose;
    this.#decoder = new FrameDecoder(onFrame);
    socket.on('data', (chunk: Uint8Array) => {
      // What an earlier phase of this loop iteration wrote (a response made in a timer's turn)
      // leaves before the input is handled: a handler that never yields would keep it corked,
      // and its request would be failed with the instance although it was answered.
      if (this.#corked && !this.#batched) this.#uncork();
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

  /** How many frames were sent so far: a sender can tell whether anything left since it last sent. */
  get sent(): number {
    return this.#sent;
  }

  // Hot path: every frame sent goes through here.
  send(frame: Uint8Array): void {
    if (this.#closed) return;
    this.#sent++;
    if (!this.#corked) {
      if (this.#batched) {
        this.#socket.write(frame);
        this.#corkTurn();
        return;
      }
      this.#corkTurn();
    }
    this.#socket.write(frame);
    if (this.#batched && ++this.#held >= BATCH_FRAMES) this.#uncork();
  }

  /** A frame's header and its payload leave together, even when BATCH_FRAMES is reached between them. */
  #sendPair(header: Uint8Array, payload: Uint8Array): void {
    if (!this.#batched || this.#closed) {
      this.send(header);
      if (payload.byteLength > 0) this.send(payload);
      return;
    }
    this.#sent++;
    if (!this.#corked) {
      // The first of a turn goes at once, as in send(), both parts in one writev.
      this.#socket.cork();
      this.#socket.write(header);
      if (payload.byteLength > 0) this.#socket.write(payload);
      this.#socket.uncork();
      this.#corkTurn();
      return;
    }
    // Hot path under load: corked for the turn already, so both parts wait together.
    this.#socket.write(header);
    if (payload.byteLength > 0) this.#socket.write(payload);
    this.#held += 2;
    if (this.#held >= BATCH_FRAMES) this.#uncork();
  }

  #corkTurn(): void {
    this.#corked = true;
    this.#socket.cork();
    setImmediate(this.#uncork);
  }

  /** Writes corked frames now instead of at the check phase, which a tenant that never yields never reaches. */
  flush(): void {
    if (this.#corked) this.#uncork();
  }

  sendJson(type: FrameType, stream: number, message: unknown): void {
    this.send(encodeJsonFrame(type, stream, message));
  }

  /** A whole response in one frame (see FrameType.Response): its head, then `body`, not copied. */
  sendResponse(stream: number, head: ResponseHeadMessage, body: Uint8Array): void {
    this.#sendPair(encodeResponseHeader(stream, head, body.byteLength), body);
  }

  sendResponseHead(stream: number, head: ResponseHeadMessage): void {
    this.send(encodeResponseHeadFrame(stream, head));
  }

  sendSettled(stream: number, message: SettledMessage): void {
    this.send(encodeSettledFrame(stream, message));
  }

  /** A Turn frame (FrameType.Turn) with the child's CPU count per request (microseconds). */
  sendTurn(stream: number, counts: IdTable<number>): void {
    this.send(encodeTurnFrame(stream, counts));
  }

  sendEmpty(type: FrameType, stream: number): void {
    this.send(encodeHeader(type, stream, 0));
  }

  /** Sends body bytes on a stream, split into frames of at most MAX_DATA_FRAME_BYTES, without copying. */
  sendData(stream: number, chunk: Uint8Array): void {
    for (let at = 0; at < chunk.byteLength; at += MAX_DATA_FRAME_BYTES) {
      const part = chunk.subarray(at, Math.min(at + MAX_DATA_FRAME_BYTES, chunk.byteLength));
      this.#sendPair(encodeHeader(FrameType.Data, stream, part.byteLength), part);
    }
  }

  /** One whole WebSocket message (FrameType.WebSocketText / WebSocketBinary), not copied. */
  sendWebSocketMessage(stream: number, binary: boolean, message: Uint8Array): void {
    this.sendBytes(binary ? FrameType.WebSocketBinary : FrameType.WebSocketText, stream, message);
  }

  /** One frame whose payload is `bytes`, not copied. */
  sendBytes(type: FrameType, stream: number, bytes: Uint8Array): void {
    this.#sendPair(encodeHeader(type, stream, bytes.byteLength), bytes);
  }

  sendWindow(stream: number, bytes: number): void {
    this.send(encodeWindowFrame(FrameType.Window, stream, bytes));
  }

  /**
   * Sends every frame still queued, then ends the socket and calls `done`. close() drops what
   * the socket has not taken yet, which is right for a peer that is going away; a side that
   * leaves on its own must not lose its last frames (a response body's tail, say).
   */
  end(done: () => void): void {
    if (this.#closed) return done();
    this.flush();
    this.#socket.end(done);
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

/**
 * The child's end of a WebSocket the worker returned in a 101 response: what the server end
 * sends goes to the daemon as WebSocketText / WebSocketBinary / WebSocketClose frames on the
 * request's stream, within the stream's flow-control window (the daemon returns credit as the
 * client's socket takes the bytes), so a worker that sends faster than its client reads keeps
 * the backlog in its own memory, under its own memory limit, never in the daemon's. Messages
 * from the client are delivered by the runtime and acknowledged once the tenant has them.
 */
import { SendWindow, ReceiveWindow } from '../protocol/flow.js';
import { FrameType } from '../protocol/messages.js';
import type { Channel } from './ipc.js';
import type { WebSocketArrival, WebSocketPeer } from './websocket.js';

/** Where the frames of a stream that carries a WebSocket go: what the worker sends leaves by `link`, what arrives goes to `arrive`. */
export interface WebSocketRoute {
  link: WebSocketLink;
  arrive: (arrival: WebSocketArrival) => void;
}

/** Hands what came from the daemon to the worker's end; a close also tells the link nothing more will come. */
export function routeArrival(route: WebSocketRoute, arrival: WebSocketArrival): void {
  route.arrive(arrival);
  if (arrival.close) route.link.heardClose();
}

type Outgoing = { binary: boolean; data: Uint8Array } | { code: number; reason: string };

export class WebSocketLink implements WebSocketPeer {
  readonly window = new SendWindow();
  readonly #received = new ReceiveWindow();
  readonly #channel: Channel;
  readonly #id: number;
  readonly #queue: Outgoing[] = [];
  /** Nothing leaves before the 101 head, which the runtime sends once the tenant's answer is checked. */
  #pumping = true;
  #closeSent = false;
  #gone = false;
  #resolveClosed!: () => void;
  /** Settles when both sides have closed (or the stream was aborted): the request is over. */
  readonly closed = new Promise<void>((resolve) => (this.#resolveClosed = resolve));

  constructor(channel: Channel, id: number) {
    this.#channel = channel;
    this.#id = id;
  }

  message(binary: boolean, data: Uint8Array): void {
    if (this.#gone || this.#closeSent) return;
    this.#queue.push({ binary, data });
    void this.#pump();
  }

  close(code: number, reason: string): void {
    if (this.#gone || this.#closeSent) return;
    this.#closeSent = true;
    this.#queue.push({ code, reason });
    void this.#pump();
  }

  /** The 101 head is sent: what the worker sent meanwhile follows it. */
  start(): void {
    this.#pumping = false;
    void this.#pump();
  }

  delivered(bytes: number): void {
    if (this.#gone) return;
    // In half-window steps: the daemon still has credit for the other half, and a chat of small
    // messages costs no WINDOW frame each.
    const ack = this.#received.consumed(bytes);
    if (ack > 0) this.#channel.sendWindow(this.#id, ack);
  }

  /** The client's close came (or the answer to the worker's): the daemon's socket is closed, nothing more crosses. */
  heardClose(): void {
    this.#resolveClosed();
  }

  /** The daemon ended the stream (the request failed there): nothing more is sent. */
  abort(reason: string): void {
    this.#gone = true;
    this.#queue.length = 0;
    this.window.fail(new TypeError(reason));
    this.#resolveClosed();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#gone) {
        const wait = this.window.ready();
        if (wait) await wait;
        const next = this.#queue.shift()!;
        if ('code' in next) {
          this.#channel.sendJson(FrameType.WebSocketClose, this.#id, { code: next.code, reason: next.reason });
          continue;
        }
        // A message is never split: it may take the window below zero, once, as it had credit when it started.
        this.window.spend(next.data.byteLength);
        this.#channel.sendWebSocketMessage(this.#id, next.binary, next.data);
      }
    } catch {
      // Aborted while waiting for credit: the queue was dropped with it.
    } finally {
      this.#pumping = false;
    }
  }
}

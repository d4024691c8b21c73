/**
 * Workers' server-side WebSockets: `new WebSocketPair()` gives two linked ends; the worker
 * calls `accept()` on one (the server end) and returns the other in
 * `new Response(null, { status: 101, webSocket: client })`. From then on the client end
 * belongs to the HTTP client: what the server end sends crosses to the daemon, which speaks
 * RFC 6455 to the client (src/broker/websocket-bridge.ts), and what the client sends arrives
 * here as message events. Until it is returned, a pair is local: each end's sends are the
 * other's messages.
 *
 * As on Workers: messages (and a close) that reach an end before its `accept()` wait for it;
 * `send()` before `accept()` or after `close()` throws; a message is a string (a text frame)
 * or an ArrayBuffer / view (binary), and a binary one arrives as an ArrayBuffer (or a Blob with
 * `binaryType = 'blob'`); a close from the peer is answered at once (the close event comes with
 * `readyState` CLOSED). A worker opens a WebSocket of its own with fetch() and an
 * `Upgrade: websocket` header (runner/fetch.ts), or with `new WebSocket(url)`, which does the same.
 */
import { MAX_WEBSOCKET_MESSAGE_BYTES } from '../protocol/messages.js';

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** The longest close reason a close frame carries (125 bytes of payload less the code). */
const MAX_CLOSE_REASON_BYTES = 123;

/** Where an end's sends go: the other end of a local pair, or the client (RemoteEnd, in the runtime). */
export interface WebSocketPeer {
  message(binary: boolean, data: Uint8Array): void;
  close(code: number, reason: string): void;
  /** A message this end was sent has been delivered to the tenant (flow-control credit for a remote peer). */
  delivered(bytes: number): void;
}

export type WebSocketArrival = { close: false; binary: boolean; data: Uint8Array } | { close: true; code: number; reason: string };

interface EndState {
  readyState: number;
  accepted: boolean;
  /**
   * Returned in a Response: it stands for the client now, and the worker may not use it. What
   * the other end sends reaches it here, a microtask late (localPeer), and goes on to the client.
   */
  given: WebSocketPeer | null;
  peer: WebSocketPeer | null;
  /** The pair's other end. */
  other: WebSocket | null;
  /** What arrived before accept(). */
  waiting: WebSocketArrival[];
  binaryType: 'arraybuffer' | 'blob';
  closeSent: boolean;
  handlers: Record<string, EventListener | null>;
  /** `new WebSocket(url)`: the end fetch() made, whose arrivals this one takes over. */
  forward: WebSocket | null;
  url: string | null;
  protocol: string;
}

/** How `new WebSocket(url)` connects: the runner's fetch with `Upgrade: websocket` (set by the runtime). */
let connect: ((url: string, protocols: string[]) => Promise<Response>) | null = null;
export function setWebSocketConnector(connector: (url: string, protocols: string[]) => Promise<Response>): void {
  connect = connector;
}

let stateOf: (socket: unknown) => EndState | null;
/** What the peer sent reaches `socket`: delivered now, or kept until accept(). Not a static: tenants see the class. */
let arrive: (socket: WebSocket, arrival: WebSocketArrival) => void;

export class CloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;

  constructor(type: string, init: { code?: number; reason?: string; wasClean?: boolean } = {}) {
    super(type);
    this.code = init.code ?? 0;
    this.reason = init.reason ?? '';
    this.wasClean = init.wasClean ?? false;
  }
}

export class WebSocket extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;

  readonly #state: EndState;

  static {
    stateOf = (socket) => (typeof socket === 'object' && socket !== null && #state in socket ? (socket as WebSocket).#state : null);
    arrive = (socket, arrival) => {
      const state = socket.#state;
      if (state.forward) return arrive(state.forward, arrival);
      if (state.given) {
        // Sent by the other end before the runtime took this one: delivered to the client in
        // order, after what it took from `waiting` (it was dropped here as arriving at a closed end).
        passOn(state.given, arrival);
        return;
      }
      if (state.readyState === CLOSED) return;
      if (!state.accepted) state.waiting.push(arrival);
      else socket.#deliver(arrival);
    };
  }

  /**
   * `new WebSocket(url, protocols)`: a client, connected through the daemon as fetch() with
   * `Upgrade: websocket` is; `open` once the server accepted, else `error` and `close` (1006).
   * WebSocketPair makes its ends with the runtime's own token instead of a URL.
   */
  constructor(url?: unknown, protocols?: string | string[]) {
    super();
    this.#state = {
      readyState: OPEN,
      accepted: false,
      given: null,
      peer: null,
      other: null,
      waiting: [],
      binaryType: 'arraybuffer',
      closeSent: false,
      handlers: {},
      forward: null,
      url: null,
      protocol: '',
    };
    if (url !== PAIR) this.#connect(String(url), protocols === undefined ? [] : typeof protocols === 'string' ? [protocols] : [...protocols].map(String));
  }

  #connect(url: string, protocols: string[]): void {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      throw new DOMException(`WebSocket: ${JSON.stringify(url)} is not a valid URL`, 'SyntaxError');
    }
    const scheme = { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' }[target.protocol];
    if (!scheme) throw new DOMException(`WebSocket: the URL's scheme must be ws: or wss:, not ${target.protocol}`, 'SyntaxError');
    if (target.hash) throw new DOMException('WebSocket: the URL may not have a fragment', 'SyntaxError');
    const state = this.#state;
    state.readyState = CONNECTING;
    state.url = target.href;
    target.protocol = scheme;
    const fail = () => {
      if (state.readyState === CLOSED) return;
      state.readyState = CLOSED;
      this.dispatchEvent(new Event('error'));
      this.dispatchEvent(new CloseEvent('close', { code: 1006, reason: '', wasClean: false }));
    };
    if (!connect) throw new TypeError('WebSocket: no connector (the runtime sets one)');
    connect(target.href, protocols).then((response) => {
      const end = stateOf((response as { webSocket?: unknown }).webSocket);
      if (response.status !== 101 || !end) {
        // The body of a refusal is not read: cancel it.
        response.body?.cancel().catch(() => {});
        return fail();
      }
      // This end takes over the one fetch() made: its sends, and what arrives at it.
      state.peer = end.peer;
      state.protocol = response.headers.get('sec-websocket-protocol') ?? '';
      end.forward = this;
      state.accepted = true;
      const waiting = end.waiting;
      end.waiting = [];
      if (state.closeSent) {
        // close() was called while connecting: the socket closes as soon as it is open.
        state.peer!.close(1000, '');
        return;
      }
      state.readyState = OPEN;
      this.dispatchEvent(new Event('open'));
      for (const arrival of waiting) this.#deliver(arrival);
    }, fail);
  }

  get readyState(): number {
    return this.#state.readyState;
  }

  get url(): string | null {
    return this.#state.url;
  }

  get protocol(): string | null {
    return this.#state.url === null ? null : this.#state.protocol;
  }

  get extensions(): string | null {
    return null;
  }

  get binaryType(): 'arraybuffer' | 'blob' {
    return this.#state.binaryType;
  }

  set binaryType(value: string) {
    if (value !== 'arraybuffer' && value !== 'blob') {
      throw new SyntaxError(`WebSocket: binaryType must be "arraybuffer" or "blob", not ${JSON.stringify(String(value))}`);
    }
    this.#state.binaryType = value;
  }

  /** Starts delivering events on this end: what arrived before comes first, in order. */
  accept(): void {
    const state = this.#usable('accept');
    if (state.accepted) return;
    state.accepted = true;
    const waiting = state.waiting;
    state.waiting = [];
    // Delivered after the caller's turn, as Workers does: the listeners are usually added after accept().
    if (waiting.length > 0) queueMicrotask(() => { for (const arrival of waiting) this.#deliver(arrival); });
  }

  send(message: string | ArrayBuffer | ArrayBufferView): void {
    const state = this.#usable('send');
    if (state.readyState === CONNECTING) throw new DOMException('WebSocket: still connecting; send() once its open event has fired', 'InvalidStateError');
    if (!state.accepted) throw new TypeError('WebSocket: you must call accept() on this WebSocket before sending messages.');
    if (state.closeSent || state.readyState === CLOSED) throw new TypeError("WebSocket: can't call send() after close().");
    let binary = true;
    let data: Uint8Array;
    if (typeof message === 'string') {
      binary = false;
      data = Buffer.from(message, 'utf8');
    } else if (message instanceof ArrayBuffer) {
      data = new Uint8Array(message.slice(0));
    } else if (ArrayBuffer.isView(message)) {
      // Copied: the tenant may reuse its buffer as soon as send() returns.
      data = new Uint8Array(message.buffer.slice(message.byteOffset, message.byteOffset + message.byteLength));
    } else {
      throw new TypeError('WebSocket: send() takes a string, an ArrayBuffer or an ArrayBufferView');
    }
    if (data.byteLength > MAX_WEBSOCKET_MESSAGE_BYTES) {
      throw new RangeError(`WebSocket: a message of ${data.byteLength} bytes is over the limit of ${MAX_WEBSOCKET_MESSAGE_BYTES} bytes (1 MiB), as on Workers`);
    }
    state.peer!.message(binary, data);
  }

  close(code?: number, reason?: string): void {
    const state = this.#usable('close');
    if (code !== undefined) {
      code = Number(code);
      if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
        throw new DOMException(`WebSocket: the close code must be 1000 or from 3000 to 4999, not ${code}`, 'InvalidAccessError');
      }
    }
    const text = reason === undefined ? '' : String(reason);
    if (Buffer.byteLength(text, 'utf8') > MAX_CLOSE_REASON_BYTES) {
      throw new DOMException(`WebSocket: a close reason takes at most ${MAX_CLOSE_REASON_BYTES} bytes of UTF-8`, 'SyntaxError');
    }
    if (state.closeSent || state.readyState === CLOSED) return;
    state.closeSent = true;
    if (state.readyState === CONNECTING) return; // closed once open (see #connect)
    state.readyState = CLOSING;
    state.peer!.close(code ?? 1005, text);
  }

  get onmessage(): EventListener | null {
    return this.#state.handlers.message ?? null;
  }
  set onmessage(handler: EventListener | null) {
    this.#handler('message', handler);
  }
  get onclose(): EventListener | null {
    return this.#state.handlers.close ?? null;
  }
  set onclose(handler: EventListener | null) {
    this.#handler('close', handler);
  }
  get onerror(): EventListener | null {
    return this.#state.handlers.error ?? null;
  }
  set onerror(handler: EventListener | null) {
    this.#handler('error', handler);
  }
  get onopen(): EventListener | null {
    return this.#state.handlers.open ?? null;
  }
  set onopen(handler: EventListener | null) {
    this.#handler('open', handler);
  }

  #handler(type: string, handler: EventListener | null): void {
    const old = this.#state.handlers[type];
    if (old) this.removeEventListener(type, old);
    this.#state.handlers[type] = typeof handler === 'function' ? handler : null;
    if (typeof handler === 'function') this.addEventListener(type, handler);
  }

  #usable(what: string): EndState {
    const state = this.#state;
    if (state.given) {
      throw new TypeError(`WebSocket: can't ${what}() this end: it was returned in a Response and belongs to the client now; use the other end of the pair`);
    }
    return state;
  }

  #deliver(arrival: WebSocketArrival): void {
    const state = this.#state;
    if (state.readyState === CLOSED) return;
    if (!arrival.close) {
      state.peer?.delivered(arrival.data.byteLength);
      const data = !arrival.binary
        ? Buffer.from(arrival.data.buffer, arrival.data.byteOffset, arrival.data.byteLength).toString('utf8')
        : state.binaryType === 'blob'
          ? new Blob([arrival.data as Uint8Array<ArrayBuffer>])
          : arrival.data.buffer.slice(arrival.data.byteOffset, arrival.data.byteOffset + arrival.data.byteLength);
      this.dispatchEvent(new MessageEvent('message', { data }));
      return;
    }
    // The peer closed: answered at once (as Workers does), so this end is closed too.
    const answer = !state.closeSent;
    state.closeSent = true;
    state.readyState = CLOSED;
    if (answer) state.peer?.close(arrival.code, arrival.reason);
    this.dispatchEvent(new CloseEvent('close', { code: arrival.code, reason: arrival.reason, wasClean: arrival.code !== 1006 }));
  }
}

const PAIR = Symbol('pair');

/** Whether `value` is a WebSocket of this runtime (a Response's webSocket must be). */
export function isWebSocket(value: unknown): boolean {
  return stateOf(value) !== null;
}

/** The local link of a pair: each end's sends arrive at the other, after the sender's turn. */
function localPeer(to: WebSocket): WebSocketPeer {
  return {
    message: (binary, data) => queueMicrotask(() => arrive(to, { close: false, binary, data })),
    close: (code, reason) => queueMicrotask(() => arrive(to, { close: true, code, reason })),
    delivered: () => {},
  };
}

export class WebSocketPair {
  declare 0: WebSocket;
  declare 1: WebSocket;

  constructor() {
    const client = new WebSocket(PAIR);
    const server = new WebSocket(PAIR);
    Object.assign(stateOf(client)!, { peer: localPeer(server), other: server });
    Object.assign(stateOf(server)!, { peer: localPeer(client), other: client });
    Object.defineProperty(this, 0, { value: client, enumerable: true });
    Object.defineProperty(this, 1, { value: server, enumerable: true });
  }
}

/**
 * The worker's end of a WebSocket it opened (fetch with `Upgrade: websocket`): sends go to
 * `remote`, what the server sends arrives through `arrive`. Not accepted yet: as on Workers, the
 * worker calls accept() on the Response's webSocket before it uses it.
 */
export function remoteEnd(remote: WebSocketPeer): { socket: WebSocket; arrive: (arrival: WebSocketArrival) => void } {
  const socket = new WebSocket(PAIR);
  stateOf(socket)!.peer = remote;
  return { socket, arrive: (arrival) => arrive(socket, arrival) };
}

/** An arrival for an end the client now stands for, sent on to the client. */
function passOn(peer: WebSocketPeer, arrival: WebSocketArrival): void {
  if (arrival.close) peer.close(arrival.code, arrival.reason);
  else peer.message(arrival.binary, arrival.data);
}

/**
 * The runtime answers with `client` (a Response's webSocket): from now on the other end's sends
 * go to `remote`, and what the client sends arrives through the returned function. Whatever
 * the other end sent before (waiting at `client`) goes to `remote` first, in order. Throws a
 * TypeError, before anything is sent, when `client` is not an end the worker may return.
 */
export function giveToClient(client: unknown, remote: WebSocketPeer): (arrival: WebSocketArrival) => void {
  const state = stateOf(client);
  if (!state) throw new TypeError("the Response's webSocket is not a WebSocket: use one end of a new WebSocketPair()");
  if (state.given) throw new TypeError("the Response's webSocket was already returned in another Response");
  if (state.accepted) {
    throw new TypeError("the Response's webSocket was accept()ed: return the end you did not accept (the client end) and accept the other one");
  }
  const server = state.other!;
  state.given = remote;
  state.readyState = CLOSED;
  stateOf(server)!.peer = remote;
  for (const arrival of state.waiting) passOn(remote, arrival);
  state.waiting = [];
  return (arrival) => arrive(server, arrival);
}

/**
 * A WebSocket a worker accepted (it answered the client's upgrade with a 101 and one end of a
 * WebSocketPair): the daemon completes the handshake and speaks RFC 6455 to the client with
 * `ws`, and carries whole messages between that socket and the child as WebSocketText /
 * WebSocketBinary / WebSocketClose frames on the request's stream (runner/websocket-link.ts is
 * the other side).
 *
 * Both directions are flow-controlled by the stream's window, so neither end's backlog grows
 * in the daemon: the child may have STREAM_WINDOW_BYTES of messages unacknowledged, credited
 * back as the client's socket takes them; a client that sends faster than the worker handles
 * its messages is paused (TCP pushes back on it) until the child credits what it delivered.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { MAX_WEBSOCKET_MESSAGE_BYTES, STREAM_WINDOW_BYTES, type HeaderList } from '../../protocol/messages.js';
import { ReceiveWindow } from '../../protocol/flow.js';
import { lazyPackage } from '../lazy-package.js';
import type { Instance } from '../pool/instance.js';

/** The connection of a client's `Upgrade: websocket` request, as the front door received it. */
export interface UpgradeRequest {
  socket: Duplex;
  /** Bytes the client sent after its request head (the start of the WebSocket stream). */
  head: Buffer;
}

/** A close reason fits in a control frame: 125 bytes less the code. */
const MAX_CLOSE_REASON_BYTES = 123;

/** Response headers that describe the handshake or the connection, which the daemon writes itself. */
const HANDSHAKE_HEADERS = new Set([
  'connection',
  'upgrade',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'sec-websocket-accept',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
]);

/** What the worker's 101 said, for the handshake of the request it answered. */
interface Answer {
  headers: string[];
  protocol: string | null;
}
const answers = new WeakMap<IncomingMessage, Answer>();
const ws = lazyPackage<typeof import('ws')>('ws');

// One server for every socket: with noServer it holds no state of its own but the options.
// Made at the first upgrade (lazy-package.ts).
let server: WebSocketServer | null = null;

function upgrader(): WebSocketServer {
  if (server) return server;
  server = new (ws().WebSocketServer)({
    noServer: true,
    clientTracking: false,
    // Workers negotiates no compression unless asked, and a compressed message's size is no bound on its inflated one.
    perMessageDeflate: false,
    maxPayload: MAX_WEBSOCKET_MESSAGE_BYTES,
    // The worker chooses among the client's subprotocols with its response's Sec-WebSocket-Protocol.
    handleProtocols: (offered, req) => {
      const chosen = answers.get(req)?.protocol ?? null;
      return chosen !== null && offered.has(chosen) ? chosen : false;
    },
  });
  server.on('headers', (headers: string[], req: IncomingMessage) => {
    const answer = answers.get(req);
    if (answer) headers.push(...answer.headers);
  });
  return server;
}

/**
 * Why `req` cannot become a WebSocket (the handshake is malformed), or null. Checked before the
 * request reaches the worker, with the rules `ws` completes the handshake by, so that a worker
 * that accepts it never sees its 101 fail.
 */
export function handshakeProblem(req: IncomingMessage): { status: number; reason: string } | null {
  if (req.method !== 'GET') return { status: 400, reason: `a WebSocket handshake is a GET request, not ${req.method}` };
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key.trim())) {
    return { status: 400, reason: 'its Sec-WebSocket-Key header is missing or is not 16 bytes in base64' };
  }
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') return { status: 426, reason: `its Sec-WebSocket-Version ${JSON.stringify(version ?? '')} is not one edgeproc speaks (13)` };
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols !== undefined && !/^\s*[!#$%&'*+\-.^_`|~0-9A-Za-z]+(\s*,\s*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*\s*$/.test(protocols)) {
    return { status: 400, reason: 'its Sec-WebSocket-Protocol header is not a list of tokens' };
  }
  return null;
}

/** Whether `req` asks to become a WebSocket (other upgrades are served as plain requests). */
export function wantsWebSocket(req: IncomingMessage): boolean {
  return (req.headers.upgrade ?? '').trim().toLowerCase() === 'websocket';
}

/** What the exchange that owns a bridge hears of it. */
export interface BridgeHooks {
  /** A client message went to the child. */
  onMessage(): void;
  /** The socket has closed (either side, or lost); once. */
  onClose(code: number): void;
  /** The child broke the stream's flow control; the socket was closed for it. */
  onViolation(reason: string): void;
}

/**
 * Completes the handshake of `req` with the worker's 101 `headers` and returns the socket, or
 * null if `ws` refused it after all (it then answered 400 and closed the connection).
 */
export function acceptWebSocket(req: IncomingMessage, upgrade: UpgradeRequest, headers: HeaderList): WebSocket | null {
  const answer: Answer = { headers: [], protocol: null };
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (lower === 'sec-websocket-protocol') answer.protocol = value.trim();
    else if (!HANDSHAKE_HEADERS.has(lower)) answer.headers.push(`${name}: ${value}`);
  }
  answers.set(req, answer);
  let accepted: WebSocket | null = null;
  // Synchronous, as handshakeProblem() admitted the request: no frame from the child is handled before it.
  upgrader().handleUpgrade(req, upgrade.socket, upgrade.head, (ws) => (accepted = ws));
  answers.delete(req);
  return accepted;
}

/**
 * One open WebSocket and the child's side of it, stream `id` of `instance`: the client's socket
 * of a request the worker answered with a 101 (odd id), or a socket the worker opened with
 * fetch() (a subrequest's even id).
 */
export class WebSocketBridge {
  readonly #instance: Instance;
  readonly #id: number;
  readonly #hooks: BridgeHooks;
  readonly #ws: WebSocket;
  /** How much the daemon may still send the child before it credits back (client → worker). */
  #credit = STREAM_WINDOW_BYTES;
  /** Bytes the child sent that the client's socket has not taken yet (worker → client). */
  #unsent = 0;
  /** What the client's socket took, credited back to the child (worker → client). */
  readonly #flushed = new ReceiveWindow();
  #closed = false;

  constructor(instance: Instance, id: number, ws: WebSocket, hooks: BridgeHooks) {
    this.#instance = instance;
    this.#id = id;
    this.#hooks = hooks;
    this.#ws = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.#credit -= data.byteLength;
      this.#instance.sendWebSocketMessage(this.#id, isBinary, data);
      this.#hooks.onMessage();
      if (this.#credit <= 0) ws.pause();
    });
    ws.on('close', (code: number, reason: Buffer) => this.#closedBy(code, reason.toString('utf8')));
    // A protocol error, a message over the limit: ws closes the socket (1002, 1009, ...) and 'close' follows.
    ws.on('error', () => {});
  }

  /** The child credits messages it delivered to the worker. */
  onWindow(bytes: number): void {
    this.#credit += bytes;
    if (this.#credit > 0 && this.#ws.isPaused) this.#ws.resume();
  }

  /** A message of the worker's for the client. */
  send(binary: boolean, data: Uint8Array): void {
    const ws = this.#ws;
    if (this.#closed) return;
    this.#unsent += data.byteLength;
    // One message may take the window below zero (the child sent it while it had credit); more may not.
    if (this.#unsent > STREAM_WINDOW_BYTES + MAX_WEBSOCKET_MESSAGE_BYTES) {
      this.close(1011, 'the worker sent more than its flow-control window allows');
      this.#hooks.onViolation(`the instance sent more WebSocket messages than its flow-control window allows (${STREAM_WINDOW_BYTES} bytes unacknowledged)`);
      return;
    }
    ws.send(data, { binary }, () => {
      this.#unsent -= data.byteLength;
      // In half-window steps, not a WINDOW frame (a write) per message: the child keeps the other
      // half to send meanwhile, and once it is out of credit half its window is still to flush.
      const ack = this.#flushed.consumed(data.byteLength);
      if (ack > 0 && !this.#closed) this.#instance.sendWindow(this.#id, ack);
    });
  }

  /** Closes the socket: the worker closed it, or the daemon ends it (the instance failed or went away). */
  close(code: number, reason: string): void {
    const ws = this.#ws;
    if (ws.readyState === ws.CLOSING || ws.readyState === ws.CLOSED) return;
    const valid = code === 1000 || code === 1001 || code === 1011 || code === 1012 || (code >= 3000 && code <= 4999);
    let text = reason;
    while (Buffer.byteLength(text, 'utf8') > MAX_CLOSE_REASON_BYTES) text = text.slice(0, -1);
    if (code === 1005) ws.close();
    else ws.close(valid ? code : 1011, text);
  }

  #closedBy(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#instance.sendWebSocketClose(this.#id, code, reason);
    this.#hooks.onClose(code);
  }
}

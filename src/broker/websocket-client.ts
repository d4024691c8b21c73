/**
 * A WebSocket a worker opens (`fetch(url, { headers: { Upgrade: 'websocket' } })`, or
 * `new WebSocket(url)`): the daemon connects with `ws` as a client, under the same egress policy
 * as every other subrequest (the host resolved and every address checked first, then the
 * connection made to a checked address, so a second lookup cannot answer otherwise), and says
 * how the server answered: a 101 and an open socket, which websocket-bridge.ts then carries, or
 * any other response, which the worker gets as a plain Response.
 */
import { isIP, connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { IncomingMessage } from 'node:http';
import type { ClientOptions, WebSocket } from 'ws';
import { MAX_WEBSOCKET_MESSAGE_BYTES, type HeaderList, type SubrequestHeadMessage, type SubresponseHeadMessage } from '../../protocol/messages.js';
import { lazyPackage } from '../lazy-package.js';
import type { EgressPolicy } from './egress.js';
import { resolveChecked, unbracket } from './egress-connector.js';

const wsPackage = lazyPackage<typeof import('ws')>('ws');

/** Longest body of a refusal (a 4xx or 5xx instead of the 101) passed to the worker; the rest is dropped. */
const MAX_REFUSAL_BODY_BYTES = 64 * 1024;
/** How long the server may take to answer the handshake. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Request headers the handshake itself sets; a worker's own are not passed on. */
const HANDSHAKE_HEADERS = new Set([
  'connection',
  'upgrade',
  'host',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-protocol',
]);

/** Whether a subrequest asks for a WebSocket (`Upgrade: websocket`). */
export function asksForWebSocket(headers: HeaderList): boolean {
  for (const [name, value] of headers) if (name.toLowerCase() === 'upgrade' && value.trim().toLowerCase() === 'websocket') return true;
  return false;
}

export interface OutboundSocketEvents {
  /** The server answered 101: `ws` is open, `head` is what the worker's fetch resolves with. */
  open(ws: WebSocket, head: SubresponseHeadMessage): void;
  /** The server answered something else, with (the start of) its body. */
  refused(head: SubresponseHeadMessage, body: Buffer): void;
  /** No answer: the egress policy denied it (an EgressDeniedError), or the connection failed. */
  error(error: Error): void;
}

/** Opens the WebSocket `head` asks for; returns how to give up on it (the worker's request ended). */
export function openOutboundWebSocket(policy: EgressPolicy, head: SubrequestHeadMessage, given: OutboundSocketEvents): () => void {
  let ws: WebSocket | null = null;
  let abandoned = false;
  // One answer at most: a refusal's connection, destroyed once read, still reports an error.
  let answered = false;
  const once =
    <A extends unknown[]>(f: (...args: A) => void) =>
    (...args: A) => {
      if (answered || abandoned) return;
      answered = true;
      f(...args);
    };
  const events: OutboundSocketEvents = { open: once(given.open), refused: once(given.refused), error: once(given.error) };
  const url = new URL(head.url);
  const secure = url.protocol === 'https:';
  const hostname = unbracket(url.hostname);
  const port = Number(url.port) || (secure ? 443 : 80);
  resolveChecked(policy, hostname, port, url.origin, (error, addresses) => {
    if (abandoned) return;
    if (error) return events.error(error);
    const headers: Record<string, string> = {};
    const protocols: string[] = [];
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase();
      if (lower === 'sec-websocket-protocol') protocols.push(...value.split(',').map((p) => p.trim()).filter(Boolean));
      else if (!HANDSHAKE_HEADERS.has(lower)) headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const address = addresses[0]!;
    const options: ClientOptions = {
      headers,
      perMessageDeflate: false,
      maxPayload: MAX_WEBSOCKET_MESSAGE_BYTES,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      followRedirects: false,
      // To the address checked above, never the name again; TLS keeps the name for SNI and the certificate.
      createConnection: ((opts: Record<string, unknown>) =>
        secure
          ? tlsConnect({ ...opts, host: address, servername: isIP(hostname) ? undefined : hostname })
          : netConnect({ ...opts, host: address } as never)) as unknown as ClientOptions['createConnection'],
    };
    ws = new (wsPackage().WebSocket)(`${secure ? 'wss' : 'ws'}://${url.host}${url.pathname}${url.search}`, protocols, options);
    let answer: IncomingMessage | null = null;
    ws.once('upgrade', (res) => (answer = res));
    ws.once('open', () => events.open(ws!, subresponseHead(head.url, answer, false)));
    ws.once('unexpected-response', (req, res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        if (bytes >= MAX_REFUSAL_BODY_BYTES) return;
        chunks.push(chunk.subarray(0, MAX_REFUSAL_BODY_BYTES - bytes));
        bytes += chunk.byteLength;
      });
      res.once('end', () => {
        events.refused(subresponseHead(head.url, res, bytes > 0), Buffer.concat(chunks));
        req.destroy();
      });
      res.once('error', (error) => events.error(error));
    });
    // After open, the socket's own errors end in 'close', which the bridge reports.
    ws.on('error', (error) => events.error(error));
  });
  return () => {
    abandoned = true;
    ws?.terminate();
  };
}

function subresponseHead(url: string, res: IncomingMessage | null, hasBody: boolean): SubresponseHeadMessage {
  const headers: HeaderList = [];
  const raw = res?.rawHeaders ?? [];
  for (let i = 0; i < raw.length; i += 2) headers.push([raw[i]!, raw[i + 1]!]);
  return { status: res?.statusCode ?? 101, statusText: res?.statusMessage ?? 'Switching Protocols', headers, hasBody, url, redirected: false };
}

/**
 * What a client gets when its bytes are not an HTTP request Node's parser
 * accepts (garbage, bad header syntax, conflicting Content-Length and
 * Transfer-Encoding, headers past the size limit, headers too slow): a status
 * and a plain-text body saying what was wrong, then the connection is closed.
 * Node's own answer is the bare status line, which tells the client nothing.
 * See https://nodejs.org/docs/latest-v20.x/api/http.html#event-clienterror
 */
import { maxHeaderSize, STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

interface ParseError extends Error {
  code?: string;
  /** llhttp's reason, e.g. "Invalid header token". */
  reason?: string;
}

/**
 * Answers parse errors on `server` with an explanatory response. `responses` maps a
 * socket to the response of the request last read from it: a request that was read
 * whole before the bad bytes still gets its own response first (pipelining), and
 * nothing is ever written into the middle of a response.
 */
export function answerClientErrors(server: Server, responses: WeakMap<Duplex, ServerResponse>): void {
  const limit = (server as Server & { maxHeaderSize?: number }).maxHeaderSize ?? maxHeaderSize;
  // The parser stays in error: every later read on the socket would report again.
  const answered = new WeakSet<Duplex>();
  server.on('clientError', (error: ParseError, socket: Duplex) => {
    if (answered.has(socket)) return;
    answered.add(socket);
    const answer = clientErrorAnswer(error, limit);
    const send = () => {
      if (answer) writeRawResponse(socket, answer[0], answer[1]);
      // The rest of the stream cannot be framed: nothing more can be read from this connection.
      socket.destroy();
    };
    const inFlight = responses.get(socket);
    if (!answer || !inFlight || inFlight.writableFinished) return send();
    if (inFlight.req.complete) {
      // A whole request came before the bad bytes: it is answered first, then the 400.
      socket.pause();
      inFlight.once('finish', send);
      inFlight.once('close', () => socket.destroy());
      return;
    }
    // The bad bytes are in this request's own body: the 400 is its answer, unless its head is out.
    if (inFlight.headersSent) return void socket.destroy();
    send();
  });
}

/** A complete response written straight to a socket that has no ServerResponse (parse errors, CONNECT). */
export function writeRawResponse(socket: Duplex, status: number, reason: string): void {
  if (!socket.writable) return;
  const body = `${reason}\n`;
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}

/** The status and reason for a parse error, or null for a socket error (nobody left to tell). */
export function clientErrorAnswer(error: ParseError, maxHeaderBytes: number): [number, string] | null {
  const code = error.code ?? '';
  if (code === 'HPE_HEADER_OVERFLOW') {
    return [
      431,
      `Request header fields too large: the request line and headers together exceed ${maxHeaderBytes} bytes ` +
        "(Node's --max-http-header-size). Send fewer or smaller headers.",
    ];
  }
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') {
    return [413, 'Payload too large: the chunk extensions of the request body exceed what the server accepts.'];
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return [408, 'Request timeout: the request headers did not arrive in time.'];
  }
  if (!code.startsWith('HPE_')) return null;
  return [400, `Bad request: the request is not valid HTTP/1.1: ${error.reason ?? error.message} (${code}). The connection is closed.`];
}

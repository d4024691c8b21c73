/**
 * Turns a failure into what the client sees: a status, a short plain-text
 * reason and the request id that also appears in the log line.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';

export const REQUEST_ID_HEADER = 'edgeproc-request-id';

export function sendErrorResponse(
  res: ServerResponse,
  status: number,
  reason: string,
  requestId: string,
  extraHeaders: Record<string, string> = {},
): void {
  if (res.headersSent) {
    // Too late for a status: cut the response so the client sees it incomplete, not "complete".
    cutResponse(res);
    return;
  }
  const body = `${reason}\n\nrequest id: ${requestId}\n`;
  // The reason phrase is given, not left to writeHead: a worker's head that writeHead refused
  // leaves its statusMessage on `res`, and writeHead would reuse it and throw again.
  res.writeHead(status, STATUS_CODES[status] ?? 'Error', {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    [REQUEST_ID_HEADER]: requestId,
    ...extraHeaders,
  });
  res.end(body);
}

export function memoryReason(worker: string, measured: string, limitMb: number): string {
  return `Worker "${worker}" exceeded its memory limit: ${measured}; the limit is ${limitMb} MiB per instance (--memory-mb).`;
}

export function bodyTooLargeReason(limitBytes: number): string {
  return `The request body is larger than this worker accepts (${limitBytes} bytes, --request-body-mb).`;
}

/** Longest a cut response's connection may take to flush what was written before it is destroyed. */
const CUT_FLUSH_MS = 5000;

/**
 * Ends a response whose head is out but whose body failed: what was written (the head, the body
 * so far) is flushed, then the connection is closed without the end of the response, so the client
 * sees its status and an incomplete body. Destroying the socket at once would discard what is still
 * queued, often the head itself when the failure came in the same batch of frames, and the client
 * would get a connection closed before any byte.
 */
export function cutResponse(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket || socket.destroyed) {
    res.destroy();
    return;
  }
  socket.end();
  // A client that never reads would otherwise keep the half-closed connection.
  setTimeout(() => socket.destroy(), CUT_FLUSH_MS).unref();
}

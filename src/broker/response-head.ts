/**
 * Checks a response head from a child before any of it reaches the client.
 *
 * The runner builds heads from genuine Responses, but a tenant owns its whole
 * process: through the intrinsics the runner shares with it (a toJSON on
 * Object.prototype, for one) it can rewrite any frame its runner sends
 * (test/hostile/forged-response-head.test.ts). Node's writeHead() catches
 * some of what such a head could hold and forwards the rest (status 101, a
 * megabyte of headers) to a client that then fails mid-parse; and a head that
 * throws in the wrong place takes the instance's channel down with it. So the
 * daemon decides here, in one place, what a worker may send.
 */
import type { ResponseHeadMessage } from '../../protocol/messages.js';

/** RFC 9110 §5.6.2: a header name is a token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5: field values and reason phrases hold no CR, LF or NUL (obs-text allowed, as Node does). */
const FIELD_CONTENT = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Why `head` cannot be sent (a phrase to follow "cannot send:"), or null when it can. */
export function responseHeadProblem(head: ResponseHeadMessage, maxBytes: number): string | null {
  if (typeof head !== 'object' || head === null) return 'its head is not an object';
  const { status, statusText, headers, hasBody, bodyLength } = head;
  // The Fetch standard's range for a Response: 1xx would tell the client to expect another head
  // (or, for 101, another protocol) on this connection.
  if (!Number.isInteger(status) || status < 200 || status > 599) return `its status ${JSON.stringify(status)} is not an integer from 200 to 599`;
  if (typeof statusText !== 'string' || !FIELD_CONTENT.test(statusText)) return 'its status text holds characters a status line cannot carry';
  if (typeof hasBody !== 'boolean' || (bodyLength !== null && !(Number.isInteger(bodyLength) && bodyLength >= 0))) return 'its head is malformed';
  if (!Array.isArray(headers)) return 'its headers are not a list';
  let bytes = statusText.length;
  for (const entry of headers) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'string') {
      return 'its headers are not a list of name and value strings';
    }
    const [name, value] = entry;
    if (!TOKEN.test(name)) return `the header name ${JSON.stringify(name.slice(0, 64))} is not a valid HTTP token`;
    if (!FIELD_CONTENT.test(value)) return `the value of header "${name}" holds CR, LF, NUL or another character a header cannot carry`;
    bytes += name.length + value.length + 4;
    if (bytes > maxBytes) {
      const count = `${headers.length} header${headers.length === 1 ? '' : 's'}`;
      return `its headers take more than ${maxBytes} bytes (${count}), the most a response may carry`;
    }
  }
  return null;
}

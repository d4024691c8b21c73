/**
 * The URL a tenant's Request gets, built from the request target and the Host
 * header, or the reason the request cannot have one. Node's parser accepts
 * targets and Host values that are not URLs (`OPTIONS *`, `Host: a:99999:x`):
 * passed on, the tenant's `new Request()` threw and the client got a 500
 * blaming the worker for its own mistake. RFC 9112 §3.2 asks for a 400 when an
 * HTTP/1.1 request has no Host, more than one, or an invalid one.
 */
import type { IncomingMessage } from 'node:http';

export type RequestUrl = { url: string } | { bad: string };

// Hot path: every client request.
export function requestUrl(req: IncomingMessage): RequestUrl {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) return { bad: `The request has ${hosts} Host headers; send exactly one.` };
  const host = req.headers.host;
  if (host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
    return { bad: 'The request has no Host header (HTTP/1.1 requires one); it names the worker, as NAME.localhost:PORT.' };
  }
  const target = req.url ?? '/';
  if (target.startsWith('/')) {
    const url = `http://${host ?? 'localhost'}${target}`;
    return URL.canParse(url) ? { url } : { bad: `The Host header ${JSON.stringify(host)} is not a valid host[:port].` };
  }
  if (target === '*') return { bad: 'The request target "*" (OPTIONS *) is not supported: send a path.' };
  // Absolute form (a request meant for a proxy): the target is the URL.
  return URL.canParse(target) ? { url: target } : { bad: `The request target ${JSON.stringify(target)} is not a valid URL or path.` };
}

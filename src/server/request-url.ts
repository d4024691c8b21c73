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

/**
 * Hosts already seen to make a URL. A target that starts with "/" ends the authority and no
 * path makes the WHATWG parser fail, so whether `http://HOST/…` parses depends on the host
 * alone, unless it is empty or holds one of "/\\?#", which lets the target's own slashes
 * become the authority (`http:///x` parses, `http:///` does not): those are checked every
 * time. URL.canParse per request was ~1.4% of the daemon's CPU under wrk, for the same few
 * hosts each time. Bounded: a client sending a new Host with every request only empties it.
 */
const validHosts = new Set<string>();
const MAX_VALID_HOSTS = 256;

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
    const authority = host ?? 'localhost';
    const url = `http://${authority}${target}`;
    if (validHosts.has(authority)) return { url };
    if (!URL.canParse(url)) return { bad: `The Host header ${JSON.stringify(host)} is not a valid host[:port].` };
    if (!/^$|[/\\?#]/.test(authority)) {
      if (validHosts.size >= MAX_VALID_HOSTS) validHosts.clear();
      validHosts.add(authority);
    }
    return { url };
  }
  if (target === '*') return { bad: 'The request target "*" (OPTIONS *) is not supported: send a path.' };
  // Absolute form (a request meant for a proxy): the target is the URL.
  return URL.canParse(target) ? { url: target } : { bad: `The request target ${JSON.stringify(target)} is not a valid URL or path.` };
}

/**
 * The undici connector that enforces the egress policy. undici's fetch opens
 * every connection (the first one and one per redirect to a new origin) through
 * its Agent's `connect` function, so checking here covers redirects without
 * following them ourselves. Pooled connections were checked when opened.
 *
 * Steps, per new connection:
 *   1. Resolve the hostname ourselves (all addresses); an IP literal is taken as
 *      it is, since Node's net.connect skips lookup for literals anyway.
 *   2. Refuse if the policy denies any of the addresses: a name that resolves to
 *      one public and one private address must not win by luck of ordering.
 *   3. Connect to a checked address (the next one if it cannot be reached), not
 *      the name, so a second lookup cannot
 *      answer differently (DNS rebinding); TLS keeps the name for SNI and for
 *      checking the certificate.
 * See undici's docs/api/Connector.md and lib/core/connect.js (undici 7).
 */
import { ADDRCONFIG, lookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { buildConnector } from 'undici';
import { EgressDeniedError, type EgressPolicy } from './egress.js';

export function egressConnector(policy: EgressPolicy): buildConnector.connector {
  const connect = buildConnector({});
  return (options, callback) => {
    // A TLS upgrade of a socket already open (and checked when it was opened).
    if (options.httpSocket) return connect(options, callback);
    const hostname = unbracket(options.hostname);
    const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
    const origin = `${options.protocol}//${options.host ?? options.hostname}`;
    // 1. and 2.
    resolveChecked(policy, hostname, port, origin, (error, addresses) => {
      if (error) return callback(error, null);
      // 3.
      const servername = options.servername || (isIP(hostname) ? undefined : hostname);
      const attempt = (index: number): void =>
        connect({ ...options, hostname: addresses[index]!, servername }, (...result) => {
          // The next checked address when this one cannot be reached (Node's own
          // happy eyeballs only applies when it resolves the name itself).
          const [error] = result;
          if (error && index + 1 < addresses.length && UNREACHABLE.has((error as NodeJS.ErrnoException).code ?? '')) {
            return attempt(index + 1);
          }
          callback(...result);
        });
      attempt(0);
    });
  };
}

/**
 * Steps 1 and 2 for any connection the daemon opens for a tenant: every address `hostname`
 * resolves to, or an EgressDeniedError (for `origin`, as the tenant wrote it) if the policy
 * denies any of them on `port`.
 */
export function resolveChecked(
  policy: EgressPolicy,
  hostname: string,
  port: number,
  origin: string,
  done: (error: Error | null, addresses: string[]) => void,
): void {
  resolve(hostname, (error, addresses) => {
    if (error) return done(error, []);
    for (const address of addresses) {
      const denial = policy.check(address, port);
      if (denial) return done(new EgressDeniedError(origin, hostname, denial), []);
    }
    done(null, addresses);
  });
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function resolve(hostname: string, done: (error: Error | null, addresses: string[]) => void): void {
  // Asynchronous either way, as undici's own connector is: it never calls back before it returns.
  if (isIP(hostname)) return process.nextTick(done, null, [hostname]);
  // ADDRCONFIG as net.connect uses it: no IPv6 addresses on a machine that has no IPv6 route to use them.
  lookup(hostname, { all: true, hints: ADDRCONFIG }, (error, found: LookupAddress[]) => {
    if (error) return done(error, []);
    if (found.length === 0) return done(new Error(`getaddrinfo ENOTFOUND ${hostname}`), []);
    done(null, found.map((entry) => entry.address));
  });
}

/** undici strips the brackets of an IPv6 host before calling a connector; this does not rely on it. */
export function unbracket(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

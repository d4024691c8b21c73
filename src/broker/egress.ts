/**
 * Egress policy: where the daemon may connect on a tenant's behalf. Public
 * addresses are open; loopback, private, link-local, metadata and the other
 * non-public kinds (src/net/addresses.ts) are closed unless the operator opens a
 * range with --egress-allow; the daemon's own admin API is closed whatever the
 * allow list says. The policy judges addresses, after DNS, so a hostname cannot
 * smuggle a private address past it; egress-connector.ts applies it to every
 * connection undici opens, redirects included.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { EdgeprocError } from '../errors.js';
import { classifyAddress, type AddressClass } from '../net/addresses.js';
import { CidrSet, type Cidr } from '../net/cidr.js';

/** What a tenant is told to do about a denied address; the same for every kind of address. */
const ADVICE = 'workers may not reach loopback, private, link-local or metadata addresses (allow a range with --egress-allow)';

export type Denial =
  | { reason: 'admin-api' }
  | { reason: 'front-door' }
  | { reason: 'address'; address: string; class: AddressClass };

/** Where the daemon itself listens. Port 0 means "not listening yet". */
export interface DaemonAddress {
  host: string;
  port: number;
  adminPort: number;
}

export class EgressPolicy {
  readonly #allow: CidrSet;
  #daemon: DaemonAddress;

  constructor(allow: readonly Cidr[], daemon: DaemonAddress) {
    this.#allow = new CidrSet(allow);
    this.#daemon = { ...daemon };
  }

  /** The ports the daemon got once listening (the config may have asked for port 0). */
  listening(port: number, adminPort: number): void {
    this.#daemon = { ...this.#daemon, port, adminPort };
  }

  /** Why `url` may not be fetched at all because of its scheme, or null. The runner checks too; this does not trust it. */
  checkScheme(url: string): string | null {
    let protocol: string;
    try {
      protocol = new URL(url).protocol;
    } catch {
      return 'it is not a valid URL';
    }
    if (protocol === 'http:' || protocol === 'https:') return null;
    return `${protocol} URLs are not allowed; workers may fetch only http: and https: URLs`;
  }

  /**
   * Whether a connection to `address` (an IP address, already resolved) on `port`
   * is denied, and why. Run once per new connection, not per request.
   */
  check(address: string, port: number): Denial | null {
    const { adminPort, port: frontPort } = this.#daemon;
    // 1. The admin API on any address: we cannot know every address that leads back
    //    to this machine (a public IP behind 1:1 NAT, a load balancer, hairpinning),
    //    so the port alone decides, and the allow list cannot open it.
    if (adminPort !== 0 && port === adminPort) return { reason: 'admin-api' };
    const kind = classifyAddress(address);
    // 2. Our own front door on a local address: a tenant fetching through the daemon
    //    that runs it can loop (each request making another) and multiply its limits.
    //    Elsewhere the same port number is someone else's server.
    if (frontPort !== 0 && port === frontPort && this.#isLocal(address, kind)) return { reason: 'front-door' };
    // 3. The operator's allow list, then the kind of address.
    if (kind.category === 'public' || this.#allow.has(address)) return null;
    return { reason: 'address', address, class: kind };
  }

  #isLocal(address: string, kind: AddressClass): boolean {
    if (kind.category === 'loopback' || kind.category === 'unspecified') return true;
    const ip = kind.embedded?.ipv4 ?? address.split('%')[0]!;
    if (ip === this.#daemon.host) return true;
    // Read now, not at startup: interfaces come and go (DHCP, VPNs), and this runs only for the front door's port.
    return Object.values(networkInterfaces()).some((list) => list?.some((nic) => nic.address === ip));
  }
}

/**
 * A connection the policy refused. It travels through undici as the cause of
 * fetch's "fetch failed" TypeError; Outbound turns it into the tenant's message.
 */
export class EgressDeniedError extends EdgeprocError {
  /** Where the refused connection was going, as an origin (`http://[::1]:4567`): a redirect target, perhaps. */
  readonly origin: string;
  readonly denial: Denial;
  /** Why, in words, as it follows "denied: ". */
  readonly reason: string;

  constructor(origin: string, hostname: string, denial: Denial) {
    const reason = describeDenial(denial, hostname);
    super('ERR_EGRESS_DENIED', `connection to ${origin} denied: ${reason}`);
    this.origin = origin;
    this.denial = denial;
    this.reason = reason;
  }

  /** What the tenant that fetched `url` is told; says so when a redirect led to the refused origin. */
  messageFor(url: string): string {
    const redirected = originOf(url) !== this.origin;
    return `fetch to ${url} denied: ${redirected ? `redirected to ${this.origin}, and ` : ''}${this.reason}`;
  }
}

export function describeDenial(denial: Denial, hostname: string): string {
  switch (denial.reason) {
    case 'admin-api':
      return 'it is the edgeproc admin API';
    case 'front-door':
      return "it is this edgeproc daemon's own front door; a worker may not fetch through the daemon that runs it";
    case 'address': {
      const { address, class: kind } = denial;
      const carried = kind.embedded ? ` (${kind.embedded.form} ${kind.embedded.ipv4})` : '';
      const subject = isIP(hostname) ? `${address} is ${kind.what}` : `${hostname} resolves to ${address}, ${kind.what}`;
      return `${subject}${carried}; ${ADVICE}`;
    }
  }
}

function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/**
 * What kind of address an IP address is: public, or one of the non-public
 * kinds (loopback, private, link-local, a cloud metadata service, …) that a
 * tenant's fetch must not reach by default. Pure: no DNS, no sockets.
 *
 * IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) are
 * classified by that IPv4 address, since that is where a packet sent to them
 * ends up: a dual-stack socket connecting to ::ffff:127.0.0.1 reaches 127.0.0.1.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export type AddressCategory =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'carrier-grade-nat'
  | 'link-local'
  | 'metadata'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'documentation'
  | 'benchmarking';

export type EmbeddingForm = 'IPv4-mapped' | 'NAT64' | '6to4';

export interface AddressClass {
  category: AddressCategory;
  /** The address in words, with its article, for messages: "a loopback address". */
  what: string;
  /** The IPv4 address an IPv6 form carries, which is what was classified. */
  embedded: { ipv4: string; form: EmbeddingForm } | null;
}

/**
 * Cloud metadata services, by address: each hands out instance credentials to
 * whoever asks from the machine, so each is named in the denial. They sit in
 * link-local, carrier-grade NAT, unique-local and even public space, so they
 * are looked up before the ranges.
 */
const METADATA: ReadonlyMap<string, string> = new Map([
  ['169.254.169.254', 'the instance metadata service of AWS, GCP, Azure, Oracle Cloud and OpenStack'],
  ['169.254.170.2', 'the AWS ECS task metadata and credentials endpoint'],
  ['fd00:ec2::254', 'the AWS instance metadata service (IPv6)'],
  ['100.100.100.200', 'the Alibaba Cloud metadata service'],
  ['168.63.129.16', 'the Azure WireServer (host agent and metadata)'],
]);

type RangeCategory = Exclude<AddressCategory, 'public' | 'metadata'>;

/**
 * Non-public ranges (IANA special-purpose registries, RFC 6890). The first
 * match wins, so a narrower range goes before a wider one it sits in.
 */
const RANGES: ReadonlyArray<readonly [cidr: string, category: RangeCategory]> = [
  // "This network" (RFC 1122 3.2.1.3); Linux connects 0.0.0.0 to the local host.
  ['0.0.0.0/8', 'unspecified'],
  ['127.0.0.0/8', 'loopback'],
  ['10.0.0.0/8', 'private'],
  ['172.16.0.0/12', 'private'],
  ['192.168.0.0/16', 'private'],
  ['100.64.0.0/10', 'carrier-grade-nat'],
  ['169.254.0.0/16', 'link-local'],
  // IETF protocol assignments (RFC 6890), and the retired 6to4 relay anycast (RFC 7526).
  ['192.0.0.0/24', 'reserved'],
  ['192.88.99.0/24', 'reserved'],
  ['192.0.2.0/24', 'documentation'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['198.18.0.0/15', 'benchmarking'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  // Unique local (RFC 4193), the retired site-local (RFC 3879) and local-use NAT64 (RFC 8215).
  ['fc00::/7', 'private'],
  ['fec0::/10', 'private'],
  ['64:ff9b:1::/48', 'private'],
  ['fe80::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
  // Discard-only (RFC 6666); Teredo (RFC 4380), a tunnel that could lead anywhere.
  ['100::/64', 'reserved'],
  ['2001::/32', 'reserved'],
  ['2001:db8::/32', 'documentation'],
  ['3fff::/20', 'documentation'],
  ['2001:2::/48', 'benchmarking'],
];

const WORDS: Record<RangeCategory | 'public', string> = {
  public: 'a public address',
  unspecified: 'an unspecified address (it means this host)',
  loopback: 'a loopback address',
  private: 'a private address',
  'carrier-grade-nat': 'a carrier-grade NAT address',
  'link-local': 'a link-local address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved address',
  documentation: 'a documentation address',
  benchmarking: 'a benchmarking address',
};

// One list per category and family: a BlockList answers only "in or out", and an
// IPv4 rule in it would also match IPv4-mapped IPv6 forms, which we unwrap first.
const TABLE = RANGES.map(([cidr, category]) => {
  const [address, prefix] = cidr.split('/') as [string, string];
  const family = isIPv4(address) ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  list.addSubnet(address, Number(prefix), family);
  return { list, family, category };
});

// IPv6 global unicast (RFC 4291 2.4): outside it, nothing in the table is public.
const GLOBAL_UNICAST = new BlockList();
GLOBAL_UNICAST.addSubnet('2000::', 3, 'ipv6');

/** Classifies an IPv4 or IPv6 address (an IPv6 zone, `%eth0`, is ignored). Throws a TypeError for anything else. */
export function classifyAddress(address: string): AddressClass {
  const ip = address.split('%')[0]!;
  if (isIPv4(ip)) return { ...classifyPlain(ip, 'ipv4'), embedded: null };
  if (!isIPv6(ip)) throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  const embedded = embeddedIPv4(ip);
  if (embedded) return { ...classifyPlain(embedded.ipv4, 'ipv4'), embedded };
  return { ...classifyPlain(ip, 'ipv6'), embedded: null };
}

function classifyPlain(ip: string, family: 'ipv4' | 'ipv6'): Omit<AddressClass, 'embedded'> {
  const service = METADATA.get(family === 'ipv6' ? canonicalIPv6(ip) : ip);
  if (service) return { category: 'metadata', what: service };
  for (const range of TABLE) {
    if (range.family === family && range.list.check(ip, family)) return { category: range.category, what: WORDS[range.category] };
  }
  if (family === 'ipv6' && !GLOBAL_UNICAST.check(ip, 'ipv6')) return { category: 'reserved', what: WORDS.reserved };
  return { category: 'public', what: WORDS.public };
}

/**
 * The IPv4 address inside an IPv6 address, for the three forms that route to it:
 * IPv4-mapped ::ffff:a.b.c.d (RFC 4291 2.5.5.2), NAT64 64:ff9b::a.b.c.d (RFC 6052)
 * and 6to4 2002:aabb:ccdd::/48 (RFC 3056). `ip` must be a valid IPv6 address.
 */
export function embeddedIPv4(ip: string): { ipv4: string; form: EmbeddingForm } | null {
  const g = ipv6Groups(ip);
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return { ipv4: ipv4From(g[6]!, g[7]!), form: 'IPv4-mapped' };
  }
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0) {
    return { ipv4: ipv4From(g[6]!, g[7]!), form: 'NAT64' };
  }
  if (g[0] === 0x2002) return { ipv4: ipv4From(g[1]!, g[2]!), form: '6to4' };
  return null;
}

/** The eight 16-bit groups of a valid IPv6 address, `::` expanded and a trailing dotted quad folded in. */
function ipv6Groups(ip: string): number[] {
  let text = ip;
  const quad = text.lastIndexOf(':');
  if (text.includes('.', quad)) {
    const [a, b, c, d] = text.slice(quad + 1).split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').map((h) => parseInt(h, 16)) : []);
  const front = parse(head);
  if (tail === undefined) return front;
  const back = parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

function canonicalIPv6(ip: string): string {
  // The URL parser writes IPv6 in its canonical (RFC 5952) form, which METADATA keys use.
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

function ipv4From(high: number, low: number): string {
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

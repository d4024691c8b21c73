/**
 * CIDR ranges as an operator writes them (`10.0.0.0/8`, `fd00::/8`, or a bare
 * address meaning just that address) and a set of them to test addresses against.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { embeddedIPv4 } from './addresses.js';

export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** `text` as a CIDR range, or null when it is not one. */
export function parseCidr(text: string): Cidr | null {
  const parts = text.trim().split('/');
  if (parts.length > 2) return null;
  const [address, bits] = parts as [string, string | undefined];
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) && !address.includes('%') ? 'ipv6' : null;
  if (!family) return null;
  const max = family === 'ipv4' ? 32 : 128;
  if (bits !== undefined && !/^\d{1,3}$/.test(bits)) return null;
  const prefix = bits === undefined ? max : Number(bits);
  if (prefix > max) return null;
  return Object.freeze({ address, prefix, family });
}

/**
 * Addresses in any of the ranges. Families are kept apart: Node's BlockList would
 * let `::/0` match every IPv4 address (as IPv4-mapped), which no one means by it.
 * An IPv6 form carrying an IPv4 address (::ffff:127.0.0.1, NAT64, 6to4) is in the
 * set when either it or the IPv4 address it carries is.
 */
export class CidrSet {
  readonly #ipv4 = new BlockList();
  readonly #ipv6 = new BlockList();
  readonly size: number;

  constructor(ranges: readonly Cidr[]) {
    for (const range of ranges) {
      (range.family === 'ipv4' ? this.#ipv4 : this.#ipv6).addSubnet(range.address, range.prefix, range.family);
    }
    this.size = ranges.length;
  }

  has(address: string): boolean {
    const ip = address.split('%')[0]!;
    if (isIPv4(ip)) return this.#ipv4.check(ip, 'ipv4');
    if (!isIPv6(ip)) return false;
    if (this.#ipv6.check(ip, 'ipv6')) return true;
    const embedded = embeddedIPv4(ip);
    return embedded !== null && this.#ipv4.check(embedded.ipv4, 'ipv4');
  }
}

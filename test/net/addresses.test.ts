// The address classifier and CIDR ranges: pure functions, no network.
import { describe, expect, it } from 'vitest';
import { classifyAddress, embeddedIPv4, type AddressCategory } from '../../src/net/addresses.js';
import { CidrSet, parseCidr } from '../../src/net/cidr.js';

describe('classifyAddress', () => {
  const cases: Array<[address: string, category: AddressCategory]> = [
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fec0::1', 'private'],
    ['64:ff9b:1::a00:1', 'private'],
    ['100.64.0.1', 'carrier-grade-nat'],
    ['100.127.255.255', 'carrier-grade-nat'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.0.8', 'reserved'],
    ['100::1', 'reserved'],
    ['2001::1', 'reserved'],
    ['4000::1', 'reserved'],
    ['::7f00:1', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.1', 'documentation'],
    ['203.0.113.1', 'documentation'],
    ['2001:db8::1', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['169.255.0.1', 'public'],
    ['2606:4700:4700::1111', 'public'],
  ];
  it.each(cases)('%s is %s', (address, category) => {
    expect(classifyAddress(address).category).toBe(category);
  });

  it('names each cloud metadata service, ahead of the range it sits in', () => {
    expect(classifyAddress('169.254.169.254')).toEqual({
      category: 'metadata',
      what: 'the instance metadata service of AWS, GCP, Azure, Oracle Cloud and OpenStack',
      embedded: null,
    });
    expect(classifyAddress('169.254.170.2').what).toBe('the AWS ECS task metadata and credentials endpoint');
    expect(classifyAddress('100.100.100.200').what).toBe('the Alibaba Cloud metadata service');
    expect(classifyAddress('168.63.129.16').what).toBe('the Azure WireServer (host agent and metadata)');
    // However an IPv6 address is written.
    for (const form of ['fd00:ec2::254', 'fd00:ec2:0:0:0:0:0:254', 'FD00:EC2::254']) {
      expect(classifyAddress(form).what).toBe('the AWS instance metadata service (IPv6)');
    }
  });

  it('classifies IPv6 forms that carry an IPv4 address by that address', () => {
    expect(classifyAddress('::ffff:127.0.0.1')).toEqual({
      category: 'loopback',
      what: 'a loopback address',
      embedded: { ipv4: '127.0.0.1', form: 'IPv4-mapped' },
    });
    expect(classifyAddress('::ffff:7f00:1').embedded).toEqual({ ipv4: '127.0.0.1', form: 'IPv4-mapped' });
    expect(classifyAddress('::ffff:a9fe:a9fe')).toMatchObject({ category: 'metadata', embedded: { ipv4: '169.254.169.254' } });
    expect(classifyAddress('64:ff9b::10.1.2.3')).toMatchObject({ category: 'private', embedded: { ipv4: '10.1.2.3', form: 'NAT64' } });
    expect(classifyAddress('64:ff9b::a9fe:a9fe')).toMatchObject({ category: 'metadata', embedded: { form: 'NAT64' } });
    expect(classifyAddress('2002:c0a8:101::1')).toMatchObject({ category: 'private', embedded: { ipv4: '192.168.1.1', form: '6to4' } });
    expect(classifyAddress('2002:7f00:1::')).toMatchObject({ category: 'loopback', embedded: { ipv4: '127.0.0.1', form: '6to4' } });
    // A public IPv4 address stays public in any of these forms.
    expect(classifyAddress('::ffff:8.8.8.8').category).toBe('public');
    expect(classifyAddress('64:ff9b::808:808').category).toBe('public');
    expect(classifyAddress('2002:808:808::1').category).toBe('public');
  });

  it('finds no IPv4 address in other IPv6 forms', () => {
    expect(embeddedIPv4('::1')).toBeNull();
    expect(embeddedIPv4('::ffff:0:7f00:1')).toBeNull();
    expect(embeddedIPv4('64:ff9b:1::7f00:1')).toBeNull();
    expect(embeddedIPv4('2001:db8::ffff:7f00:1')).toBeNull();
  });

  it('throws for what is not an IP address', () => {
    expect(() => classifyAddress('localhost')).toThrow(TypeError);
    expect(() => classifyAddress('127.1')).toThrow('not an IP address: "127.1"');
  });
});

describe('parseCidr', () => {
  it('reads IPv4 and IPv6 ranges, and a bare address as just that address', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr(' 127.0.0.1 ')).toEqual({ address: '127.0.0.1', prefix: 32, family: 'ipv4' });
    expect(parseCidr('fd00::/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' });
    expect(parseCidr('::1')).toEqual({ address: '::1', prefix: 128, family: 'ipv6' });
    expect(parseCidr('0.0.0.0/0')).toEqual({ address: '0.0.0.0', prefix: 0, family: 'ipv4' });
  });

  it.each(['nonsense', '', '10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/-1', '10.0.0.0/0x8', '10.0.0/8', 'fe80::1%eth0', 'localhost/32'])(
    'rejects %j',
    (text) => {
      expect(parseCidr(text)).toBeNull();
    },
  );
});

describe('CidrSet', () => {
  const set = new CidrSet([parseCidr('127.0.0.1/32')!, parseCidr('10.0.0.0/8')!, parseCidr('fd00::/8')!]);

  it('holds the addresses in its ranges, and no others', () => {
    expect(set.has('127.0.0.1')).toBe(true);
    expect(set.has('127.0.0.2')).toBe(false);
    expect(set.has('10.200.0.1')).toBe(true);
    expect(set.has('fd00:ec2::254')).toBe(true);
    expect(set.has('fe80::1')).toBe(false);
    expect(set.has('::1')).toBe(false);
  });

  it('holds an IPv6 form when the IPv4 address it carries is held', () => {
    expect(set.has('::ffff:127.0.0.1')).toBe(true);
    expect(set.has('64:ff9b::a01:203')).toBe(true);
    expect(set.has('::ffff:127.0.0.2')).toBe(false);
  });

  it('keeps the families apart: ::/0 does not hold IPv4 addresses', () => {
    const v6 = new CidrSet([parseCidr('::/0')!]);
    expect(v6.has('2001:db8::1')).toBe(true);
    expect(v6.has('127.0.0.1')).toBe(false);
  });
});

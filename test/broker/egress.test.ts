// The egress policy, end to end: a real daemon, a real tenant child, origins on
// 127.0.0.1 and ::1 only. The tenant catches its fetch's error and answers with it.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressPolicy } from '../../src/broker/egress.js';
import { parseCidr } from '../../src/net/cidr.js';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

const ADVICE = 'workers may not reach loopback, private, link-local or metadata addresses (allow a range with --egress-allow)';

/** Fetches ?url=… and answers with the status and body, or with the error it caught. */
const TENANT = `export default {
  async fetch(request) {
    const target = new URL(request.url).searchParams.get('url');
    try {
      const res = await fetch(target);
      return new Response(res.status + ' ' + await res.text());
    } catch (e) {
      return new Response(e.name + ': ' + e.message);
    }
  },
};
`;

let origin: Origin;
let v6: Server;
let v6Port: number;
let v6Hits = 0;
let originHits = 0;
/** The daemon without --egress-allow. */
let closed: TestDaemon;
/** The daemon with --egress-allow 127.0.0.1/32. */
let open: TestDaemon;
/** The daemon with --egress-allow 127.0.0.1/32,::1. */
let both: TestDaemon;

beforeAll(async () => {
  v6 = createServer((req, res) => {
    v6Hits++;
    req.resume();
    res.end('reached ::1');
  });
  await new Promise<void>((resolve) => v6.listen(0, '::1', resolve));
  v6Port = (v6.address() as AddressInfo).port;
  origin = await startOrigin((req, res) => {
    originHits++;
    req.resume();
    const path = new URL(req.url ?? '/', 'http://origin').pathname;
    if (path === '/to-v6') return void res.writeHead(302, { location: `http://[::1]:${v6Port}/landed` }).end();
    if (path === '/to-admin') return void res.writeHead(302, { location: `http://127.0.0.1:${open.adminPort}/workers` }).end();
    res.end('hello from 127.0.0.1');
  });
  const dir = writeScripts({ 'out.mjs': TENANT });
  closed = await startTestDaemon(dir);
  open = await startTestDaemon(dir, { egressAllow: '127.0.0.1/32' });
  both = await startTestDaemon(dir, { egressAllow: '127.0.0.1/32,::1' });
});

afterAll(async () => {
  await closeDaemons();
  await origin.close();
  await new Promise<void>((resolve) => v6.close(() => resolve()));
});

async function tenantFetch(daemon: TestDaemon, url: string): Promise<string> {
  const res = await daemon.fetchText('out', `/?url=${encodeURIComponent(url)}`);
  expect(res.status).toBe(200);
  return res.text;
}

describe('egress by default', () => {
  it('denies a loopback address with a TypeError the tenant can catch, before connecting', async () => {
    const hits = originHits;
    const url = `${origin.url}/x`;
    expect(await tenantFetch(closed, url)).toBe(`TypeError: fetch to ${url} denied: 127.0.0.1 is a loopback address; ${ADVICE}`);
    expect(originHits).toBe(hits);
    const warning = closed.logs.find((r) => r.msg === 'egress denied' && r.url === url);
    expect(warning).toMatchObject({ level: 'warn', worker: 'out', destination: origin.url, reason: 'address' });
    expect(warning?.requestId).toEqual(expect.any(String));
  });

  it('denies a hostname by the addresses it resolves to', async () => {
    const url = `http://localhost:${origin.port}/x`;
    const text = await tenantFetch(closed, url);
    // localhost may resolve to either loopback address first, depending on the machine.
    expect(text).toMatch(
      new RegExp(`^TypeError: fetch to ${escape(url)} denied: localhost resolves to (127\\.0\\.0\\.1|::1), a loopback address; ${escape(ADVICE)}$`),
    );
  });

  it('denies ::1, 0.0.0.0 and an IPv4-mapped loopback address', async () => {
    const hits = v6Hits;
    const v6Url = `http://[::1]:${v6Port}/`;
    expect(await tenantFetch(closed, v6Url)).toBe(`TypeError: fetch to ${v6Url} denied: ::1 is a loopback address; ${ADVICE}`);
    expect(v6Hits).toBe(hits);
    const any = `http://0.0.0.0:${origin.port}/`;
    expect(await tenantFetch(closed, any)).toBe(
      `TypeError: fetch to ${any} denied: 0.0.0.0 is an unspecified address (it means this host); ${ADVICE}`,
    );
    // The URL parser writes ::ffff:127.0.0.1 as ::ffff:7f00:1.
    const mapped = `http://[::ffff:7f00:1]:${origin.port}/`;
    expect(await tenantFetch(closed, `http://[::ffff:127.0.0.1]:${origin.port}/`)).toBe(
      `TypeError: fetch to ${mapped} denied: ::ffff:7f00:1 is a loopback address (IPv4-mapped 127.0.0.1); ${ADVICE}`,
    );
  });

  it('denies the metadata address by name without waiting for it', async () => {
    const url = 'http://169.254.169.254/latest/meta-data/';
    expect(await tenantFetch(closed, url)).toBe(
      `TypeError: fetch to ${url} denied: 169.254.169.254 is the instance metadata service of AWS, GCP, Azure, Oracle Cloud and OpenStack; ${ADVICE}`,
    );
  });

  it('denies schemes other than http: and https:', async () => {
    for (const url of ['file:///etc/passwd', 'data:text/plain,hello', 'ftp://127.0.0.1/']) {
      expect(await tenantFetch(closed, url)).toMatch(/^TypeError: /);
    }
  });
});

describe('egress with --egress-allow', () => {
  it('reaches an allowed origin', async () => {
    expect(await tenantFetch(open, `${origin.url}/x`)).toBe('200 hello from 127.0.0.1');
  });

  it('denies a redirect from the allowed origin to ::1, which is not allowed', async () => {
    const hits = v6Hits;
    const url = `${origin.url}/to-v6`;
    expect(await tenantFetch(open, url)).toBe(
      `TypeError: fetch to ${url} denied: redirected to http://[::1]:${v6Port}, and ::1 is a loopback address; ${ADVICE}`,
    );
    expect(v6Hits).toBe(hits);
    // The same redirect, with ::1 allowed too, lands.
    expect(await tenantFetch(both, url)).toBe('200 reached ::1');
    expect(v6Hits).toBe(hits + 1);
  });

  it('connects to the checked address but keeps the hostname for TLS', async () => {
    // A self-signed certificate for localhost: the fetch fails verification, after the
    // handshake has shown which name the client asked for.
    const seen: string[] = [];
    const fixture = (name: string) => readFileSync(new URL(`../fixtures/tls/${name}`, import.meta.url));
    const tls = createTlsServer({
      key: fixture('localhost.key'),
      cert: fixture('localhost.crt'),
      SNICallback: (servername, done) => {
        seen.push(servername);
        done(null);
      },
    });
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://localhost:${(tls.address() as AddressInfo).port}/`;
      expect(await tenantFetch(both, url)).toBe(`TypeError: fetch ${url} failed: self-signed certificate`);
      expect(seen).toEqual(['localhost']);
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((resolve) => tls.close(() => resolve()));
    }
  });

  it('denies the admin API, directly and through a redirect', async () => {
    const url = `http://127.0.0.1:${open.adminPort}/workers`;
    expect(await tenantFetch(open, url)).toBe(`TypeError: fetch to ${url} denied: it is the edgeproc admin API`);
    expect(await tenantFetch(open, `${origin.url}/to-admin`)).toBe(
      `TypeError: fetch to ${origin.url}/to-admin denied: redirected to http://127.0.0.1:${open.adminPort}, and it is the edgeproc admin API`,
    );
    expect(open.logs.find((r) => r.msg === 'egress denied' && r.url === url)).toMatchObject({ worker: 'out', reason: 'admin-api' });
  });

  it("denies the daemon's own front door", async () => {
    const url = `${open.url}/`;
    expect(await tenantFetch(open, url)).toBe(
      `TypeError: fetch to ${url} denied: it is this edgeproc daemon's own front door; a worker may not fetch through the daemon that runs it`,
    );
  });
});

describe('EgressPolicy', () => {
  const policy = new EgressPolicy([parseCidr('10.0.0.0/8')!], { host: '127.0.0.1', port: 8787, adminPort: 8788 });

  it('refuses every scheme but http: and https:', () => {
    expect(policy.checkScheme('https://example.com/')).toBeNull();
    expect(policy.checkScheme('http://example.com/')).toBeNull();
    expect(policy.checkScheme('data:text/plain,hi')).toBe('data: URLs are not allowed; workers may fetch only http: and https: URLs');
    expect(policy.checkScheme('blob:https://example.com/x')).toBe('blob: URLs are not allowed; workers may fetch only http: and https: URLs');
    expect(policy.checkScheme('not a url')).toBe('it is not a valid URL');
  });

  it('refuses the admin port on any address, even an allowed or public one', () => {
    expect(policy.check('10.1.2.3', 8788)).toEqual({ reason: 'admin-api' });
    expect(policy.check('8.8.8.8', 8788)).toEqual({ reason: 'admin-api' });
  });

  it('refuses the front door port only on local addresses', () => {
    expect(policy.check('127.0.0.1', 8787)).toEqual({ reason: 'front-door' });
    expect(policy.check('::ffff:127.0.0.1', 8787)).toEqual({ reason: 'front-door' });
    expect(policy.check('8.8.8.8', 8787)).toBeNull();
  });

  it('opens allowed ranges and public addresses, nothing else', () => {
    expect(policy.check('10.9.9.9', 443)).toBeNull();
    expect(policy.check('::ffff:10.9.9.9', 443)).toBeNull();
    expect(policy.check('1.1.1.1', 443)).toBeNull();
    expect(policy.check('192.168.0.1', 443)).toMatchObject({ reason: 'address', class: { category: 'private' } });
  });

  it('learns the ports the daemon got when it was asked for port 0', () => {
    const late = new EgressPolicy([], { host: '127.0.0.1', port: 0, adminPort: 0 });
    expect(late.check('8.8.8.8', 0)).toBeNull();
    late.listening(40001, 40002);
    expect(late.check('8.8.8.8', 40002)).toEqual({ reason: 'admin-api' });
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

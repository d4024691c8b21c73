/**
 * Attack: reach services on the machine or its network through fetch():
 * another process on a loopback port, the same over IPv6 and through an
 * IPv4-mapped address, 0.0.0.0, a private address, the cloud metadata
 * endpoint. The egress policy refuses each by address before connecting; the
 * fetch rejects in the tenant with a TypeError that starts
 * `fetch to <url> denied:`. With the range allowed (--egress-allow) the same
 * origin is reached, so it was the policy that said no.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

let origin: Origin | null = null;
afterEach(async () => {
  await closeDaemons();
  await origin?.close();
  origin = null;
});

const ADVICE = 'workers may not reach loopback, private, link-local or metadata addresses (allow a range with --egress-allow)';

describe('fetch() of loopback and other non-public addresses', () => {
  it('is denied in the tenant, naming the address and what it is', async () => {
    origin = await startOrigin((_req, res) => res.end('a local service'));
    const daemon = await startHostileDaemon(['fetch-url']);
    const port = origin.port;
    const cases: Array<[string, string]> = [
      [`http://127.0.0.1:${port}/`, `127.0.0.1 is a loopback address; ${ADVICE}`],
      [`http://127.1.2.3:${port}/`, `127.1.2.3 is a loopback address; ${ADVICE}`],
      [`http://[::1]:${port}/`, `::1 is a loopback address; ${ADVICE}`],
      [`http://[::ffff:127.0.0.1]:${port}/`, `::ffff:7f00:1 is a loopback address (IPv4-mapped 127.0.0.1); ${ADVICE}`],
      [`http://0.0.0.0:${port}/`, `0.0.0.0 is an unspecified address (it means this host); ${ADVICE}`],
      ['http://10.1.2.3/', `10.1.2.3 is a private address; ${ADVICE}`],
      ['http://169.254.169.254/latest/meta-data/', `169.254.169.254 is the instance metadata service of AWS, GCP, Azure, Oracle Cloud and OpenStack; ${ADVICE}`],
    ];
    for (const [url, why] of cases) {
      const res = await attack(daemon, 'fetch-url', `/?url=${encodeURIComponent(url)}`);
      // The message names the URL as parsed: [::ffff:127.0.0.1] reads [::ffff:7f00:1].
      expect(res.text).toBe(`rejected TypeError: fetch to ${new URL(url).href} denied: ${why}`);
    }
    await expectDaemonServes(daemon);
  });

  it('reaches the same origin once its range is allowed', async () => {
    origin = await startOrigin((_req, res) => res.end('a local service'));
    const daemon = await startHostileDaemon(['fetch-url'], { egressAllow: '127.0.0.1/32' });
    const res = await attack(daemon, 'fetch-url', `/?url=${encodeURIComponent(`${origin.url}/`)}`);
    expect(res.text).toBe('fetched 200: a local service');
    await expectDaemonServes(daemon);
  });
});

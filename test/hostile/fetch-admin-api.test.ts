/**
 * Attack: fetch the daemon's admin API (deploy, remove, stats) from a tenant,
 * by address and by name, and the daemon's own front door. The egress policy
 * closes the admin port whatever --egress-allow says, and the front door (a
 * worker fetching through the daemon that runs it could loop); the fetch
 * rejects in the tenant with a TypeError saying why.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('fetch() of the admin API and the daemon itself', () => {
  it('is denied even with loopback allowed', async () => {
    const daemon = await startHostileDaemon(['fetch-url'], { egressAllow: '127.0.0.0/8,::1/128' });
    const admin = [`http://127.0.0.1:${daemon.adminPort}/workers`, `http://localhost:${daemon.adminPort}/workers`, `http://127.9.9.9:${daemon.adminPort}/workers`];
    for (const url of admin) {
      const res = await attack(daemon, 'fetch-url', `/?url=${encodeURIComponent(url)}`);
      expect(res.text).toBe(`rejected TypeError: fetch to ${url} denied: it is the edgeproc admin API`);
    }
    const frontDoor = `http://127.0.0.1:${daemon.port}/`;
    const res = await attack(daemon, 'fetch-url', `/?url=${encodeURIComponent(frontDoor)}`);
    expect(res.text).toBe(
      `rejected TypeError: fetch to ${frontDoor} denied: it is this edgeproc daemon's own front door; a worker may not fetch through the daemon that runs it`,
    );
    expect(daemon.logs.filter((r) => r.msg === 'egress denied' && r.worker === 'fetch-url')).toHaveLength(4);
    await expectDaemonServes(daemon);
  });
});

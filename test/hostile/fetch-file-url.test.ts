/**
 * Attack: read the machine's files, or anything that is not the network,
 * through fetch(): file:, data:, blob:, ftp: and javascript: URLs, directly
 * and through a Request. The runner refuses every scheme but http: and https:
 * inside the tenant; the daemon refuses them again (forged-subrequest).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('fetch() of file: and other non-HTTP URLs', () => {
  it('rejects inside the tenant with a TypeError naming the scheme', async () => {
    const daemon = await startHostileDaemon(['fetch-url']);
    const cases: Array<[string, string]> = [
      ['file:///etc/passwd', 'file:'],
      ['file:///proc/self/environ', 'file:'],
      ['data:text/plain,hello', 'data:'],
      ['blob:nodedata:00000000-0000-0000-0000-000000000000', 'blob:'],
      ['ftp://127.0.0.1/', 'ftp:'],
      ['javascript:alert(1)', 'javascript:'],
    ];
    for (const [url, scheme] of cases) {
      for (const via of ['url', 'request']) {
        const res = await attack(daemon, 'fetch-url', `/?via=${via}&url=${encodeURIComponent(url)}`);
        expect({ url, via, text: res.text }).toEqual({ url, via, text: `rejected TypeError: fetch: ${scheme} URLs are not supported, only http: and https:` });
      }
    }
    await expectDaemonServes(daemon);
  });
});

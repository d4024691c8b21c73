/**
 * Attack: get past the runner's own checks on fetch() by subverting it (the
 * tenant replaces JSON.stringify, which the frame encoder calls) and asking the
 * daemon for file:///etc/passwd or its own admin API. The daemon performs every
 * subrequest and trusts no frame: it refuses both itself.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a forged subrequest', () => {
  it('for a file or the admin API is refused by the daemon', async () => {
    const daemon = await startHostileDaemon(['forged-subrequest'], { egressAllow: '127.0.0.0/8' });
    const file = await attack(daemon, 'forged-subrequest', `/?to=${encodeURIComponent('file:///etc/passwd')}`);
    expect(file.text).toBe(
      'rejected TypeError: fetch to file:///etc/passwd denied: file: URLs are not allowed; workers may fetch only http: and https: URLs',
    );
    const adminUrl = `http://127.0.0.1:${daemon.adminPort}/workers`;
    const admin = await attack(daemon, 'forged-subrequest', `/?to=${encodeURIComponent(adminUrl)}`);
    expect(admin.text).toBe(`rejected TypeError: fetch to ${adminUrl} denied: it is the edgeproc admin API`);
    await expectDaemonServes(daemon);
  });

  it('naming a request that is not in flight is refused, not counted against nothing', async () => {
    const daemon = await startHostileDaemon(['forged-subrequest']);
    const stale = await attack(daemon, 'forged-subrequest', '/?parent=999999');
    expect(stale.text).toBe(
      'rejected TypeError: fetch to http://192.0.2.1/innocent denied: it names no request in flight; a worker fetches only while handling a request or its waitUntil work',
    );
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'subrequest refused: no request in flight', worker: 'forged-subrequest', parent: 999999 }));
    await expectDaemonServes(daemon);
  });
});

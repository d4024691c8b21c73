/**
 * Attack: read import.meta for what Node puts there for its own modules (the
 * file's URL and path, a resolve() that reaches the module loader). A module
 * worker is evaluated by the runner with no import.meta initialiser: it is an
 * empty object with no prototype.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('import.meta', () => {
  it('is empty: no url, no path, no resolve()', async () => {
    const daemon = await startHostileDaemon(['import-meta']);
    const res = await attack(daemon, 'import-meta');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      keys: [],
      prototype: null,
      url: 'undefined',
      resolve: 'undefined',
      filename: 'undefined',
      dirname: 'undefined',
    });
    await expectDaemonServes(daemon);
  });
});

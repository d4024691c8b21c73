/**
 * Attack: throw what is not an Error (null, a Symbol, a Proxy whose every trap
 * throws), or an Error that throws when it is read (its name, stack or message
 * getter), or one with a 5 MB message. Before the runner's description of an
 * exception was made total, each of the hostile ones left the request
 * unanswered until its wall-time limit and cost the instance; now every one is
 * a 500 naming what was thrown, and the instance serves on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('throwing non-Errors and hostile Errors', () => {
  it('each gets a 500 naming what was thrown, at once, from the same instance', async () => {
    const daemon = await startHostileDaemon(['throw-non-errors']);
    expect(await daemon.fetchText('throw-non-errors', '/')).toMatchObject({ status: 200, text: 'ok' });
    const pid = instancePid(daemon, 'throw-non-errors');
    const cases: Array<[string, string]> = [
      ['/null', 'Uncaught null'],
      ['/undefined', 'Uncaught undefined'],
      ['/symbol', 'Uncaught a symbol'],
      ['/string', 'Uncaught a string ("a thrown string")'],
      ['/number', 'Uncaught a number'],
      ['/object', 'Uncaught an object (Object)'],
      ['/proxy', 'Uncaught a Proxy'],
      ['/proxy-of-error', 'Uncaught a Proxy'],
      ['/name-getter', 'Uncaught an exception that threw when it was read'],
      ['/stack-getter', 'TypeError: with a hostile stack'],
      ['/message-object', 'Uncaught an exception that threw when it was read'],
      ['/async-null', 'Uncaught null'],
    ];
    for (const [path, thrown] of cases) {
      const started = Date.now();
      expectErrorResponse(await attack(daemon, 'throw-non-errors', path), 500, `Worker threw exception: ${thrown}`);
      // Generous: proves it was not left to the wall-time limit (5 s here).
      expect(Date.now() - started).toBeLessThan(4000);
    }
    const huge = await attack(daemon, 'throw-non-errors', '/huge-message');
    expectErrorResponse(huge, 500, `Worker threw exception: RangeError: ${'x'.repeat(1024 - 'RangeError: '.length)}… (${5_000_000 - 1024 + 'RangeError: '.length} more characters)`);
    expect(instancePid(daemon, 'throw-non-errors')).toBe(pid);
    await expectDaemonServes(daemon);
  });
});

/**
 * Attack: a script that only ever returns something other than a Response.
 * Every request gets 500 saying what the handler returned; the instance is
 * not replaced for it, and nobody else notices.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a handler that returns no Response', () => {
  it('gets 500 naming what it returned, every time', async () => {
    const daemon = await startHostileDaemon(['non-response']);
    expect(await daemon.fetchText('non-response', '/')).toMatchObject({ status: 200, text: 'ok' });
    const pid = instancePid(daemon, 'non-response');
    const cases: Array<[string, string]> = [
      ['/object', 'an object (Object)'],
      ['/string', 'a string ("hello, world")'],
      ['/number', 'a number'],
      ['/null', 'null'],
      ['/nothing', 'undefined'],
      ['/promise-of-object', 'an object (Object)'],
      ['/function', 'a function'],
      ['/request', 'an object (Request)'],
      ['/array', 'an object (Array)'],
      ['/thenable', 'a string ("not a response either")'],
    ];
    for (const [path, what] of cases) {
      expectErrorResponse(
        await attack(daemon, 'non-response', path),
        500,
        `Worker threw exception: TypeError: the handler must return a Response (or a Promise of one), it returned ${what}`,
      );
    }
    expect(instancePid(daemon, 'non-response')).toBe(pid);
    expect(daemon.broker.stats().find((w) => w.name === 'non-response')).toMatchObject({ errors: cases.length, limitBreaches: 0 });
    await expectDaemonServes(daemon);
  });
});

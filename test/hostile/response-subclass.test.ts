/**
 * Attack: hand the runner a Response that lies: a subclass whose getters claim
 * status 999 or 101, throw, or return headers HTTP cannot carry; an object made
 * from Response.prototype; a Proxy of a Response. The runner reads status and
 * headers from the Response's internal state, as Workers does, and recognises
 * a Response by that state: the lies are not sent, the fakes get 500.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

const notAResponse = (what: string) =>
  `Worker threw exception: TypeError: the handler must return a Response (or a Promise of one), it returned ${what}`;

describe('a Response subclass with lying getters', () => {
  it('is sent as it really is', async () => {
    const daemon = await startHostileDaemon(['response-subclass']);
    expect(await attack(daemon, 'response-subclass', '/status-999')).toMatchObject({ status: 200, text: 'real body' });
    // undici's own constructor reads the status through the getter, and refuses 101 there.
    expectErrorResponse(
      await attack(daemon, 'response-subclass', '/status-101'),
      500,
      'Worker threw exception: TypeError: Response constructor: Invalid response status code 101',
    );
    const throwing = await attack(daemon, 'response-subclass', '/headers-throw');
    expect(throwing).toMatchObject({ status: 200, text: 'real body' });
    expect(throwing.headers['x-real']).toBe('yes');
    const junk = await attack(daemon, 'response-subclass', '/headers-junk');
    expect(junk).toMatchObject({ status: 200, text: 'real body' });
    expect([junk.headers['x-real'], junk.headers['bad name'], junk.headers['x-crlf'], junk.headers['set-cookie']]).toEqual(['yes', undefined, undefined, undefined]);
    const statusText = await attack(daemon, 'response-subclass', '/status-text-crlf');
    expect(statusText).toMatchObject({ status: 200, text: 'real body' });
    expect(statusText.headers['set-cookie']).toBeUndefined();
    await expectDaemonServes(daemon);
  });
});

describe('something that only looks like a Response', () => {
  it('gets 500 saying what it was', async () => {
    const daemon = await startHostileDaemon(['response-subclass']);
    expectErrorResponse(await attack(daemon, 'response-subclass', '/object-create'), 500, notAResponse('an object (Response)'));
    expectErrorResponse(await attack(daemon, 'response-subclass', '/proxy'), 500, notAResponse('a Proxy'));
    // Returning it from an async function looks up `then` on it: its trap throws, and that is the error.
    expectErrorResponse(await attack(daemon, 'response-subclass', '/proxy-trap-throws'), 500, 'Worker threw exception: Error: trap');
    expect(await daemon.fetchText('response-subclass', '/')).toMatchObject({ status: 200, text: 'ok' });
    await expectDaemonServes(daemon);
  });
});

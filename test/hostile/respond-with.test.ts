/**
 * Attack: a service worker hands respondWith() a Proxy of a Response, a promise
 * rejected with a Proxy whose every trap throws, a plain object; or calls
 * respondWith() twice, or not at all. Each ends in a 500 that says what
 * happened; none leaves the request hanging until its wall-time limit (which a
 * Proxy did before the runner learnt to describe one without touching it).
 */
import { afterEach, describe, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('respondWith() given the wrong thing', () => {
  it('answers 500 with what went wrong, each time at once', async () => {
    const daemon = await startHostileDaemon(['respond-with.js']);
    const cases: Array<[string, string]> = [
      ['/proxy', 'Worker threw exception: TypeError: the handler must return a Response (or a Promise of one), it returned a Proxy'],
      ['/proxy-rejection', 'Worker threw exception: Uncaught a Proxy'],
      ['/plain-object', 'Worker threw exception: TypeError: the handler must return a Response (or a Promise of one), it returned an object (Object)'],
      ['/twice', 'Worker threw exception: InvalidStateError: respondWith() was already called for this request'],
      ['/never', 'Worker threw exception: TypeError: No response: no fetch listener called event.respondWith()'],
    ];
    for (const [path, reason] of cases) expectErrorResponse(await attack(daemon, 'respond-with', path), 500, reason);
    await expectDaemonServes(daemon);
  });
});

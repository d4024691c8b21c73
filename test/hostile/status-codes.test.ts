/**
 * Attack: respond with a status a Response may not have (101 would tell the
 * client to switch protocols on the daemon's connection, 999 is no status at
 * all), a body on 204, a status text with CR LF. The Response constructor
 * refuses each in the tenant: 500 with its message. (A status smuggled past the
 * constructor is in response-subclass and forged-response-head.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

const OUT_OF_RANGE = 'Worker threw exception: RangeError: init["status"] must be in the range of 200 to 599, inclusive.';

describe('statuses outside 200–599', () => {
  it('are refused in the tenant with 500; the edges of the range are served', async () => {
    const daemon = await startHostileDaemon(['status-codes']);
    for (const status of [101, 103, 199, 600, 999, 0]) expectErrorResponse(await attack(daemon, 'status-codes', `/${status}`), 500, OUT_OF_RANGE);
    expectErrorResponse(
      await attack(daemon, 'status-codes', '/204-with-body'),
      500,
      'Worker threw exception: TypeError: Response constructor: Invalid response status code 204',
    );
    expectErrorResponse(
      await attack(daemon, 'status-codes', '/status-text-crlf'),
      500,
      'Worker threw exception: TypeError: Invalid statusText',
    );
    expect(await attack(daemon, 'status-codes', '/599')).toMatchObject({ status: 599, text: 'status 599' });
    expect(await attack(daemon, 'status-codes', '/200')).toMatchObject({ status: 200, text: 'status 200' });
    await expectDaemonServes(daemon);
  });
});

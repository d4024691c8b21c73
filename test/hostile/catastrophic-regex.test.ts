/**
 * Attack: a regular expression with exponential backtracking (ReDoS). V8's
 * regexp engine cannot be interrupted from JavaScript; the watchdog stops it
 * from outside at the CPU limit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectCpuLimitResponse, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('catastrophic backtracking', () => {
  it('is stopped by the CPU limit with 503', async () => {
    const daemon = await startHostileDaemon(['catastrophic-regex']);
    const res = await attack(daemon, 'catastrophic-regex', '/backtrack');
    expectCpuLimitResponse(res, 'catastrophic-regex');
    expect(await daemon.fetchText('catastrophic-regex', '/')).toMatchObject({ status: 200, text: 'ok' });
    await expectDaemonServes(daemon);
  });
});

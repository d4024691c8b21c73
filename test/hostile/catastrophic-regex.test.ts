/**
 * Attack: a regular expression with exponential backtracking (ReDoS). V8's
 * regexp engine cannot be interrupted from JavaScript; the watchdog stops it
 * from outside at the CPU limit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, requestIdOf, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('catastrophic backtracking', () => {
  it('is stopped by the CPU limit with 503', async () => {
    const daemon = await startHostileDaemon(['catastrophic-regex']);
    const res = await attack(daemon, 'catastrophic-regex', '/backtrack');
    expect(res.status).toBe(503);
    expect(res.text).toMatch(
      new RegExp(
        `^Worker "catastrophic-regex" exceeded its CPU time limit: this request used \\d+ ms of CPU; the limit is 200 ms per request \\(--cpu-ms\\)\\.\\n\\nrequest id: ${requestIdOf(res)}\\n$`,
      ),
    );
    expect(await daemon.fetchText('catastrophic-regex', '/')).toMatchObject({ status: 200, text: 'ok' });
    await expectDaemonServes(daemon);
  });
});

/**
 * Attack: evaluate a string as code some other way than the Function
 * constructor: direct and indirect eval, string timers, import() of a data: URL.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

const REFUSED = 'EvalError: Code generation from strings disallowed for this context';

describe('eval and its relatives', () => {
  it('all refuse, each with its own clear error', async () => {
    const daemon = await startHostileDaemon(['eval']);
    const res = await attack(daemon, 'eval');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      eval: REFUSED,
      'indirect eval': REFUSED,
      'Reflect.apply(eval)': REFUSED,
      'setTimeout(string)': 'TypeError: setTimeout: the callback must be a function (code strings are not evaluated)',
      'setInterval(string)': 'TypeError: setInterval: the callback must be a function (code strings are not evaluated)',
      'import(data: URL)':
        'TypeError: import of "data:text/javascript,export default typeof process" is not available in edgeproc: a worker is a single script; bundle its dependencies into it',
    });
    await expectDaemonServes(daemon);
  });
});

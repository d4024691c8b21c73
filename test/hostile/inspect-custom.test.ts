/**
 * Attack: console.log an object with a [Symbol.for('nodejs.util.inspect.custom')]
 * method. Node's util.inspect calls it with util.inspect itself and its options
 * object: a Node function in tenant hands. The tenant console formats with
 * customInspect off (Workers does not honour that symbol either), so the method
 * is never called and the object is logged as it is.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a custom inspector logged with console.log', () => {
  it('is never called: no Node function reaches the tenant', async () => {
    const daemon = await startHostileDaemon(['inspect-custom']);
    expect(await attack(daemon, 'inspect-custom')).toMatchObject({ status: 200, text: 'never called' });
    expect(daemon.logs.filter((r) => r.source === 'tenant' && r.worker === 'inspect-custom').map((r) => r.msg)).toEqual([
      '{ [Symbol(nodejs.util.inspect.custom)]: [Function: [nodejs.util.inspect.custom]] }',
    ]);
    await expectDaemonServes(daemon);
  });
});

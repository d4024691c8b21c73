/**
 * Attack: reach `process` (or anything of Node) by building a function from a
 * string through the Function constructor and its async and generator siblings,
 * found along every constructor chain a tenant can walk. Children run with
 * --disallow-code-generation-from-strings: each attempt throws EvalError, as on Workers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

const REFUSED = 'EvalError: Code generation from strings disallowed for this context';

describe('constructor chains to the Function constructor', () => {
  it('refuse every attempt in a module worker and in a service worker, and nothing else is disturbed', async () => {
    const daemon = await startHostileDaemon(['constructor-chains', 'constructor-chains-sw.js']);

    const module = await attack(daemon, 'constructor-chains');
    expect(module.status).toBe(200);
    const moduleProbes = JSON.parse(module.text) as Record<string, string>;
    expect(Object.keys(moduleProbes)).toHaveLength(19);
    expect(moduleProbes).toEqual(Object.fromEntries(Object.keys(moduleProbes).map((name) => [name, REFUSED])));

    const serviceWorker = await attack(daemon, 'constructor-chains-sw');
    expect(serviceWorker.status).toBe(200);
    expect(JSON.parse(serviceWorker.text)).toEqual({
      'this is globalThis': 'true',
      'this.constructor.constructor': REFUSED,
      'event.constructor.constructor': REFUSED,
      'event.respondWith.constructor': REFUSED,
      'arguments.callee.constructor': REFUSED,
      'globalThis.constructor.constructor': REFUSED,
    });
    await expectDaemonServes(daemon);
  });
});

/**
 * Attack: overwrite or patch the globals a tenant was given (fetch, Response,
 * Headers, their prototypes, crypto.subtle) to hijack them for later requests.
 * They are locked and frozen: each write throws in a module (strict code), and
 * a later request on the same instance still sees the originals. Only new
 * globals of the tenant's own can be added, and only it sees them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, instancePid, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('overwriting the frozen globals', () => {
  it('throws for every built-in, and leaves the originals for the next request', async () => {
    const daemon = await startHostileDaemon(['frozen-globals']);
    const res = await attack(daemon, 'frozen-globals', '/patch');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      'globalThis.fetch =': "TypeError: Cannot assign to read only property 'fetch' of object '#<Object>'",
      'globalThis.Response =': "TypeError: Cannot assign to read only property 'Response' of object '#<Object>'",
      'defineProperty(globalThis, "Headers")': 'TypeError: Cannot redefine property: Headers',
      'delete globalThis.fetch': "TypeError: Cannot delete property 'fetch' of #<Object>",
      // V8 names the receiver by undici's class as the bundler named it (see test/runner/globals.test.ts).
      'Response.prototype.json =': "TypeError: Cannot assign to read only property 'json' of object '#<_Response>'",
      'Headers.prototype.get =': "TypeError: Cannot assign to read only property 'get' of object '#<_Headers>'",
      'Object.setPrototypeOf(Response.prototype, null)': 'TypeError: #<_Response> is not extensible',
      'crypto.subtle.digest =': "TypeError: Cannot assign to read only property 'digest' of object '#<SubtleCrypto>'",
      'console.log =': "TypeError: Cannot assign to read only property 'log' of object '#<Object>'",
      'a new global': 'written',
    });
    const pid = instancePid(daemon, 'frozen-globals');
    const after = await daemon.fetchText('frozen-globals', '/check');
    expect(instancePid(daemon, 'frozen-globals')).toBe(pid);
    expect(JSON.parse(after.text)).toEqual({
      fetch: true,
      Response: true,
      Headers: true,
      'Response.prototype.json': true,
      'Headers.prototype.get': true,
      'crypto.subtle.digest': true,
      'a new global': 1,
    });
    await expectDaemonServes(daemon);
  });
});

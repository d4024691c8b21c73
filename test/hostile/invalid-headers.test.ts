/**
 * Attack: build headers HTTP cannot carry (a name with a space or a colon, a
 * value with CR LF or NUL, one beyond Latin-1) to split the response or
 * inject headers. The Headers API refuses each inside the tenant. (Headers
 * smuggled past it are in response-subclass and forged-response-head.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('invalid header names and values', () => {
  it('are refused by the Headers API inside the tenant', async () => {
    const daemon = await startHostileDaemon(['invalid-headers']);
    const res = await attack(daemon, 'invalid-headers');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      'name with a space': 'TypeError: Headers.append: "bad name" is an invalid header name.',
      'name with a colon': 'TypeError: Headers.append: "x:y" is an invalid header name.',
      'empty name': 'TypeError: Headers.append: "" is an invalid header name.',
      'value with CR LF': 'TypeError: Headers.append: "one\r\nset-cookie: stolen=1" is an invalid header value.',
      'value with NUL': 'TypeError: Headers.append: "one\u0000two" is an invalid header value.',
      'value beyond Latin-1':
        'TypeError: Cannot convert argument to a ByteString because the character at index 5 has a value of 8364 which is greater than 255.',
      'set on a response': 'TypeError: Headers.set: "a\nb" is an invalid header value.',
      'value with leading spaces (normalised)': 'padded',
    });
    await expectDaemonServes(daemon);
  });
});

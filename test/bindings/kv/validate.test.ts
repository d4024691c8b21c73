// Every KV argument error, with the exact text a Workers tenant sees (workerd's kv.c++ and the KV
// service as miniflare's validator reproduces it), its error name and its code.
import { describe, expect, it } from 'vitest';
import { KvError } from '../../../src/bindings/kv/errors.js';
import { toWorkersInt, validateKey, validateList, validatePut, type KvMethod } from '../../../src/bindings/kv/validate.js';
import { KV_LIMITS } from '../../../src/limits.js';

const NOW_MS = 1_700_000_000_500; // half a second into a second: whole seconds count
const NOW = 1_700_000_000;
const VALUE = Buffer.from('value');

function failure(run: () => unknown): KvError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(KvError);
    return error as KvError;
  }
  throw new Error('expected a KvError, nothing was thrown');
}

function expectInvalid(run: () => unknown, message: string, errorName: 'Error' | 'TypeError' = 'Error'): void {
  const error = failure(run);
  expect(error.message).toBe(message);
  expect(error.errorName).toBe(errorName);
  expect(error.code).toBe('ERR_KV_INVALID');
  expect(error.errorClass).toBe('user');
}

describe('keys', () => {
  it.each<KvMethod>(['GET', 'PUT', 'DELETE'])('%s: empty, "." and ".." are TypeErrors, as workerd throws them', (method) => {
    expectInvalid(() => validateKey(method, ''), 'Key name cannot be empty.', 'TypeError');
    expectInvalid(() => validateKey(method, '.'), '"." is not allowed as a key name.', 'TypeError');
    expectInvalid(() => validateKey(method, '..'), '".." is not allowed as a key name.', 'TypeError');
  });

  it.each<KvMethod>(['GET', 'PUT', 'DELETE'])('%s: over 512 UTF-8 bytes is a 414 naming the method', (method) => {
    expectInvalid(() => validateKey(method, 'x'.repeat(513)), `KV ${method} failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.`);
  });

  it('counts UTF-8 bytes, not UTF-16 units', () => {
    // 171 euro signs: 171 string units, 513 bytes.
    expectInvalid(() => validateKey('GET', '€'.repeat(171)), 'KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.');
    expect(() => validateKey('GET', '€'.repeat(170) + 'xx')).not.toThrow(); // 512 bytes
  });

  it('accepts 512 bytes, "...", ". " and keys with slashes', () => {
    for (const key of ['x'.repeat(512), '...', '. ', '/', 'a/../b']) expect(() => validateKey('PUT', key)).not.toThrow();
  });
});

describe('put: expirationTtl', () => {
  it.each([
    [0, 'Invalid expiration_ttl of 0. Please specify integer greater than 0.'],
    [-1, 'Invalid expiration_ttl of -1. Please specify integer greater than 0.'],
    [Number.NaN, 'Invalid expiration_ttl of 0. Please specify integer greater than 0.'],
    [0.9, 'Invalid expiration_ttl of 0. Please specify integer greater than 0.'],
    [30, 'Invalid expiration_ttl of 30. Expiration TTL must be at least 60.'],
    [59.99, 'Invalid expiration_ttl of 59. Expiration TTL must be at least 60.'],
  ])('%s is refused', (ttl, text) => {
    expectInvalid(() => validatePut('key', VALUE, { expirationTtl: ttl }, NOW_MS), `KV PUT failed: 400 ${text}`);
  });

  it('60 and more become an absolute expiration from the current whole second', () => {
    expect(validatePut('key', VALUE, { expirationTtl: 60 }, NOW_MS).expiration).toBe(NOW + 60);
    expect(validatePut('key', VALUE, { expirationTtl: 3600.7 }, NOW_MS).expiration).toBe(NOW + 3600);
  });

  it('wins over expiration when both are given, as on Workers', () => {
    expect(validatePut('key', VALUE, { expirationTtl: 120, expiration: 1 }, NOW_MS).expiration).toBe(NOW + 120);
  });

  it('outside int32 is a TypeError, as workerd converts it', () => {
    expectInvalid(
      () => validatePut('key', VALUE, { expirationTtl: 2 ** 31 }, NOW_MS),
      'Value out of range. Must be between -2147483648 and 2147483647 (inclusive).',
      'TypeError',
    );
  });
});

describe('put: expiration', () => {
  const past = 'Please specify integer greater than the current number of seconds since the UNIX epoch.';
  it.each([
    [0, `Invalid expiration of 0. ${past}`],
    [Number.NaN, `Invalid expiration of 0. ${past}`],
    [NOW - 1, `Invalid expiration of ${NOW - 1}. ${past}`],
    [NOW, `Invalid expiration of ${NOW}. ${past}`],
    [NOW + 1, `Invalid expiration of ${NOW + 1}. Expiration times must be at least 60 seconds in the future.`],
    [NOW + 30, `Invalid expiration of ${NOW + 30}. Expiration times must be at least 60 seconds in the future.`],
    [NOW + 59, `Invalid expiration of ${NOW + 59}. Expiration times must be at least 60 seconds in the future.`],
  ])('%s is refused', (expiration, text) => {
    expectInvalid(() => validatePut('key', VALUE, { expiration }, NOW_MS), `KV PUT failed: 400 ${text}`);
  });

  it('60 s ahead and later is kept as given (truncated to whole seconds)', () => {
    expect(validatePut('key', VALUE, { expiration: NOW + 60 }, NOW_MS).expiration).toBe(NOW + 60);
    expect(validatePut('key', VALUE, { expiration: NOW + 86_400.9 }, NOW_MS).expiration).toBe(NOW + 86_400);
  });

  it('none means the key never expires', () => {
    expect(validatePut('key', VALUE, {}, NOW_MS).expiration).toBeNull();
  });
});

describe('put: metadata', () => {
  it('over 1024 bytes of JSON is a 413 with the measured length', () => {
    // {"key":"xxx…"} is 10 bytes of JSON around the string.
    const metadata = { key: 'x'.repeat(1024 - 10 + 1) };
    expectInvalid(() => validatePut('key', VALUE, { metadata }, NOW_MS), 'KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024.');
  });

  it('counts bytes of the JSON text: 512 two-byte characters are too many', () => {
    expectInvalid(() => validatePut('key', VALUE, { metadata: 'é'.repeat(512) }, NOW_MS), 'KV PUT failed: 413 Metadata length of 1026 exceeds limit of 1024.');
  });

  it('exactly 1024 bytes is accepted and kept as JSON', () => {
    const metadata = { key: 'x'.repeat(1024 - 10) };
    expect(validatePut('key', VALUE, { metadata }, NOW_MS).metadataJson).toBe(JSON.stringify(metadata));
  });

  it('null, undefined and a function mean no metadata', () => {
    for (const metadata of [null, undefined, () => 1]) expect(validatePut('key', VALUE, { metadata }, NOW_MS).metadataJson).toBeNull();
  });

  it('a value JSON cannot hold is a TypeError', () => {
    const error = failure(() => validatePut('key', VALUE, { metadata: { n: 1n } }, NOW_MS));
    expect(error.errorName).toBe('TypeError');
    expect(error.message).toMatch(/^KV put\(\) metadata cannot be serialised as JSON: .*BigInt/);
  });

  it('is checked after the expiration, as the service checks them', () => {
    const metadata = 'x'.repeat(2000);
    expectInvalid(() => validatePut('key', VALUE, { metadata, expirationTtl: 1 }, NOW_MS), 'KV PUT failed: 400 Invalid expiration_ttl of 1. Expiration TTL must be at least 60.');
  });
});

describe('put: value', () => {
  it('25 MiB is accepted; one byte more is a 413 with the length', () => {
    const limit = KV_LIMITS.valueBytes;
    expect(limit).toBe(26_214_400);
    expect(validatePut('key', Buffer.alloc(limit), {}, NOW_MS).value.byteLength).toBe(limit);
    expectInvalid(() => validatePut('key', Buffer.alloc(limit + 1), {}, NOW_MS), 'KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400.');
  });

  it('takes a Uint8Array as the same bytes, and refuses anything else', () => {
    const view = new Uint8Array([0, 1, 2, 3]).subarray(1);
    expect([...validatePut('key', view, {}, NOW_MS).value]).toEqual([1, 2, 3]);
    expectInvalid(
      () => validatePut('key', 'text' as unknown as Buffer, {}, NOW_MS),
      'KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.',
      'TypeError',
    );
  });

  it('the key is checked first', () => {
    expectInvalid(() => validatePut('', Buffer.alloc(KV_LIMITS.valueBytes + 1), { expirationTtl: 1 }, NOW_MS), 'Key name cannot be empty.', 'TypeError');
  });
});

describe('list', () => {
  it('a limit over 1000 is a 400 reported as a GET (list is one), with the service\'s own wording', () => {
    expectInvalid(() => validateList({ limit: 1001 }), 'KV GET failed: 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000.');
  });

  it('1..1000 are kept; none, 0, negatives and NaN mean 1000, since workerd sends no limit then', () => {
    expect(validateList({ limit: 1 }).limit).toBe(1);
    expect(validateList({ limit: 1000 }).limit).toBe(1000);
    expect(validateList({ limit: 2.9 }).limit).toBe(2);
    for (const limit of [undefined, 0, -5, Number.NaN]) expect(validateList({ limit }).limit).toBe(1000);
  });

  it('a prefix over 512 bytes is a 414', () => {
    expectInvalid(() => validateList({ prefix: 'p'.repeat(513) }), 'KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.');
    expect(validateList({ prefix: 'p'.repeat(512) }).prefix).toBe('p'.repeat(512));
  });

  it('no prefix and no cursor are empty strings', () => {
    expect(validateList({})).toEqual({ prefix: '', limit: 1000, cursor: '' });
  });
});

describe('toWorkersInt', () => {
  it('converts as workerd converts an int option', () => {
    expect(toWorkersInt(Number.POSITIVE_INFINITY)).toBe(0);
    expect(toWorkersInt(Number.NEGATIVE_INFINITY)).toBe(0);
    expect(toWorkersInt('61')).toBe(61);
    expect(toWorkersInt(-1.9)).toBe(-1);
    expect(toWorkersInt(2 ** 31 - 1)).toBe(2 ** 31 - 1);
    expect(toWorkersInt(-(2 ** 31))).toBe(-(2 ** 31));
    expect(() => toWorkersInt(-(2 ** 31) - 1)).toThrow(KvError);
  });
});

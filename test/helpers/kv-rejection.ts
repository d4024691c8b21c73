/** Awaits a KV call that must fail and returns its KvError (the test fails if it resolves or throws anything else). */
import { expect } from 'vitest';
import { KvError } from '../../src/bindings/kv/errors.js';

export async function rejection(promise: Promise<unknown>): Promise<KvError> {
  const error = await promise.then(
    () => null,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(KvError);
  return error as KvError;
}

/**
 * The one error a KV call fails with. `code` says whose fault it is
 * (ERR_KV_INVALID: the tenant's arguments; ERR_KV_STORAGE: the store or the
 * machine); `errorName` says which constructor the tenant's promise rejects
 * with, because workerd throws TypeError for some argument errors (an empty key)
 * and Error for the ones its KV backend answers with a status (a key too long).
 */
import { EdgeprocError } from '../../errors.js';

export type KvErrorName = 'TypeError' | 'Error';

export class KvError extends EdgeprocError {
  readonly errorName: KvErrorName;

  constructor(
    code: 'ERR_KV_INVALID' | 'ERR_KV_STORAGE',
    message: string,
    options: { errorName?: KvErrorName; cause?: unknown } = {},
  ) {
    super(code, message, { cause: options.cause });
    this.name = 'KvError';
    this.errorName = options.errorName ?? 'Error';
  }
}

/** A tenant error workerd reports as `KV <METHOD> failed: <status> <text>` (an Error). */
export function kvStatusError(method: string, status: number, text: string): KvError {
  return new KvError('ERR_KV_INVALID', `KV ${method} failed: ${status} ${text}`);
}

/** A tenant error workerd throws before any request is made (a TypeError). */
export function kvTypeError(message: string): KvError {
  return new KvError('ERR_KV_INVALID', message, { errorName: 'TypeError' });
}

/**
 * Every failure edgeproc reports carries a stable code. `user` errors are the
 * caller's to fix (bad script, bad flag, unknown worker), `system` errors are
 * ours or the machine's, `limit` errors are a tenant breaching a limit.
 */
export type ErrorClass = 'user' | 'system' | 'limit';

export const ErrorCodes = {
  ERR_CONFIG: 'user',
  ERR_TARGET_NOT_FOUND: 'user',
  ERR_NO_WORKERS: 'user',
  ERR_WORKER_NAME: 'user',
  ERR_UNKNOWN_WORKER: 'user',
  ERR_SCRIPT_LOAD: 'user',
  ERR_SCRIPT_TOO_LARGE: 'user',
  ERR_HANDLER: 'user',
  ERR_BAD_REQUEST: 'user',
  ERR_UNAUTHORIZED: 'user',
  ERR_INSTANCE_DIED: 'system',
  ERR_SPAWN: 'system',
  ERR_POOL_CLOSED: 'system',
  ERR_PORT_IN_USE: 'user',
  ERR_SUBREQUEST: 'user',
  ERR_EGRESS_DENIED: 'user',
  /** A KV call a tenant made with a bad key, value, metadata or option (rejects inside the tenant). */
  ERR_KV_INVALID: 'user',
  /** The KV store (SQLite file, Redis server) failed or cannot be reached. */
  ERR_KV_STORAGE: 'system',
  /** A Cache API call Workers rejects (non-GET put, 206, Vary: *). */
  ERR_CACHE_INVALID: 'user',
  /** A binding call the daemon cannot serve: unknown binding, operation, or over the per-request limit. */
  ERR_BINDING: 'user',
  /** `edgeproc tail` found no admin API where it was told to look. */
  ERR_ADMIN_UNREACHABLE: 'system',
} as const satisfies Record<string, ErrorClass>;

export type ErrorCode = keyof typeof ErrorCodes;

export class EdgeprocError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EdgeprocError';
    this.code = code;
  }

  get errorClass(): ErrorClass {
    return ErrorCodes[this.code];
  }
}

/** What a child said when its script failed to load; kept for the error response and the log. */
export interface ScriptLoadFailure {
  /**
   * What the child reported, or `Died`: the child ended while loading for a reason that
   * need not be the script's (killed from outside); retried once before backing off.
   */
  kind: 'SyntaxError' | 'ScriptError' | 'NoHandler' | 'Died';
  message: string;
  line: number | null;
  column: number | null;
}

export class ScriptLoadError extends EdgeprocError {
  readonly worker: string;
  readonly failure: ScriptLoadFailure;

  constructor(worker: string, filename: string, failure: ScriptLoadFailure) {
    const at = failure.line !== null ? ` at ${filename}:${failure.line}:${failure.column ?? 1}` : '';
    super('ERR_SCRIPT_LOAD', `worker "${worker}" failed to load: ${failure.message}${at}`);
    this.worker = worker;
    this.failure = failure;
  }
}

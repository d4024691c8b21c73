/**
 * One scheduled event run on one instance. The child answers it as a request
 * with no body (protocol/messages.ts, RequestHeadMessage.scheduled), so it is an
 * Exchange like any other: the watchdog charges its CPU, a breach or a dead child
 * ends it through fail() and onInstanceDied(), its subrequests are counted, and
 * its tenant log lines carry its id. What it produces is an outcome record, not
 * an HTTP response.
 */
import type { HandlerErrorMessage, ResponseHeadMessage, SettledMessage } from '../../protocol/messages.js';
import type { Limits } from '../limits.js';
import { describeExit, type Exchange, type ExitOutcome, type Instance } from '../pool/instance.js';

export interface ScheduledOutcome {
  worker: string;
  cron: string;
  scheduledTime: number;
  requestId: string;
  ok: boolean;
  /** What went wrong, for the log and the test trigger's 500; null when ok. */
  error: string | null;
  /** The handler threw (or no handler exists). */
  threw: boolean;
  /** A limit or the daemon ended the run (CPU, memory, wall time, a load failure). */
  stopped: boolean;
  timedOut: boolean;
  waitUntilFailures: number;
  waitUntilTimedOut: boolean;
  wallMs: number;
  /** The watchdog's charge, the one the CPU limit is enforced on. */
  cpuMs: number;
  /** The child's own count of the run's CPU; null when it could not say (killed, failed). */
  childCpuMs: number | null;
  subrequests: number;
}

export interface ScheduledContext {
  worker: string;
  cron: string;
  scheduledTime: number;
  requestId: string;
  limits: Limits;
  rewriteStack?: (text: string) => string;
  onDone(outcome: ScheduledOutcome): void;
  /** The handler did not return within wallMs: it may still run on `instance`, which should be replaced. */
  onWallTimeout(instance: Instance): void;
}

interface RunError {
  message: string;
  threw: boolean;
  stopped: boolean;
  timedOut: boolean;
}

export class ScheduledExchange implements Exchange {
  readonly #ctx: ScheduledContext;
  readonly startedAt = performance.now();
  #instance: Instance | null = null;
  #id = 0;
  #wallTimer: NodeJS.Timeout | null = null;
  #error: RunError | null = null;
  #stack: string | null = null;
  #finished = false;
  cpuMs = 0;
  cpuBaseMs = 0;
  subrequests = 0;
  kvOperations = 0;

  constructor(ctx: ScheduledContext) {
    this.#ctx = ctx;
  }

  get requestId(): string {
    return this.#ctx.requestId;
  }

  get instanceId(): string | undefined {
    return this.#instance?.id;
  }

  start(instance: Instance): void {
    this.#instance = instance;
    const { wallMs } = this.#ctx.limits;
    this.#wallTimer = setTimeout(() => {
      this.#end({ message: `the scheduled handler did not finish within ${wallMs} ms (--wall-ms)`, threw: false, stopped: true, timedOut: true }, null);
      this.#ctx.onWallTimeout(instance);
    }, wallMs);
    const { cron, scheduledTime } = this.#ctx;
    this.#id = instance.dispatch({ method: 'GET', url: 'http://scheduled.invalid/', headers: [], hasBody: false, scheduled: { cron, scheduledTime } }, this);
  }

  /** The handler returned: its waitUntil work (bounded by the child's waitUntilMs) decides the rest. */
  onHead(_head: ResponseHeadMessage): void {
    this.#clearWallTimer();
  }

  onData(): void {}
  onEnd(): void {}
  onAbort(): void {}
  onWindow(): void {}
  onWebSocketMessage(): void {}
  onWebSocketClose(): void {}

  onHandlerError(error: HandlerErrorMessage): void {
    this.#clearWallTimer();
    const stack = error.stack ? (this.#ctx.rewriteStack?.(error.stack) ?? error.stack) : null;
    this.#error = { message: error.message, threw: !error.neverSettles, stopped: false, timedOut: false };
    if (stack) this.#stack = stack;
  }

  /** The stack of the error the handler threw, mapped to the sources, for the warn line. */
  get stack(): string | null {
    return this.#stack;
  }

  onSettled(message: SettledMessage): void {
    this.#end(this.#error, message);
  }

  onInstanceDied(outcome: ExitOutcome): void {
    const why = outcome.memoryExceeded ? `its instance ran out of memory (limit ${this.#ctx.limits.memoryMb} MiB, --memory-mb)` : `its instance stopped (${describeExit(outcome)})`;
    this.#end({ message: `the scheduled event did not finish: ${why}`, threw: false, stopped: true, timedOut: false }, null);
  }

  fail(_status: number, reason: string): void {
    if (this.#instance && this.#id && !this.#finished) this.#instance.sendAbort(this.#id, reason);
    this.#end({ message: reason, threw: false, stopped: true, timedOut: false }, null);
  }

  #clearWallTimer(): void {
    if (this.#wallTimer) clearTimeout(this.#wallTimer);
    this.#wallTimer = null;
  }

  #end(error: RunError | null, settled: SettledMessage | null): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#clearWallTimer();
    const failures = settled?.waitUntilFailures ?? 0;
    const waitUntilTimedOut = settled?.waitUntilTimedOut ?? false;
    let message = error?.message ?? null;
    // A service-worker handler does its work in waitUntil: work that failed there failed the event.
    if (!message && failures > 0) message = `${failures} waitUntil promise${failures === 1 ? '' : 's'} rejected (the worker's log has each error)`;
    if (!message && waitUntilTimedOut) message = `waitUntil work was still running ${this.#ctx.limits.waitUntilMs} ms after the handler returned and was abandoned (--wait-until-ms)`;
    this.#ctx.onDone({
      worker: this.#ctx.worker,
      cron: this.#ctx.cron,
      scheduledTime: this.#ctx.scheduledTime,
      requestId: this.#ctx.requestId,
      ok: message === null,
      error: message,
      threw: error?.threw ?? false,
      stopped: error?.stopped ?? false,
      timedOut: error?.timedOut ?? false,
      waitUntilFailures: failures,
      waitUntilTimedOut,
      wallMs: performance.now() - this.startedAt,
      cpuMs: this.cpuMs,
      childCpuMs: settled?.cpuMs ?? null,
      subrequests: this.subrequests,
    });
  }
}

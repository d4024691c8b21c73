/**
 * The event objects a tenant's handler receives: FetchEvent for
 * service-worker syntax, ExecutionContext (`ctx`) for module syntax. Both
 * report into an Invocation, the runner's record of one request.
 */
import { Request } from './web.js';

/** What one handler invocation asked for: a response, background work, pass-through. */
export class Invocation {
  response: Promise<unknown> | null = null;
  readonly waitUntil: Promise<unknown>[] = [];
  passThrough = false;
  /** A scheduled handler called noRetry(). */
  noRetry = false;

  addWaitUntil(promise: unknown): void {
    // Attach a handler now so a rejection is never reported as unhandled.
    const settled = Promise.resolve(promise);
    settled.catch(() => {});
    this.waitUntil.push(settled);
  }
}

let bindInvocation: (target: ExtendableEvent, invocation: Invocation) => void;

function invalidState(message: string): Error {
  return new DOMException(message, 'InvalidStateError');
}

export class ExtendableEvent extends Event {
  #invocation: Invocation | null = null;

  static {
    bindInvocation = (target, invocation) => {
      (target as ExtendableEvent).#invocation = invocation;
    };
  }

  waitUntil(promise: unknown): void {
    if (!this.#invocation) throw invalidState('waitUntil() can only be called on an event the runtime dispatched');
    this.#invocation.addWaitUntil(promise);
  }

  protected get invocation(): Invocation | null {
    return this.#invocation;
  }
}

export class FetchEvent extends ExtendableEvent {
  readonly #request: Request;

  constructor(type: string, init: { request: Request }) {
    super(type);
    if (!init || !(init.request instanceof Request)) {
      throw new TypeError("Failed to construct 'FetchEvent': init.request must be a Request");
    }
    this.#request = init.request;
  }

  get request(): Request {
    return this.#request;
  }

  respondWith(response: unknown): void {
    const invocation = this.invocation;
    if (!invocation) throw invalidState('respondWith() can only be called on an event the runtime dispatched');
    if (invocation.response) throw invalidState('respondWith() was already called for this request');
    invocation.response = Promise.resolve(response);
    this.stopImmediatePropagation();
  }

  passThroughOnException(): void {
    if (this.invocation) this.invocation.passThrough = true;
  }
}

export class ScheduledEvent extends ExtendableEvent {
  readonly scheduledTime: number;
  readonly cron: string;

  constructor(type: string, init: { scheduledTime?: number; cron?: string } = {}) {
    super(type);
    this.scheduledTime = init.scheduledTime ?? Date.now();
    this.cron = init.cron ?? '';
  }

  /** Workers would not retry this event if it fails; edgeproc never retries one, so this only records it. */
  noRetry(): void {
    if (this.invocation) this.invocation.noRetry = true;
  }
}

/** `controller` of a module worker's `scheduled(controller, env, ctx)`. */
export class ScheduledController {
  readonly #invocation: Invocation;
  readonly scheduledTime: number;
  readonly cron: string;

  constructor(invocation: Invocation, init: { scheduledTime: number; cron: string }) {
    this.#invocation = invocation;
    this.scheduledTime = init.scheduledTime;
    this.cron = init.cron;
  }

  noRetry(): void {
    this.#invocation.noRetry = true;
  }
}

/** `ctx` of a module worker's `fetch(request, env, ctx)`. */
export class ExecutionContext {
  #invocation: Invocation;

  constructor(invocation: Invocation) {
    this.#invocation = invocation;
  }

  waitUntil(promise: unknown): void {
    this.#invocation.addWaitUntil(promise);
  }

  passThroughOnException(): void {
    this.#invocation.passThrough = true;
  }

  /** Present on Workers; edgeproc has no service-binding props yet. */
  get props(): Record<string, never> {
    return {};
  }
}

export function createFetchEvent(request: Request, invocation: Invocation): FetchEvent {
  const event = new FetchEvent('fetch', { request });
  bindInvocation(event, invocation);
  return event;
}

export function createScheduledEvent(init: { scheduledTime: number; cron: string }, invocation: Invocation): ScheduledEvent {
  const event = new ScheduledEvent('scheduled', init);
  bindInvocation(event, invocation);
  return event;
}

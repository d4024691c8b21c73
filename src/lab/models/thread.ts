/**
 * The thread model: every tenant on its own worker thread of one Node host
 * process (src/lab/hosts/thread-host.ts), with a V8 heap limit per thread and
 * a wall-time limit per request.
 */
import { startHost } from './host-model.js';
import type { Model } from './types.js';

export const threadModel: Model = {
  name: 'thread',
  boundary: 'thread: each tenant its own V8 isolate on a worker thread of one shared Node process (own heap; shared PID, address space and Node APIs)',
  notes:
    'request limit is wall time, not CPU (a thread cannot be metered from outside cheaply): the thread is terminated and recreated, so a slow answer on a busy machine counts as a runaway; heap capped by resourceLimits; tenants can import node: modules',
  start: (limits) => startHost('thread', limits),
};

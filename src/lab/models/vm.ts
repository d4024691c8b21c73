/**
 * The `vm` model: one `node:vm` context per tenant in one host process
 * (src/lab/hosts/vm-host.ts). The cheapest boundary Node offers, and the
 * weakest: separate globals, shared heap, thread and host objects.
 */
import { startHost } from './host-model.js';
import type { LabLimits, Model } from './types.js';

/**
 * node:vm cannot cap a context's heap, so the only memory limit is the process's,
 * sized for a few tenants at their own limit: one tenant that passes it ends
 * the process and every tenant in it.
 */
const HOST_HEAP_TENANTS = 4;

export const vmModel: Model = {
  name: 'vm',
  boundary: 'a node:vm context per tenant: own globals, shared heap, thread and process',
  notes: `timeout on synchronous code only; no per-tenant memory limit: the host heap is ${HOST_HEAP_TENANTS} × memoryMb, and a bomb kills every tenant`,
  start: (limits: LabLimits) =>
    startHost('vm', limits, ['--experimental-vm-modules', `--max-old-space-size=${limits.memoryMb * HOST_HEAP_TENANTS}`]),
};

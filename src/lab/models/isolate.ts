/**
 * The `isolate` model: one V8 isolate per tenant in one host process
 * (src/lab/hosts/isolate-host.ts), through the optional dependency
 * isolated-vm, the nearest Node gets to Cloudflare's own boundary.
 */
import { createRequire } from 'node:module';
import { startHost } from './host-model.js';
import { ModelUnavailableError, type LabLimits, type Model } from './types.js';

export const isolateModel: Model = {
  name: 'isolate',
  boundary: 'a V8 isolate per tenant (isolated-vm): own heap and memory limit, shared process',
  notes: 'no Web APIs: given a 30-line Response and URL shim; the request is plain {method, url, headers}',
  async start(limits: LabLimits) {
    try {
      createRequire(import.meta.url).resolve('isolated-vm');
    } catch (error) {
      throw new ModelUnavailableError(
        `isolated-vm is not installed (${(error as Error).message.split('\n')[0]}): it is an optional dependency with a native build; ` +
          'run `npm install` where a C++ toolchain and Node headers are available',
      );
    }
    // A failed native build surfaces here: the host exits before READY, and
    // startHost's ModelUnavailableError carries the host's own reason.
    return startHost('isolate', limits, ['--no-node-snapshot']);
  },
};

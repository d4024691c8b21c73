/**
 * esbuild injects these as module-local bindings wherever bundled code (undici)
 * names them as free globals, so they keep working after the tenant's global
 * scope loses `Buffer`, `process` and `setImmediate`.
 */
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { setImmediate, clearImmediate } from 'node:timers';

export { Buffer, process, setImmediate, clearImmediate };

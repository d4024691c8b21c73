/**
 * esbuild injects these as module-local bindings wherever bundled code (the
 * runner, undici) names them as free globals: they keep working after the
 * tenant's global scope loses `Buffer`, `process` and `setImmediate`, and the
 * runner's own timers stay Node's, never the tenant's counted ones
 * (runner/timers.ts).
 */
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { clearImmediate, clearInterval, clearTimeout, setImmediate, setInterval, setTimeout } from 'node:timers';

export { Buffer, process, setImmediate, clearImmediate, setTimeout, clearTimeout, setInterval, clearInterval };

/**
 * V8 code caches, one per worker version. The first instance of a version is asked to make one:
 * its child sends the bytes V8 made compiling the script, after compiling and before running
 * it, so before any tenant code ran there (the daemon keeps only the first such frame of a
 * load). Every later instance of that version (a scale-out, a recycle, one started after idle
 * eviction or a crash) compiles from it: the 82 KB bundled examples/hono-app in ~1.2 ms
 * instead of 4-5 in a fresh process.
 *
 * One per version and only for it: V8 checks a cache against its own version, its flags and
 * the length of the source, not the source itself, so a cache given to another script of the
 * same length would run that other script's code. Kept by the WorkerScript object, a cache
 * goes when its version does.
 */
import type { LoadResult } from '../pool/instance.js';
import type { WorkerScript } from './registry.js';

/**
 * Below this, compiling from a cache saves under ~0.05 ms (a 3.5 KB app: 0.13 ms compiled,
 * 0.10 from its cache) and is not worth the frames: hello-world tenants never use one.
 */
export const CODE_CACHE_MIN_SOURCE_CHARS = 16 * 1024;
/**
 * V8's caches here are 0.35-0.65 of the source's length (lazily compiled functions are not in
 * them); a child that sends more than this is not sending a cache of that source.
 */
const MAX_CACHE_BYTES_PER_SOURCE_CHAR = 4;

export class CodeCaches {
  readonly #caches = new WeakMap<WorkerScript, Uint8Array>();

  /** `enabled`: false for `--no-code-cache`, every instance compiles its script from scratch. */
  constructor(readonly enabled: boolean) {}

  /** The cache a load of `script` sends its child (null: none), and whether to ask it for one. */
  forLoad(script: WorkerScript): { cache: Uint8Array | null; make: boolean } {
    if (!this.enabled || script.source.length < CODE_CACHE_MIN_SOURCE_CHARS) return { cache: null, make: false };
    const cache = this.#caches.get(script) ?? null;
    return { cache, make: cache === null };
  }

  loaded(script: WorkerScript, report: Pick<LoadResult, 'codeCache' | 'madeCodeCache'>): void {
    // Made under other V8 flags than this child's: the next load makes one of its own.
    if (report.codeCache === 'rejected') this.#caches.delete(script);
    const made = report.madeCodeCache;
    if (!made || this.#caches.has(script)) return;
    if (made.byteLength > 0 && made.byteLength <= script.source.length * MAX_CACHE_BYTES_PER_SOURCE_CHAR) {
      this.#caches.set(script, made);
    }
  }

  /** Bytes of the cache held for `script` (0: none yet). */
  bytes(script: WorkerScript): number {
    return this.#caches.get(script)?.byteLength ?? 0;
  }
}

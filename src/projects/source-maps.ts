/**
 * The source maps of bundled workers, kept in the daemon: tenant code runs
 * from a bundle, so its stack frames name `NAME.N.bundle.js`; rewriting them
 * with the map puts the original file, line and column back in the daemon's
 * log (tenant log lines and the stack of a thrown exception).
 */
import { SourceMap, type SourceMapping } from 'node:module';
import { isAbsolute, join } from 'node:path';

/** Maps kept per worker: the live version and a few before it, whose in-flight requests may still log. */
const KEEP_PER_WORKER = 4;
const FRAME = /([^\s()]+\.bundle\.js):(\d+):(\d+)/g;

export class SourceMaps {
  readonly #maps = new Map<string, { map: SourceMap; dir: string }>();
  readonly #byWorker = new Map<string, string[]>();

  add(worker: string, filename: string, mapJson: string, dir: string): void {
    this.#maps.set(filename, { map: new SourceMap(JSON.parse(mapJson)), dir });
    const kept = this.#byWorker.get(worker) ?? [];
    kept.push(filename);
    while (kept.length > KEEP_PER_WORKER) this.#maps.delete(kept.shift()!);
    this.#byWorker.set(worker, kept);
  }

  /** `(…/api.3.bundle.js:120:11)` → `(…/src/index.ts:14:9)`; text naming no bundle comes back as it was. */
  // Hot path: every tenant log line; one includes() when nothing is bundled or named.
  rewrite = (text: string): string => {
    if (this.#maps.size === 0 || !text.includes('.bundle.js:')) return text;
    return text.replace(FRAME, (frame: string, file: string, line: string, column: string) => {
      const known = this.#maps.get(file);
      if (!known) return frame;
      // SourceMap counts lines and columns from 0; stack frames from 1.
      const entry = known.map.findEntry(Number(line) - 1, Number(column) - 1) as Partial<SourceMapping> | undefined;
      if (!entry?.originalSource) return frame;
      const source = entry.originalSource.replace(/^file:\/\//, '');
      return `${isAbsolute(source) ? source : join(known.dir, source)}:${entry.originalLine! + 1}:${entry.originalColumn! + 1}`;
    });
  };
}

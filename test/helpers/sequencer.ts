/**
 * The order test files start in. On a clean clone (CI) vitest has no timings yet and starts the
 * largest files first, which left the longest ones (the lab's compare, ~90 s; kills under load,
 * ~60 s) to start late and run on alone at the end: 380 s of wall time for ~600 s of tests on
 * two workers. These start first; the rest follow in vitest's own order.
 */
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The longest files, in the order they start (seconds on the 2-core CI machine, 2026-12-07).
 * kills-under-load and compare both load the machine flat out; started together, compare took
 * twice as long (71 s against 36) and kills-under-load's children starved: hello-world requests
 * there took 600 ms of wall time, and one was charged a 104 ms collection its child ran
 * meanwhile (a local full run). cpu-off-request goes beside kills-under-load instead, and
 * compare follows it on that worker.
 */
const LONGEST_FIRST = [
  'test/faults/kills-under-load.test.ts', // ~55
  'test/limits/cpu-off-request.test.ts', // ~32
  'test/lab/compare.test.ts', // ~36 alone, ~75 beside kills-under-load
];

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (file: TestSpecification) => {
      const at = LONGEST_FIRST.indexOf(relative(process.cwd(), file.moduleId).split('\\').join('/'));
      return at < 0 ? LONGEST_FIRST.length : at;
    };
    // Stable: files not listed keep vitest's order.
    return sorted.map((file, index) => ({ file, index })).sort((a, b) => rank(a.file) - rank(b.file) || a.index - b.index).map(({ file }) => file);
  }
}

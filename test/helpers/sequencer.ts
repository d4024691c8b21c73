/**
 * The order test files start in. On a clean clone (CI) vitest has no timings yet and starts the
 * largest files first, which left the longest ones (the lab's compare, ~90 s; kills under load,
 * ~60 s) to start late and run on alone at the end: 380 s of wall time for ~600 s of tests on
 * two workers. These start first; the rest follow in vitest's own order.
 */
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The longest files, longest first (seconds on the 2-core CI machine, 2026-12-07). */
const LONGEST_FIRST = [
  'test/faults/kills-under-load.test.ts', // ~66
  'test/lab/compare.test.ts', // ~36 alone (~89 when it ran all six models)
  'test/limits/cpu-off-request.test.ts', // ~32
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

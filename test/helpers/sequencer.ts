/**
 * The order test files start in. On a clean clone (CI) vitest has no timings yet and starts the
 * largest files first, which left the longest ones (the lab's compare, ~90 s; kills under load,
 * ~60 s) to start late and run on alone at the end: 380 s of wall time for ~600 s of tests on
 * two workers. START_ORDER's files start first; the rest follow in vitest's own order.
 */
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that start first, in this order (seconds on the 2-core CI machine, 2026-12-07).
 * kills-under-load and compare both load the machine flat out: started together, compare took
 * twice as long (71 s against 36) and kills-under-load's children starved, one hello-world
 * request there taking 593 ms of wall time and charged a 104 ms burst its child ran meanwhile
 * (a local full run). Beside kills-under-load, cpu-off-request could not make the 60 ms burst
 * between turns that its test needs (40 ms). So kills-under-load starts with files whose checks
 * do not depend on the CPU they get (a CLI's answer to bad input, the admin API, the serve
 * command), about as long as it is, and compare and cpu-off-request start after them.
 */
const START_ORDER = [
  'test/faults/kills-under-load.test.ts', // ~55
  'test/cli/bad-input.test.ts', // ~19-28
  'test/server/admin.test.ts', // ~11-15
  'test/cli/serve.test.ts', // ~9
  'test/server/websocket.test.ts', // ~7
  'test/lab/compare.test.ts', // ~36 alone, ~75 beside kills-under-load
  'test/limits/cpu-off-request.test.ts', // ~32
];

export class StartOrderSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (file: TestSpecification) => {
      const at = START_ORDER.indexOf(relative(process.cwd(), file.moduleId).split('\\').join('/'));
      return at < 0 ? START_ORDER.length : at;
    };
    // Stable: files not listed keep vitest's order.
    return sorted.map((file, index) => ({ file, index })).sort((a, b) => rank(a.file) - rank(b.file) || a.index - b.index).map(({ file }) => file);
  }
}

import { defineConfig } from 'vitest/config';
import { StartOrderSequencer } from './test/helpers/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Each file starts real daemons and children; two cores, so keep parallelism modest.
    maxWorkers: 2,
    // Files share each worker's module cache: every file isolated re-imported the daemon's
    // modules, 97 s of a 392 s run on two cores (2026-12-07). Each file closes what it starts
    // (test/helpers/daemon.ts checks that no child outlives it), so no state is left to share:
    // shared, two full runs took 261 and 270 s, every test green. A first try (2026-12-06) was
    // undone when the TurnMeter tests, bounded by wall-time guesses, failed beside what earlier
    // files left running in the worker; they are bounded by the process's own CPU clock now.
    isolate: false,
    globalSetup: ['test/helpers/global-setup.ts'],
    // The longest files start early, and the two heaviest not together (test/helpers/sequencer.ts).
    sequence: { sequencer: StartOrderSequencer },
  },
});

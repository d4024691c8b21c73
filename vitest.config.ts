import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './test/helpers/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Each file starts real daemons and children; two cores, so keep parallelism modest.
    maxWorkers: 2,
    // Files share a worker's module graph: isolated, each file imported src/, undici and ws
    // afresh (88 s of "import" in a CI run of 528 s of tests). Nothing in the suite mocks a
    // module or leaves global state behind: each file closes its daemons (helpers/daemon.ts)
    // and restores what it sets. Locally the whole suite then took 252 s instead of ~340.
    isolate: false,
    globalSetup: ['test/helpers/global-setup.ts'],
    // The longest files start first, so that none runs on alone at the end (test/helpers/sequencer.ts).
    sequence: { sequencer: LongestFirstSequencer },
  },
});

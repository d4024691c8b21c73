import { defineConfig } from 'vitest/config';
import { StartOrderSequencer } from './test/helpers/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Each file starts real daemons and children; two cores, so keep parallelism modest.
    maxWorkers: 2,
    globalSetup: ['test/helpers/global-setup.ts'],
    // The longest files start early, and the two heaviest not together (test/helpers/sequencer.ts).
    sequence: { sequencer: StartOrderSequencer },
  },
});

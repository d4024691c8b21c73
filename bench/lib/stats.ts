/** The benchmarks share the lab's order statistics. */
export * from '../../src/lab/stats.js';

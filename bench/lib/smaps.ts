/** The benchmarks share the lab's memory readings. */
export * from '../../src/lab/smaps.js';

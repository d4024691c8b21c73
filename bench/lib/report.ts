/** Plain-text tables for the terminal and one JSON file per benchmark in bench/results/. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export { fmt, table } from '../../src/lab/table.js';

export const RESULTS_DIR = fileURLToPath(new URL('../../../bench/results/', import.meta.url));

export function resultsPath(file: string): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  return `${RESULTS_DIR}${file}`;
}

export function writeResult(name: string, data: unknown): string {
  const path = resultsPath(`${name}.json`);
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n');
  return path;
}

export function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'FAIL';
}

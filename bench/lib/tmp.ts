/** Temporary directories that are removed when the benchmark process exits. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
process.on('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(purpose: string): string {
  const dir = mkdtempSync(join(tmpdir(), `edgeproc-bench-${purpose}-`));
  made.push(dir);
  return dir;
}

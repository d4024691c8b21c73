// Builds dist/ once before the suite, so tests always run the current daemon and runner bundle,
// and gives the run one temporary directory, removed at the end: every file's scripts, logs and
// runner copies go there (os.tmpdir() follows TMPDIR), and not one is left in /tmp per run.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-tests-'));
  // Children of another uid read runner copies and scripts from under it (sandbox.ts).
  chmodSync(dir, 0o755);
  process.env.TMPDIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}

/**
 * The copy of the runner that children of another uid read when the daemon's own is behind a
 * closed directory (src/pool/sandbox.ts): one per build, shared by every daemon and left in
 * place, so a daemon killed hard leaves nothing behind; and never used when someone else could
 * have changed it.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readableByAll, RUNNER_COMPANIONS, UID_BASE } from '../../src/pool/sandbox.js';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A runner of its own content (so its shared copy is this test's alone) in a directory only its owner can enter. */
function closedRunner(): { path: string; source: string } {
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-closed-'));
  made.push(dir);
  const path = join(dir, 'runner.cjs');
  const source = `// ${randomUUID()}\n`;
  writeFileSync(path, source);
  return { path, source };
}

function copyOf(runner: { path: string }): string {
  const copy = readableByAll(runner.path);
  made.push(dirname(copy));
  return copy;
}

const root = process.getuid?.() === 0;

describe('the runner copy for children of another uid', () => {
  it('is one per build, readable by all, writable by nobody, and shared by the next daemon', () => {
    const runner = closedRunner();
    const copy = copyOf(runner);
    expect(copy).not.toBe(runner.path);
    expect(readFileSync(copy, 'utf8')).toBe(runner.source);
    expect(statSync(copy).mode & 0o777).toBe(0o444);
    expect(statSync(dirname(copy)).mode & 0o777).toBe(0o755);
    expect(copyOf(runner)).toBe(copy);
  });

  it('carries the files the runner reads from beside itself (HTMLRewriter), and nothing else', () => {
    const runner = closedRunner();
    const wasm = Buffer.from(`wasm ${randomUUID()}`);
    writeFileSync(join(dirname(runner.path), RUNNER_COMPANIONS[1]!), wasm);
    writeFileSync(join(dirname(runner.path), 'not-a-companion.txt'), 'secret');
    const copy = copyOf(runner);
    expect(readFileSync(join(dirname(copy), RUNNER_COMPANIONS[1]!))).toEqual(wasm);
    expect(statSync(join(dirname(copy), RUNNER_COMPANIONS[1]!)).mode & 0o777).toBe(0o444);
    // A companion the build did not make is simply not there.
    expect(() => statSync(join(dirname(copy), RUNNER_COMPANIONS[0]!))).toThrow();
    expect(() => statSync(join(dirname(copy), 'not-a-companion.txt'))).toThrow();
  });

  it('is passed over, for a copy of the daemon\'s own, when it was changed or another user owns it', { skip: !root }, () => {
    const runner = closedRunner();
    const shared = copyOf(runner);

    chmodSync(shared, 0o644);
    writeFileSync(shared, 'process.exit(0);\n');
    chmodSync(shared, 0o444);
    const instead = copyOf(runner);
    expect(instead).not.toBe(shared);
    expect(readFileSync(instead, 'utf8')).toBe(runner.source);

    writeFileSync(shared, runner.source);
    chownSync(dirname(shared), UID_BASE + 7, UID_BASE + 7);
    const again = copyOf(runner);
    expect(again).not.toBe(shared);
    expect(readFileSync(again, 'utf8')).toBe(runner.source);
  });
});

import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { LineOutput } from '../../src/log-output.js';

describe('LineOutput (the daemon log on stdout)', () => {
  it('writes the lines of one turn together, at the end of that turn, in order', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'edgeproc-log-')), 'out.log');
    const fd = openSync(path, 'w');
    const out = new LineOutput(fd);
    for (const n of [1, 2, 3]) out.write(`{"n":${n}}\n`);
    expect(readFileSync(path, 'utf8')).toBe('');
    await nextTurn();
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
    out.write('{"n":4}\n');
    out.flush();
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n');
    closeSync(fd);
  });

  it('keeps what a non-blocking pipe cannot take yet and delivers all of it, in order, once the reader reads', async () => {
    // A reader that starts reading only after 300 ms: until then the pipe (64 KiB) is full and writes fail with EAGAIN.
    const reader = spawn(process.execPath, ['-e', 'setTimeout(() => process.stdin.pipe(process.stdout), 300)'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
    const out = new LineOutput(fd);
    const lines = Array.from({ length: 3000 }, (_, n) => `{"n":${n},"pad":"${'x'.repeat(80)}"}\n`);
    const expected = lines.join('');
    let received = '';
    const done = new Promise<void>((resolve) =>
      reader.stdout.setEncoding('utf8').on('data', (text: string) => {
        received += text;
        if (received.length >= expected.length) resolve();
      }),
    );
    for (const line of lines) out.write(line);
    await done;
    reader.kill();
    expect(received).toBe(expected);
  });
});

/**
 * The fork server's posix_spawn path (src/pool/fast-spawn.ts): what a child is given and how its
 * end is told, as Node's spawn did it before. Real processes throughout.
 */
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fastSpawn, fastSpawnSupported, type SpawnedChild } from '../../src/pool/fast-spawn.js';

function exited(child: SpawnedChild): Promise<[number | null, string | null]> {
  return new Promise((resolve) => child.onExit((code, signal) => resolve([code, signal])));
}

function text(stream: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => (out += chunk));
  return once(stream, 'close').then(() => out);
}

describe.runIf(fastSpawnSupported)('a child started with posix_spawn', () => {
  it('gets exactly its environment, /dev/null for stdin, its stdout, stderr and channel, and its exit code', async () => {
    const child = fastSpawn(
      [
        process.execPath,
        '-e',
        `const fs = require('fs');
         process.stdout.write(JSON.stringify({ env: process.env, stdin: fs.readlinkSync('/proc/self/fd/0'), fds: fs.readdirSync('/proc/self/fd').map(Number).filter((fd) => fd <= 3) }));
         process.stderr.write('to stderr');
         const channel = new (require('net').Socket)({ fd: 3 });
         channel.end('on the channel', () => process.exit(7));`,
      ],
      { ONLY: 'this' },
    );
    child.channel.resume();
    const [out, err, channel, status] = await Promise.all([text(child.stdout), text(child.stderr), text(child.channel), exited(child)]);
    const report = JSON.parse(out) as { env: Record<string, string>; stdin: string; fds: number[] };
    expect(report.env).toEqual({ ONLY: 'this' });
    expect(report.stdin).toBe('/dev/null');
    expect(report.fds).toEqual([0, 1, 2, 3]);
    expect(err).toBe('to stderr');
    expect(channel).toBe('on the channel');
    expect(status).toEqual([7, null]);
  });

  it('is reported gone when it exits, not when it closes its output, and by the signal that killed it', async () => {
    // Closes stdout and stderr at once, then lives on until killed.
    const child = fastSpawn([process.execPath, '-e', 'require("fs").closeSync(1); require("fs").closeSync(2); setInterval(() => {}, 1000)'], {});
    const status = exited(child);
    await Promise.all([once(child.stdout.resume(), 'close'), once(child.stderr.resume(), 'close')]);
    const early = await Promise.race([status.then(() => 'reported'), new Promise((resolve) => setTimeout(() => resolve('running'), 300))]);
    expect(early).toBe('running');
    child.kill();
    expect(await status).toEqual([null, 'SIGKILL']);
    // Reaped: a second kill must not signal whatever process gets the pid next.
    expect(() => child.kill()).not.toThrow();
  });

  it('starts nothing and says why when the program cannot be run', () => {
    expect(() => fastSpawn(['/nonexistent/program'], {})).toThrow(/posix_spawn: No such file or directory/);
  });

  it('keeps no descriptor open in this process once the child is gone', async () => {
    const before = readdirSync('/proc/self/fd').length;
    const children = Array.from({ length: 20 }, () => fastSpawn([process.execPath, '-e', '0'], {}));
    await Promise.all(children.map(async (child) => {
      child.channel.destroy();
      await Promise.all([exited(child), once(child.stdout.resume(), 'close'), once(child.stderr.resume(), 'close')]);
    }));
    expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(before);
  });
});

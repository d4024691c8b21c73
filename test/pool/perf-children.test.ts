/**
 * EDGEPROC_PERF_CHILDREN=1 (src/pool/perf-children.ts): children that perf can profile. It
 * lifts one layer, so the daemon must say so, and it must do what it is for: the child's JIT
 * map exists, naming JavaScript functions. Without it the limit holds (test/pool/sandbox.test.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { layersPrinted, servedAt, stopServe, writeScripts } from '../helpers/daemon.js';

const BIN = fileURLToPath(new URL('../../bin/edgeproc.js', import.meta.url));

describe('EDGEPROC_PERF_CHILDREN=1', () => {
  it('says at start that children may write files, and each child writes its JIT map for perf', async () => {
    const dir = writeScripts({ 'hello.mjs': 'export default { fetch: () => new Response("hi") }' });
    const proc = spawn(process.execPath, [BIN, 'serve', dir, '--port', '0', '--admin-port', '0'], {
      env: { ...process.env, EDGEPROC_PERF_CHILDREN: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // Every child of this daemon (the worker's and the warm pool's) leaves a map behind.
    const mapsBefore = new Set(perfMaps());
    try {
      const stderr = await layersPrinted(proc);
      expect(stderr).toMatch(/rlimits .*FILE WRITES ALLOWED \(EDGEPROC_PERF_CHILDREN=1/);

      const { url, adminUrl, port } = servedAt(stderr);
      const res = await request(`${url}/`, { headers: { host: `hello.localhost:${port}` } });
      expect(await res.body.text()).toBe('hi');
      const listing = (await (await fetch(`${adminUrl}/workers`)).json()) as { workers: Array<{ pids: number[] }> };
      const [pid] = listing.workers[0]!.pids;
      const map = `/tmp/perf-${pid}.map`;
      expect(existsSync(map)).toBe(true);
      // Lines are "START SIZE NAME"; the runner's own functions are among them.
      expect(readFileSync(map, 'latin1')).toMatch(/^[0-9a-f]+ [0-9a-f]+ JS:.*runner\.cjs/m);
      const fileSize = readFileSync(`/proc/${pid}/limits`, 'latin1').split('\n').find((line) => line.startsWith('Max file size'));
      expect(fileSize).toMatch(/unlimited\s+unlimited/);
    } finally {
      await stopServe(proc);
      for (const file of perfMaps()) if (!mapsBefore.has(file)) rmSync(`/tmp/${file}`, { force: true });
    }
  });
});

function perfMaps(): string[] {
  return readdirSync('/tmp').filter((file) => /^perf-\d+\.map$/.test(file));
}

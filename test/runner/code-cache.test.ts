import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { CODE_CACHE_MIN_SOURCE_CHARS } from '../../src/workers/code-cache.js';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

afterEach(closeDaemons);

/**
 * A module worker past the code cache's threshold: hundreds of functions, a class with a private
 * field, a generator; it answers with what they compute, the line its own stack names and one
 * function's source text, all of which a cache made for another source would get wrong.
 */
function bigWorker(tag: string): string {
  const functions = Array.from({ length: 400 }, (_, i) => `function f${i}(x) { const label = 'f${i}'; return x + ${i} + label.length; }`);
  return `${functions.join('\n')}
class Counter { #n = 0; next() { return ++this.#n; } }
function* evens() { for (let i = 0; ; i += 2) yield i; }
export default {
  fetch() {
    const even = evens();
    even.next();
    const where = new Error('where').stack.split('\\n')[1];
    return Response.json({
      tag: ${JSON.stringify(tag)},
      sum: [f0, f199, f399].reduce((acc, f) => f(acc), 0),
      even: even.next().value,
      count: new Counter().next(),
      line: Number(/:(\\d+):\\d+\\)?$/.exec(where)[1]),
      source: f7.toString(),
    });
  },
};
`;
}

/** What bigWorker(tag) answers, computed from its source. */
function bigAnswer(tag: string) {
  const lines = bigWorker(tag).split('\n');
  return {
    tag,
    sum: 608, // f0(0) = 2, f199(2) = 205, f399(205) = 608
    even: 2,
    count: 1,
    line: lines.findIndex((line) => line.includes("new Error('where')")) + 1,
    source: lines[7],
  };
}

/** How each of a worker's instances compiled its script, from the daemon's log, in order. */
function loads(daemon: TestDaemon, worker: string, version?: number): unknown[] {
  return daemon.logs
    .filter((r) => r.msg === 'script loaded' && r.worker === worker && (version === undefined || r.version === version))
    .map((r) => r.codeCache);
}

async function answers(daemon: TestDaemon, worker: string, count: number): Promise<unknown[]> {
  const out = [];
  for (let i = 0; i < count; i++) {
    const { status, text } = await daemon.fetchText(worker, '/');
    expect(status, text).toBe(200);
    out.push(JSON.parse(text));
  }
  return out;
}

describe('V8 code cache per worker version', () => {
  it("compiles later instances of a version from the cache its first instance made, and they run the version's code", async () => {
    expect(bigWorker('v1').length).toBeGreaterThan(CODE_CACHE_MIN_SOURCE_CHARS);
    const dir = writeScripts({ 'big.mjs': bigWorker('v1'), 'small.mjs': "export default { fetch() { return new Response('small'); } };" });
    // Every request retires its instance: each is a cold start of a version seen before.
    const daemon = await startTestDaemon(dir, { recycleAfter: 1 });
    expect(await answers(daemon, 'big', 3)).toEqual([bigAnswer('v1'), bigAnswer('v1'), bigAnswer('v1')]);
    expect(loads(daemon, 'big')).toEqual(['made', 'used', 'used']);
    const bytes = daemon.broker.statsOf('big')!.codeCacheBytes;
    expect(bytes).toBeGreaterThan(1000);
    expect(bytes).toBeLessThan(bigWorker('v1').length);
    const listed = await request(`${daemon.adminUrl}/workers`);
    const workers = ((await listed.body.json()) as { workers: Array<{ name: string; codeCacheBytes: number }> }).workers;
    expect(workers.find((w) => w.name === 'big')?.codeCacheBytes).toBe(bytes);

    // A small script is compiled from scratch every time: a cache would save it nothing.
    for (let i = 0; i < 2; i++) expect((await daemon.fetchText('small')).text).toBe('small');
    expect(loads(daemon, 'small')).toEqual(['none', 'none']);
    expect(daemon.broker.statsOf('small')!.codeCacheBytes).toBe(0);
  });

  it('never gives a new version the cache of the one it replaced, even when their sources are the same length', async () => {
    // V8 checks a cache against the source's length only: given v1's cache, v2 would run v1's code.
    expect(bigWorker('v2').length).toBe(bigWorker('v1').length);
    const daemon = await startTestDaemon(writeScripts({ 'big.mjs': bigWorker('v1') }), { recycleAfter: 1 });
    expect(await answers(daemon, 'big', 2)).toEqual([bigAnswer('v1'), bigAnswer('v1')]);
    const put = await request(`${daemon.adminUrl}/workers/big`, { method: 'PUT', body: bigWorker('v2') });
    expect(put.statusCode, await put.body.text()).toBe(200);
    const version = daemon.registry.get('big')!.version;
    expect(await answers(daemon, 'big', 3)).toEqual([bigAnswer('v2'), bigAnswer('v2'), bigAnswer('v2')]);
    // The deploy's own load made v2's cache; the instances after it compiled from that one.
    expect(loads(daemon, 'big', version)).toEqual(['made', 'used', 'used']);
  });

  it('--no-code-cache compiles every instance from scratch', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'big.mjs': bigWorker('v1') }), { recycleAfter: 1, codeCache: false });
    expect(await answers(daemon, 'big', 2)).toEqual([bigAnswer('v1'), bigAnswer('v1')]);
    expect(loads(daemon, 'big')).toEqual(['none', 'none']);
    expect(daemon.broker.statsOf('big')!.codeCacheBytes).toBe(0);
  });
});

describe('the runner loader with a code cache V8 refuses', () => {
  const run = promisify(execFile);
  const work = mkdtempSync(join(tmpdir(), 'edgeproc-code-cache-'));
  const loader = join(work, 'loader.mjs');
  const scripts = {
    module: { file: join(work, 'app.mjs'), source: bigWorker('v1') },
    classic: { file: join(work, 'sw.js'), source: `${'// padding\n'.repeat(2000)}globalThis.answer = [1, 2, 3].map((n) => n * 2).join();` },
  };
  for (const { file, source } of Object.values(scripts)) writeFileSync(file, source);

  /**
   * Loads a script in a fresh node (as the child runs it, with the heap limit given), from the
   * cache file if asked, writing the cache it makes if asked; prints what came of it.
   */
  async function load(kind: keyof typeof scripts, heapMb: number, cache: 'make' | 'use'): Promise<{ codeCache: string; answer: string }> {
    const { file } = scripts[kind];
    const driver = join(work, `driver-${kind}-${cache}.mjs`);
    writeFileSync(
      driver,
      `import { readFileSync, writeFileSync } from 'node:fs';
      import { loadScript } from ${JSON.stringify(loader)};
      const cacheFile = ${JSON.stringify(`${file}.cache`)};
      const options = ${JSON.stringify(cache)} === 'make' ? { onMade: (bytes) => writeFileSync(cacheFile, bytes) } : { cachedData: readFileSync(cacheFile) };
      const loaded = await loadScript(readFileSync(${JSON.stringify(file)}, 'utf8'), ${JSON.stringify(file)}, {}, options);
      const answer = loaded.exports?.fetch ? (await (await loaded.exports.fetch()).json()).sum : globalThis.answer;
      console.log(JSON.stringify({ codeCache: loaded.codeCache, answer: String(answer) }));`,
    );
    const { stdout } = await run(process.execPath, ['--experimental-vm-modules', '--no-warnings', `--max-old-space-size=${heapMb}`, driver], { env: {} });
    return JSON.parse(stdout) as { codeCache: string; answer: string };
  }

  it('uses a cache made under the same flags and compiles without one made under others, both syntaxes', async () => {
    await build({ entryPoints: [fileURLToPath(new URL('../../runner/loader.ts', import.meta.url))], bundle: true, format: 'esm', platform: 'node', outfile: loader, logLevel: 'silent' });
    const expected = { module: '608', classic: '2,4,6' };
    for (const kind of ['module', 'classic'] as const) {
      expect(await load(kind, 128, 'make')).toEqual({ codeCache: 'none', answer: expected[kind] });
      expect(await load(kind, 128, 'use')).toEqual({ codeCache: 'used', answer: expected[kind] });
      // The heap limit is among the flags V8 stamps a cache with.
      expect(await load(kind, 96, 'use')).toEqual({ codeCache: 'rejected', answer: expected[kind] });
    }
  });
});

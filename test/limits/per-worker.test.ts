import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { buildServeConfig } from '../../src/config.js';
import { startDaemon } from '../../src/daemon.js';
import { Logger, memorySink } from '../../src/log.js';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { requestIdOf } from '../helpers/hostile.js';

afterEach(closeDaemons);

// A runaway: its CPU only ends at its limit, however loaded the machine (a wall-time burn may
// finish under the limit when the machine is busy and the watchdog has lowered its priority).
const LOOP = fileURLToPath(new URL('../fixtures/hostile/loop-sync.mjs', import.meta.url));

/** A directory with two copies of the runaway fixture and an edgeproc.json. */
function target(config: unknown): string {
  const dir = writeScripts({});
  copyFileSync(LOOP, join(dir, 'generous.mjs'));
  copyFileSync(LOOP, join(dir, 'strict.mjs'));
  writeFileSync(join(dir, 'edgeproc.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}

describe('per-worker limits from edgeproc.json in a served directory', () => {
  it('gives the named worker its own CPU limit while the others keep the global one (each 503 names its own)', async () => {
    const daemon = await startTestDaemon(target({ workers: { generous: { cpuMs: 2000 } } }), { cpuMs: 50, warmPool: 2 });
    const [generous, strict] = await Promise.all([daemon.fetchText('generous', '/'), daemon.fetchText('strict', '/')]);
    expect(strict.status).toBe(503);
    expect(strict.text).toMatch(/^Worker "strict" exceeded its CPU time limit: this request used \d+ ms of CPU; the limit is 50 ms per request/);
    expect(generous.status).toBe(503);
    const used = Number(/^Worker "generous" exceeded its CPU time limit: this request used (\d+) ms of CPU; the limit is 2000 ms per request/.exec(generous.text)?.[1]);
    expect(used).toBeGreaterThan(2000);
    requestIdOf(generous);
    requestIdOf(strict);
  });

  it.each([
    ['not JSON', '{workers', /edgeproc\.json: not valid JSON/],
    ['an unknown field', { worker: {} }, /edgeproc\.json: unknown field "worker"; the only field is "workers"$/],
    ['a worker that does not exist', { workers: { ghost: { cpuMs: 10 } } }, /edgeproc\.json: "workers\.ghost" names no worker of .*; its workers: generous, strict$/],
    ['a limit a worker cannot set', { workers: { strict: { warmPoolSize: 3 } } }, /edgeproc\.json: "workers\.strict": "warmPoolSize" is not a limit a worker can set; per-worker limits: /],
    ['a bad value', { workers: { strict: { cpuMs: -5 } } }, /edgeproc\.json: "workers\.strict": limits\.cpuMs must be an integer ≥ 1, got -5$/],
  ])('refuses to start on %s, naming the file, the worker and the field', async (_what, config, message) => {
    const dir = target(config);
    const started = startDaemon(buildServeConfig(dir, { port: 0, adminPort: 0, warmPool: 0 }, {}), new Logger(memorySink([])));
    await expect(started).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(message) });
  });
});

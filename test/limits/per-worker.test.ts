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

const BURN = fileURLToPath(new URL('../fixtures/hostile/burn.mjs', import.meta.url));

/** A directory with two copies of the burn fixture and an edgeproc.json. */
function target(config: unknown): string {
  const dir = writeScripts({});
  copyFileSync(BURN, join(dir, 'generous.mjs'));
  copyFileSync(BURN, join(dir, 'strict.mjs'));
  writeFileSync(join(dir, 'edgeproc.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}

describe('per-worker limits from edgeproc.json in a served directory', () => {
  it('gives the named worker its own CPU limit while the others keep the global one', async () => {
    const daemon = await startTestDaemon(target({ workers: { generous: { cpuMs: 2000 } } }), { cpuMs: 50, warmPool: 2 });
    expect(await daemon.fetchText('generous', '/?ms=300')).toMatchObject({ status: 200, text: 'burned 300 ms' });
    // A second of wall time, so that even a loaded machine gives it well over 50 ms of CPU.
    const strict = await daemon.fetchText('strict', '/?ms=1000');
    expect(strict.status).toBe(503);
    expect(strict.text).toMatch(new RegExp(`^Worker "strict" exceeded its CPU time limit: this request used \\d+ ms of CPU; the limit is 50 ms per request`));
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

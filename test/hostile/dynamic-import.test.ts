/**
 * Attack: import Node builtins (with and without `node:`), other modules and
 * URLs, dynamically and statically. A worker is one script: every import
 * fails, inside the tenant for import(), at load for a static import.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

const refused = (specifier: string) =>
  `TypeError: import of "${specifier}" is not available in edgeproc: a worker is a single script; bundle its dependencies into it`;

describe('import of Node builtins and other modules', () => {
  it('rejects every import() inside the tenant', async () => {
    const daemon = await startHostileDaemon(['dynamic-import']);
    const res = await attack(daemon, 'dynamic-import');
    expect(res.status).toBe(200);
    const specifiers = ['node:fs', 'fs', 'node:child_process', 'child_process', 'node:module', 'node:worker_threads', 'process'];
    specifiers.push('data:text/javascript,export default 1', 'file:///etc/passwd', './neighbour.mjs');
    expect(JSON.parse(res.text)).toEqual(Object.fromEntries(specifiers.map((specifier) => [specifier, refused(specifier)])));
    await expectDaemonServes(daemon);
  });

  it('fails to load a script with a static import, with 500 naming the import', async () => {
    const daemon = await startHostileDaemon(['static-import']);
    // Linking fails before any of the script runs, so there is no line to point at.
    expectErrorResponse(await attack(daemon, 'static-import'), 500, `Worker "static-import" failed to load: ${refused('node:fs')}`);
    await expectDaemonServes(daemon);
  });
});

/**
 * What every isolation model of the lab must do, as a test suite: start with
 * no tenant, deploy the workload scripts, serve them correctly over HTTP,
 * report its processes, and dispose of every process it started.
 */
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { LabLimits, Model, RunningModel } from '../../src/lab/models/types.js';
import { expectedBody, WORKLOADS } from '../../src/lab/workloads.js';
import { isAlive } from '../helpers/daemon.js';

export const TEST_LIMITS = { cpuMs: 50, memoryMb: 64 };

export async function get(model: RunningModel, tenant: string, path = '/'): Promise<{ status: number; text: string }> {
  const { url, headers } = model.target(tenant);
  const res = await request(new URL(path, url), { headers, headersTimeout: 20_000, bodyTimeout: 20_000 });
  return { status: res.statusCode, text: await res.body.text() };
}

export { isAlive };

/**
 * Starts the model for one test and disposes of it after the test, whatever the outcome;
 * a test may dispose of it itself first (dispose then runs once).
 */
export function modelPerTest(model: Model): (limits?: LabLimits) => Promise<RunningModel> {
  const live: RunningModel[] = [];
  afterEach(async () => {
    await Promise.all(live.splice(0).map((running) => running.dispose()));
  });
  return async (limits = TEST_LIMITS) => {
    const running = await model.start(limits);
    const dispose = running.dispose.bind(running);
    let disposed: Promise<void> | null = null;
    running.dispose = () => (disposed ??= dispose());
    live.push(running);
    return running;
  };
}

export function modelContract(model: Model): void {
  describe(`model ${model.name}: the lab's contract`, () => {
    const start = modelPerTest(model);

    it('says what boundary it gives', () => {
      expect(model.boundary.length).toBeGreaterThan(10);
    });

    it('serves the workload scripts correctly and disposes without leaving a process', async () => {
      const running = await start();
      await running.deploy('hello', WORKLOADS.hello);
      await running.deploy('json', WORKLOADS.json);
      expect(await get(running, 'hello')).toEqual({ status: 200, text: expectedBody('hello') });
      expect(await get(running, 'json', '/items')).toEqual({ status: 200, text: expectedBody('json', '/items') });
      const pids = running.pids();
      expect(pids.length).toBeGreaterThan(0);
      for (const pid of pids) expect(isAlive(pid)).toBe(true);
      await running.dispose();
      for (const pid of pids) expect(isAlive(pid)).toBe(false);
    });
  });
}

/**
 * What the two models that run every tenant in one host process (vm, isolate) share:
 * a runaway is stopped by the model's own timeout with a 503 naming it, and a script the
 * host cannot run is refused with the reason. Returns the per-test starter for the
 * model's own tests (its memory behaviour differs: that is the point of comparing them).
 */
export function inProcessModelContract(model: Model): (limits?: LabLimits) => Promise<RunningModel> {
  const start = modelPerTest(model);
  describe(`model ${model.name}: limits`, () => {
    it('stops a runaway with a 503 naming the limit, and its neighbour in the same process still answers', async () => {
      const running = await start();
      await running.deploy('hello', WORKLOADS.hello);
      await running.deploy('runaway', WORKLOADS.runaway);
      const started = Date.now();
      expect(await get(running, 'runaway')).toEqual({
        status: 503,
        text: `${model.name}: tenant "runaway" was stopped after 50 ms (${model.name} timeout, limits.cpuMs)\n`,
      });
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
    });

    it('refuses a script with no fetch handler, or one that imports, saying why', async () => {
      const running = await start();
      await expect(running.deploy('empty', 'export default {};\n')).rejects.toThrow('the script has no `export default { fetch(request) { … } }`');
      await expect(running.deploy('imports', 'import fs from "node:fs";\nexport default { fetch() {} };\n')).rejects.toThrow('the script imports "node:fs"');
    });
  });
  return start;
}

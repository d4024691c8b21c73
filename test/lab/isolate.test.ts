import { describe, expect, it } from 'vitest';
import { isolateModel } from '../../src/lab/models/isolate.js';
import { WORKLOADS } from '../../src/lab/workloads.js';
import { get, isAlive, modelContract, modelPerTest } from './contract.js';

modelContract(isolateModel);

describe('model isolate: limits and blast radius', () => {
  const start = modelPerTest(isolateModel);

  it('stops a runaway with a 503 naming the limit, and its neighbour in the same process still answers', async () => {
    const running = await start();
    await running.deploy('hello', WORKLOADS.hello);
    await running.deploy('runaway', WORKLOADS.runaway);
    const started = Date.now();
    expect(await get(running, 'runaway')).toEqual({ status: 503, text: 'isolate: tenant "runaway" was stopped after 50 ms (isolate timeout, limits.cpuMs)\n' });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
  });

  it('refuses a script with no fetch handler, or one that imports, saying why', async () => {
    const running = await start();
    await expect(running.deploy('empty', 'export default {};\n')).rejects.toThrow('the script has no `export default { fetch(request) { … } }`');
    await expect(running.deploy('imports', 'import fs from "node:fs";\nexport default { fetch() {} };\n')).rejects.toThrow('the script imports "node:fs"');
  });

  it('disposes only the isolate of a tenant that passes its memory limit: the host and the neighbour survive, the tenant is rebuilt', async () => {
    const running = await start();
    await running.deploy('hello', WORKLOADS.hello);
    await running.deploy('bomb', WORKLOADS.bomb);
    const [host] = running.pids();
    // Each request grows the bomb's hoard until the timeout stops it; within a
    // few requests the isolate passes memoryMb and isolated-vm disposes of it.
    const memory = 'isolate: tenant "bomb" passed its memory limit of 64 MiB (limits.memoryMb); its isolate was disposed and is rebuilt on the next request\n';
    let answer = { status: 0, text: '' };
    for (let i = 0; i < 60 && answer.text !== memory; i++) {
      answer = await get(running, 'bomb');
      expect(answer.status).toBe(503);
    }
    expect(answer.text).toBe(memory);
    expect(isAlive(host!)).toBe(true);
    expect(running.pids()).toEqual([host]);
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
    // Rebuilt from its source: it runs (and is stopped) again rather than failing for good.
    expect((await get(running, 'bomb')).status).toBe(503);
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
  });
});

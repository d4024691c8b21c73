import { describe, expect, it } from 'vitest';
import { isolateModel } from '../../src/lab/models/isolate.js';
import { WORKLOADS } from '../../src/lab/workloads.js';
import { get, inProcessModelContract, isAlive, modelContract } from './contract.js';

modelContract(isolateModel);
const start = inProcessModelContract(isolateModel);

describe('model isolate: blast radius', () => {
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

import { describe, expect, it } from 'vitest';
import { vmModel } from '../../src/lab/models/vm.js';
import { WORKLOADS } from '../../src/lab/workloads.js';
import { get, inProcessModelContract, isAlive, modelContract } from './contract.js';

modelContract(vmModel);
const start = inProcessModelContract(vmModel);

describe('model vm: blast radius', () => {
  it("dies whole when one tenant exhausts the heap: the neighbour goes down with it (the model's blast radius)", async () => {
    // A second per request, not 50 ms: near the heap limit each allocation waits for a
    // full GC, and on a slow machine a 50 ms timeout stopped every request before the
    // heap ran out (60 requests, still alive). A second fills it in the first few.
    const running = await start({ cpuMs: 1000, memoryMb: 64 });
    await running.deploy('hello', WORKLOADS.hello);
    await running.deploy('bomb', WORKLOADS.bomb);
    const [host] = running.pids();
    // Each request grows the bomb's hoard until the vm timeout stops it; the host
    // heap (4 × memoryMb) runs out within a few requests, and the process with it.
    let died = false;
    for (let i = 0; i < 60 && !died; i++) {
      const answer = await get(running, 'bomb').catch(() => null);
      if (answer) expect(answer.status).toBe(503);
      else died = true;
    }
    expect(died).toBe(true);
    await expect(get(running, 'hello')).rejects.toThrow();
    await until(() => !isAlive(host!), 5000);
  });
});

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition still false after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

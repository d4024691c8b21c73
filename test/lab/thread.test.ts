import { describe, expect, it } from 'vitest';
import { threadModel } from '../../src/lab/models/thread.js';
import { WORKLOADS } from '../../src/lab/workloads.js';
import { get, isAlive, modelContract, modelPerTest } from './contract.js';

modelContract(threadModel);

describe('model thread: limits and blast radius', () => {
  const start = modelPerTest(threadModel);

  it('terminates a runaway thread with a 503 naming the limit, recreates it for the next request, and its neighbour still answers', async () => {
    const running = await start();
    await running.deploy('hello', WORKLOADS.hello);
    await running.deploy('runaway', WORKLOADS.runaway);
    const stopped = { status: 503, text: 'thread: tenant "runaway" was terminated after 50 ms without an answer (limits.cpuMs, enforced as wall time)\n' };
    const started = Date.now();
    const [runaway, neighbour] = await Promise.all([get(running, 'runaway'), get(running, 'hello')]);
    expect(runaway).toEqual(stopped);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(neighbour).toEqual({ status: 200, text: 'hello\n' });
    // A new thread from the same source: stopped again, not "no tenant" and not a hang.
    expect(await get(running, 'runaway')).toEqual(stopped);
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
  });

  it('answers every request in flight on a runaway thread with a 503', async () => {
    const running = await start();
    await running.deploy('runaway', WORKLOADS.runaway);
    const answers = await Promise.all([get(running, 'runaway'), get(running, 'runaway'), get(running, 'runaway')]);
    for (const answer of answers) expect(answer.status).toBe(503);
  });

  it('terminates a thread that exhausts its heap with a 503 naming the memory limit; the host survives and the neighbour answers', async () => {
    // A CPU limit long enough that memory, not wall time, ends the bomb.
    const running = await start({ cpuMs: 15_000, memoryMb: 64 });
    await running.deploy('hello', WORKLOADS.hello);
    await running.deploy('bomb', WORKLOADS.bomb);
    const [host] = running.pids();
    const exhausted = {
      status: 503,
      text: 'thread: tenant "bomb" ran out of memory: its heap reached the limit of 64 MB (limits.memoryMb) and its thread was terminated\n',
    };
    expect(await get(running, 'bomb')).toEqual(exhausted);
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
    // Again, on the thread recreated for it.
    expect(await get(running, 'bomb')).toEqual(exhausted);
    expect(isAlive(host!)).toBe(true);
    expect(running.pids()).toEqual([host]);
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
  });

  it('refuses a script that does not load, saying why, and keeps serving the others', async () => {
    const running = await start();
    await running.deploy('hello', WORKLOADS.hello);
    await expect(running.deploy('broken', 'export default {\n')).rejects.toThrow('thread: cannot deploy broken: SyntaxError');
    await expect(running.deploy('empty', 'export default {};\n')).rejects.toThrow('the script has no default export with a fetch(request) method');
    await expect(running.deploy('throws', 'throw new Error("at load");\n')).rejects.toThrow('Error: at load');
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
  });

  it('answers 500 when the handler throws, and 503 when the thread exits; the next request gets a new thread', async () => {
    const running = await start();
    await running.deploy('throws', 'export default { fetch() { throw new TypeError("nope"); } };\n');
    await running.deploy('exits', 'let calls = 0;\nexport default { fetch() { if (++calls === 1) process.exit(3); return new Response("again\\n"); } };\n');
    expect(await get(running, 'throws')).toEqual({ status: 500, text: 'thread: the fetch handler threw: TypeError: nope\n' });
    expect(await get(running, 'exits')).toEqual({ status: 503, text: 'thread: tenant "exits" exited with code 3\n' });
    // The new thread loads the module afresh (calls is 0 again), so it exits again: state does not survive a thread.
    expect(await get(running, 'exits')).toEqual({ status: 503, text: 'thread: tenant "exits" exited with code 3\n' });
  });
});

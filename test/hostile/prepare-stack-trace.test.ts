/**
 * Attack: Error.prepareStackTrace hands out V8 CallSite objects for every frame
 * on the stack, the runner's and Node's included. getThis() and getFunction()
 * would give a tenant the receivers and functions of those frames. V8 censors
 * both for strict-mode frames, and the runner bundle, undici and Node's own
 * code are all strict: what leaks is file and function names, no object.
 * Then: a prepareStackTrace that throws, or returns a stack that cannot be
 * serialised, while the runner reads an error's stack.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

interface Frame {
  file: string | null;
  function: string | null;
  this: string;
  callee: string;
}

describe('Error.prepareStackTrace', () => {
  it('gives away file and function names of the runner’s frames, but no receiver and no function', async () => {
    const daemon = await startHostileDaemon(['prepare-stack-trace']);
    const res = await attack(daemon, 'prepare-stack-trace', '/callsites');
    expect(res.status).toBe(200);
    const frames = JSON.parse(res.text) as Frame[];
    expect(frames.map((frame) => [frame.this, frame.callee])).toEqual(frames.map(() => ['undefined', 'undefined']));
    // Whose frames they are: undici's Response constructor in the runner bundle, the tenant, the
    // runner, Node: the handler starts in the turn its head arrived in, under the request's
    // AsyncLocalStorage context, where the stack's ten frames end; or, when the head was read
    // while the script still loaded (the instance's first request, on a slow host), from the
    // microtask queue after the load.
    const whose = frames.map(({ file }) =>
      file === null ? 'native' : file.endsWith('/prepare-stack-trace.mjs') ? 'tenant' : file.endsWith('/runner.cjs') ? 'runner' : file,
    );
    const node = new Set(['node:async_hooks', 'node:internal/process/task_queues']);
    expect(new Set(whose.filter((who) => !node.has(who)))).toEqual(new Set(['runner', 'tenant']));
    expect(whose.some((who) => node.has(who))).toBe(true);
    // The build's runner, or the copy a child of another uid reads when the checkout is closed to it (src/pool/sandbox.ts).
    expect(frames.find((frame) => frame.function === '#serve')?.file).toMatch(/\/runner\.cjs$/);
    await expectDaemonServes(daemon);
  });

  it('that throws, or returns a stack JSON cannot encode, still lets the runner answer with the error', async () => {
    const daemon = await startHostileDaemon(['prepare-stack-trace']);
    expectErrorResponse(
      await attack(daemon, 'prepare-stack-trace', '/throwing'),
      500,
      'Worker threw exception: Error: thrown after prepareStackTrace was replaced',
    );
    expectErrorResponse(await attack(daemon, 'prepare-stack-trace', '/junk'), 500, 'Worker threw exception: TypeError: thrown with a junk stack');
    // The same instance serves on: nothing of the runner was broken.
    const pid = daemon.broker.instances().find((i) => i.worker === 'prepare-stack-trace')?.pid;
    expect(await daemon.fetchText('prepare-stack-trace', '/')).toMatchObject({ status: 200, text: 'ok' });
    expect(daemon.broker.instances().find((i) => i.worker === 'prepare-stack-trace')?.pid).toBe(pid);
    await expectDaemonServes(daemon);
  });
});

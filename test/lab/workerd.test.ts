import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { workerdModel } from '../../src/lab/models/workerd.js';
import { WORKLOADS } from '../../src/lab/workloads.js';
import { get, isAlive, modelContract, modelPerTest } from './contract.js';

modelContract(workerdModel);

describe('model workerd: one process, restarted per deploy, no limits', () => {
  const start = modelPerTest(workerdModel);

  it('restarts workerd with a regenerated config for a new tenant, and the earlier tenants still answer on their ports', async () => {
    const running = await start();
    await running.deploy('hello', WORKLOADS.hello);
    const [first] = running.pids();
    const before = running.target('hello');
    await running.deploy('json', WORKLOADS.json);
    const [second] = running.pids();
    expect(second).not.toBe(first);
    expect(isAlive(first!)).toBe(false);
    expect(running.target('hello')).toEqual(before);
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
    expect((await get(running, 'json')).status).toBe(200);
    // Redeploying a tenant replaces its script on the same port.
    await running.deploy('hello', "export default { fetch() { return new Response('hello again\\n'); } };\n");
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello again\n' });
  });

  it('refuses a script workerd cannot load, with workerd\'s reason, and keeps serving the others', async () => {
    const running = await start();
    await running.deploy('hello', WORKLOADS.hello);
    await expect(running.deploy('broken', 'export default {\n')).rejects.toThrow(/^workerd: cannot deploy broken: workerd exited while starting \(code 1\): service broken: Uncaught SyntaxError/);
    await expect(running.deploy('throws', 'throw new Error("at load");\n')).rejects.toThrow('service throws: Uncaught Error: at load');
    await expect(running.deploy('no/such', WORKLOADS.hello)).rejects.toThrow('a tenant name is letters, digits, - and _');
    expect(() => running.target('broken')).toThrow('workerd: no tenant "broken"');
    expect(await get(running, 'hello')).toEqual({ status: 200, text: 'hello\n' });
  });

  it('has no CPU limit: a runaway stalls every tenant of the process until the lab kills it', async () => {
    const running = await start();
    await running.deploy('hello', WORKLOADS.hello);
    await running.deploy('runaway', WORKLOADS.runaway);
    const [workerd] = running.pids();
    const stalled = (tenant: string) => {
      const { url, headers } = running.target(tenant);
      return request(url, { headers, headersTimeout: 1000 }).then(
        () => 'answered',
        (error: { code?: string }) => error.code,
      );
    };
    const runaway = stalled('runaway');
    // Time for the runaway's request to reach workerd (on a loaded machine too).
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await stalled('hello')).toBe('UND_ERR_HEADERS_TIMEOUT');
    expect(await runaway).toBe('UND_ERR_HEADERS_TIMEOUT');
    // A stalled workerd never handles SIGTERM; dispose gets there with SIGKILL.
    const started = Date.now();
    await running.dispose();
    expect(isAlive(workerd!)).toBe(false);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

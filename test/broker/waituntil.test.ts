import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';
import { until } from '../helpers/until.js';

afterEach(closeDaemons);

describe('waitUntil work after the response', () => {
  it('is abandoned after --wait-until-ms, logged, and no longer holds the instance', async () => {
    const dir = writeScripts({
      'lingers.mjs': `export default { fetch(request, env, ctx) {
        ctx.waitUntil(new Promise(() => {}));
        return new Response('answered');
      } };`,
    });
    const daemon = await startTestDaemon(dir, { waitUntilMs: 300 });
    const res = await daemon.fetchText('lingers', '/');
    expect(res).toMatchObject({ status: 200, text: 'answered' });
    // The instance counts the request in flight until its waitUntil work settles or is abandoned.
    await until(() => daemon.broker.stats()[0]!.inflight === 0, 'the request to settle');
    const warning = daemon.logs.find((r) => r.source === 'tenant' && r.level === 'warn');
    expect(warning?.msg).toBe(
      'waitUntil work was still running 300 ms after the response; it was abandoned (limit waitUntilMs)',
    );
    const accounting = daemon.logs.find((r) => r.msg === 'request' && r.worker === 'lingers');
    expect(warning?.requestId).toMatch(/^[0-9a-f]{16}$/);
    expect(warning?.requestId).toBe(accounting?.requestId);
    // The instance still serves.
    expect(await daemon.fetchText('lingers', '/')).toMatchObject({ status: 200, text: 'answered' });
  });
});

/**
 * `serve --watch`: a change to a project's source rebuilds it and replaces
 * the worker as an admin PUT does — new requests get the new version while a
 * request in flight finishes on the old one.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterAll(() => closeDaemons());

const version = (label: string) =>
  [
    `import { label } from './label';`,
    `export default {`,
    `  async fetch(request: Request): Promise<Response> {`,
    // A slow request: it answers once the client has sent its whole body.
    `    if (request.method === 'POST') await request.text();`,
    `    return new Response(label + ' ${label}');`,
    `  },`,
    `};`,
    ``,
  ].join('\n');

describe('serve --watch', () => {
  it('replaces the worker on change; a slow request in flight finishes on the old version', async () => {
    const dir = writeScripts({
      'wrangler.toml': 'name = "live"\nmain = "src/index.ts"\n',
      'src/index.ts': version('v1'),
      'src/label.ts': "export const label: string = 'built';\n",
    });
    const daemon = await startTestDaemon(dir, { watch: true });
    expect((await daemon.fetchText('live')).text).toBe('built v1');

    // 1. A request on v1 that stays in flight until its body ends.
    let finish!: () => void;
    const bodyEnds = new Promise<void>((resolve) => (finish = resolve));
    async function* body() {
      yield new TextEncoder().encode('part 1');
      await bodyEnds;
    }
    const slow = request(`${daemon.url}/`, { method: 'POST', headers: { host: `live.localhost:${daemon.port}` }, body: body() });
    await until(() => daemon.broker.stats()[0]!.inflight === 1);

    // 2. A change to an imported file (not only `main`) rebuilds and redeploys.
    writeFileSync(join(dir, 'src/index.ts'), version('v2'));
    writeFileSync(join(dir, 'src/label.ts'), "export const label: string = 'rebuilt';\n");
    await until(() => /"rebuilt"[\s\S]*" v2"/.test(daemon.registry.get('live')!.source));
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'worker rebuilt and deployed', worker: 'live' }));
    expect((await daemon.fetchText('live')).text).toBe('rebuilt v2');

    // 3. The request in flight all along answers from the old version.
    finish();
    const res = await slow;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('built v1');
    expect(daemon.registry.get('live')!.version).toBeGreaterThan(1);

    // 4. A change that does not build is logged; v2 keeps serving.
    writeFileSync(join(dir, 'src/index.ts'), 'export default { fetch( };\n');
    await until(() => daemon.logs.some((r) => r.msg === 'rebuild failed; the previous version keeps serving'));
    expect((await daemon.fetchText('live')).text).toBe('rebuilt v2');
  });
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the condition');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

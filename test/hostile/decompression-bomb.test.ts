/**
 * Attack: a gzip bomb through DecompressionStream, made in the tenant from a
 * few KiB: inflated into memory it is stopped by the memory limit. Streamed
 * and only counted, 64 MiB of it is legitimate work that takes a while in
 * Node's thread pool: before the stall detector learnt to count thread-pool
 * CPU, it answered that request "will never generate a response".
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, requestIdOf, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a decompression bomb', () => {
  it('inflated into memory is stopped by the memory limit', async () => {
    // CPU and drain generous, so that memory is what ends it (passing ¾ of the limit first recycles the
    // instance, and a drain that timed out would end the request with 502).
    const daemon = await startHostileDaemon(['decompression-bomb'], { cpuMs: 10_000, wallMs: 20_000, drainTimeout: 20_000 });
    const res = await attack(daemon, 'decompression-bomb', '/to-memory?members=1024');
    expect(res.status).toBe(503);
    expect(res.text).toMatch(
      new RegExp(
        `^Worker "decompression-bomb" exceeded its memory limit: (the instance used \\d+ MiB|its V8 heap ran out); the limit is 64 MiB per instance \\(--memory-mb\\)\\.\\n\\nrequest id: ${requestIdOf(res)}\\n$`,
      ),
    );
    expect(await daemon.fetchText('decompression-bomb', '/')).toMatchObject({ status: 200, text: 'ok' });
    await expectDaemonServes(daemon);
  });

  it('streamed through is not mistaken for a stalled handler', async () => {
    const daemon = await startHostileDaemon(['decompression-bomb'], { cpuMs: 10_000, wallMs: 20_000, drainTimeout: 20_000 });
    expect(await attack(daemon, 'decompression-bomb', '/streamed?members=64')).toMatchObject({ status: 200, text: `inflated ${64 * 1024 * 1024} bytes` });
    await expectDaemonServes(daemon);
  });
});

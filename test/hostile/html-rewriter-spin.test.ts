/**
 * Attack: an endless loop in an HTMLRewriter handler, which lol-html's WebAssembly calls
 * (runner/html-rewriter.ts). Neither the runner nor the WebAssembly can interrupt it; the
 * watchdog stops it at the CPU limit, and the replacement instance loads lol-html afresh.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectCpuLimitResponse, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('a runaway HTMLRewriter handler', () => {
  it('is stopped by the CPU limit with 503, and the worker rewrites again after', async () => {
    const daemon = await startHostileDaemon(['html-rewriter-spin']);
    expect(await daemon.fetchText('html-rewriter-spin', '/')).toMatchObject({ status: 200, text: '<p>rewritten</p>' });
    const res = await attack(daemon, 'html-rewriter-spin', '/spin');
    expectCpuLimitResponse(res, 'html-rewriter-spin');
    expect(await daemon.fetchText('html-rewriter-spin', '/')).toMatchObject({ status: 200, text: '<p>rewritten</p>' });
    await expectDaemonServes(daemon);
  });
});

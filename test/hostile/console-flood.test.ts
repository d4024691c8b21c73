/**
 * Attack: flood the daemon's log through console. runner/console.ts had no
 * bound: a loop of console.log within the CPU limit sent the daemon a frame
 * and a log line per call. Each instance now has a log budget (a burst of 1000
 * lines, then 200 a second, a line costing one per started KiB, cut at 16 KiB):
 * what is over it is dropped in the child and reported once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, type TestDaemon } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

const NOTICE = /^console output dropped: (\d+) lines over the limit \(a burst of 1000 lines, then 200 per second; a line costs one per started KiB\)$/;

function tenantLines(daemon: TestDaemon): string[] {
  return daemon.logs.filter((r) => r.source === 'tenant' && r.worker === 'console-flood').map((r) => r.msg);
}

describe('a console flood', () => {
  it('is cut to the log budget with one notice saying how many lines were dropped', async () => {
    const daemon = await startHostileDaemon(['console-flood']);
    const rssBefore = process.memoryUsage().rss;
    const started = Date.now();
    expect(await attack(daemon, 'console-flood', '/lines?n=100000')).toMatchObject({ status: 200, text: 'logged 100000' });
    const seconds = (Date.now() - started) / 1000;
    await expect.poll(() => tenantLines(daemon).filter((line) => NOTICE.test(line))).toHaveLength(1);
    const lines = tenantLines(daemon);
    const flood = lines.filter((line) => line.startsWith('flood line '));
    // The burst, plus what refilled while the loop ran (200 a second): a bound, not a timing.
    expect(flood.length).toBeGreaterThanOrEqual(1000);
    expect(flood.length).toBeLessThanOrEqual(1000 + Math.ceil(200 * (seconds + 1)));
    expect(flood.slice(0, 3)).toEqual(['flood line 0', 'flood line 1', 'flood line 2']);
    const notice = lines.find((line) => NOTICE.test(line))!;
    expect(Number(NOTICE.exec(notice)![1])).toBe(100_000 - flood.length);
    expect(daemon.logs.find((r) => r.msg === notice)?.level).toBe('warn');
    // The daemon took in a bounded amount, whatever the tenant wrote: sanity, not a measurement.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
    await expectDaemonServes(daemon);
  });

  it('of one 8 MB line logs the first 16 KiB and says how much was cut', async () => {
    const daemon = await startHostileDaemon(['console-flood']);
    expect(await attack(daemon, 'console-flood', '/long')).toMatchObject({ status: 200, text: 'logged a long line' });
    const [line] = tenantLines(daemon);
    expect(line).toBe(`${'x'.repeat(16 * 1024)}… (line cut: ${8_000_000 - 16 * 1024} more characters)`);
    await expectDaemonServes(daemon);
  });
});

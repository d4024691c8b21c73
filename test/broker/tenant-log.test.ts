/**
 * The daemon's own bound on tenant log lines (src/broker/tenant-log.ts): a
 * runner keeps within its budget, but a subverted one may send Log frames as
 * fast as it likes, and the daemon's log is every tenant's.
 */
import { describe, expect, it } from 'vitest';
import { tenantLogSink } from '../../src/broker/tenant-log.js';
import { Logger, memorySink, type LogRecord } from '../../src/log.js';
import type { Instance } from '../../src/pool/instance.js';
import { LOG_BURST_TOKENS, MAX_LOG_LINE_CHARS } from '../../protocol/messages.js';

function fakeInstance(id: string): Instance {
  return { id, worker: 'flooder', requestIdOf: (stream: number) => (stream === 1 ? 'r1' : undefined) } as unknown as Instance;
}

describe('tenant log lines in the daemon', () => {
  it('are written with worker, instance and request id', () => {
    const records: Array<LogRecord & { time: string }> = [];
    const sink = tenantLogSink(new Logger(memorySink(records)));
    sink(fakeInstance('i1'), 1, { level: 'log', text: 'hello' });
    expect(records).toEqual([expect.objectContaining({ level: 'info', msg: 'hello', source: 'tenant', worker: 'flooder', instance: 'i1', requestId: 'r1' })]);
  });

  it('stop at twice the runner’s burst per instance, with one warning, and other instances keep their own budget', () => {
    const records: Array<LogRecord & { time: string }> = [];
    const sink = tenantLogSink(new Logger(memorySink(records)));
    const flooder = fakeInstance('i1');
    for (let i = 0; i < 50_000; i++) sink(flooder, 0, { level: 'log', text: `line ${i}` });
    const written = records.filter((r) => r.source === 'tenant');
    // The burst, and whatever refilled (200 a second) while the loop ran.
    expect(written.length).toBeGreaterThanOrEqual(2 * LOG_BURST_TOKENS);
    expect(written.length).toBeLessThan(2 * LOG_BURST_TOKENS + 200);
    expect(records.filter((r) => r.msg.startsWith('tenant log lines dropped'))).toHaveLength(1);
    sink(fakeInstance('i2'), 0, { level: 'warn', text: 'a neighbour line' });
    expect(records.at(-1)).toMatchObject({ msg: 'a neighbour line', instance: 'i2', level: 'warn' });
  });

  it('cut a line far longer than any runner sends', () => {
    const records: Array<LogRecord & { time: string }> = [];
    tenantLogSink(new Logger(memorySink(records)))(fakeInstance('i1'), 0, { level: 'log', text: 'x'.repeat(10_000_000) });
    expect(records[0]!.msg.length).toBe(MAX_LOG_LINE_CHARS + 100);
  });
});

import { describe, expect, it } from 'vitest';
import { Logger, memorySink, type LogRecord } from '../../src/log.js';

describe("a request's accounting line", () => {
  it('is one JSON line in the shape of every other line, seen by taps, and valid JSON whatever the figures', () => {
    const records: Array<LogRecord & { time: string }> = [];
    const log = new Logger(memorySink(records), 'info');
    const tapped: Array<[string, string | undefined]> = [];
    log.tap((line, worker) => tapped.push([line, worker]));

    log.request({ worker: 'hello', requestId: 'abc123', instance: 'i3', status: 200, wallMs: 1.25, cpuMs: 0, childCpuMs: 0.04 });
    log.request({ worker: 'odd "name"', requestId: 'abc124', instance: undefined, status: 502, wallMs: Number.NaN, cpuMs: Infinity, childCpuMs: null });
    log.info('other', { worker: 'hello' });

    expect(records[0]).toEqual({ level: 'info', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), worker: 'hello', requestId: 'abc123', instance: 'i3', status: 200, wallMs: 1.25, cpuMs: 0, childCpuMs: 0.04, msg: 'request' });
    expect(records[1]).toEqual({ level: 'info', time: expect.any(String), worker: 'odd "name"', requestId: 'abc124', status: 502, wallMs: null, cpuMs: null, childCpuMs: null, msg: 'request' });
    // The same key order as pino's lines: level, time, fields, msg.
    expect(Object.keys(records[0]!)).toEqual(['level', 'time', 'worker', 'requestId', 'instance', 'status', 'wallMs', 'cpuMs', 'childCpuMs', 'msg']);
    expect(Object.keys(records[2]!)).toEqual(['level', 'time', 'worker', 'msg']);
    expect(tapped.map(([line, worker]) => [JSON.parse(line).requestId, worker])).toEqual([['abc123', 'hello'], ['abc124', 'odd "name"'], [undefined, 'hello']]);
    expect(tapped.every(([line]) => line.endsWith('}\n') && !line.slice(0, -1).includes('\n'))).toBe(true);
  });

  it('is not written below --log-level info', () => {
    const records: Array<LogRecord & { time: string }> = [];
    const log = new Logger(memorySink(records), 'warn');
    log.request({ worker: 'hello', requestId: 'abc', instance: 'i1', status: 200, wallMs: 1, cpuMs: 0, childCpuMs: 0 });
    expect(records).toEqual([]);
  });
});

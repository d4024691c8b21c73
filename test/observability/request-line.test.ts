import { describe, expect, it } from 'vitest';
import { jsonString, Logger, memorySink, number, type LogRecord } from '../../src/log.js';

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

  it('writes every figure and name exactly as JSON.stringify would', () => {
    // The line is formatted by hand for speed (src/log.ts); it must still say what JSON says.
    const figures = [0, -0, 0.01, 0.1, 0.5, 1, 1.05, 1.1, 1.25, 2.3, 9.99, 10, 100.07, 59.9, 123456.78, 1e-7, 0.001, 1e9, 1e21, -1.5, 3.14159, 0.1 + 0.2];
    for (let i = 0; i < 20_000; i++) figures.push(Math.round(Math.random() * 10 ** (i % 9)) / 100, Math.random() * 1000);
    for (const figure of figures) expect(number(figure)).toBe(JSON.stringify(figure));
    expect([number(Number.NaN), number(Infinity), number(-Infinity), number(null)]).toEqual(['null', 'null', 'null', 'null']);
    for (const text of ['hello', '', 'i3', '2cf5769900000001', 'odd "name"', 'back\\slash', 'tab\tnew\nline', '\u0000', 'caf\u00e9', '\u2028', '\ud800', 'emoji \u{1f600}', '~', '\u007f']) {
      expect(jsonString(text)).toBe(JSON.stringify(text));
    }
  });
});

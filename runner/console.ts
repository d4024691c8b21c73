/**
 * The tenant's `console`: every call becomes a Log frame, tagged with the
 * request being served (from async context) so the daemon's log line names
 * the worker and the request id.
 */
import { formatWithOptions } from 'node:util';
import type { LogLevel } from '../protocol/messages.js';
import { monotonicMs } from './clock.js';

export interface LogSink {
  log(level: LogLevel, text: string): void;
  /** False while the instance's log budget is spent: the line would be dropped, so it is not formatted. */
  canLog(): boolean;
  /** Counts a line dropped without formatting it. */
  drop(): void;
}

/**
 * customInspect is off: Node calls an object's [Symbol.for('nodejs.util.inspect.custom')]
 * with util.inspect itself and its options as arguments, which would hand the tenant a
 * Node function (test/hostile/inspect-custom.test.ts). Workers does not honour that symbol either.
 */
const INSPECT = { depth: 4, breakLength: Infinity, colors: false, customInspect: false };

export function createConsole(sink: LogSink): Console {
  const counts = new Map<string, number>();
  const timers = new Map<string, number>();
  let indent = '';
  const emit =
    (level: LogLevel) =>
    (...args: unknown[]): void => {
      if (!sink.canLog()) {
        sink.drop();
        return;
      }
      const text = formatWithOptions(INSPECT, ...args);
      sink.log(level, indent ? text.replace(/^/gm, indent) : text);
    };
  const log = emit('log');
  const tenantConsole = {
    log,
    info: emit('info'),
    debug: emit('debug'),
    warn: emit('warn'),
    error: emit('error'),
    trace: (...args: unknown[]) => {
      const stack = new Error().stack?.split('\n').slice(2).join('\n') ?? '';
      emit('log')(formatWithOptions(INSPECT, 'Trace:', ...args) + '\n' + stack);
    },
    dir: (value: unknown) => log(value),
    dirxml: (...args: unknown[]) => log(...args),
    table: (value: unknown) => log(value),
    assert: (condition: unknown, ...args: unknown[]) => {
      if (!condition) emit('error')('Assertion failed' + (args.length ? ':' : ''), ...args);
    },
    count: (label = 'default') => {
      const n = (counts.get(label) ?? 0) + 1;
      counts.set(label, n);
      log(`${label}: ${n}`);
    },
    countReset: (label = 'default') => void counts.delete(label),
    time: (label = 'default') => void timers.set(label, monotonicMs()),
    timeLog: (label = 'default', ...args: unknown[]) => {
      const start = timers.get(label);
      if (start !== undefined) log(`${label}: ${(monotonicMs() - start).toFixed(3)}ms`, ...args);
    },
    timeEnd: (label = 'default') => {
      const start = timers.get(label);
      if (start === undefined) return;
      timers.delete(label);
      log(`${label}: ${(monotonicMs() - start).toFixed(3)}ms`);
    },
    group: (...args: unknown[]) => {
      if (args.length) log(...args);
      indent += '  ';
    },
    groupCollapsed: (...args: unknown[]) => tenantConsole.group(...args),
    groupEnd: () => {
      indent = indent.slice(2);
    },
    clear: () => {},
  };
  return tenantConsole as unknown as Console;
}

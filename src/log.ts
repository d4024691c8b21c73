/**
 * Structured log lines: one JSON object per line with a time, a level, a
 * message and the fields that identify what it is about (worker, request id,
 * instance, limit, value). Tests and embedders pass their own sink.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface LogRecord {
  level: Level;
  msg: string;
  worker?: string;
  requestId?: string;
  instance?: string;
  [field: string]: unknown;
}

export type LogSink = (record: LogRecord & { time: string }) => void;

export class Logger {
  readonly #sink: LogSink;

  constructor(sink: LogSink = jsonLinesTo(process.stdout)) {
    this.#sink = sink;
  }

  write(record: LogRecord): void {
    this.#sink({ time: new Date().toISOString(), ...record });
  }

  info(msg: string, fields: Omit<LogRecord, 'level' | 'msg'> = {}): void {
    this.write({ level: 'info', msg, ...fields });
  }

  warn(msg: string, fields: Omit<LogRecord, 'level' | 'msg'> = {}): void {
    this.write({ level: 'warn', msg, ...fields });
  }

  error(msg: string, fields: Omit<LogRecord, 'level' | 'msg'> = {}): void {
    this.write({ level: 'error', msg, ...fields });
  }
}

/**
 * JSON lines to a stream, written once per event-loop turn: with one accounting
 * line per request, a write per line would be a syscall per request.
 */
export function jsonLinesTo(stream: NodeJS.WritableStream): LogSink {
  let pending = '';
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (pending === '') return;
    const out = pending;
    pending = '';
    stream.write(out);
  };
  process.once('exit', flush);
  return (record) => {
    pending += JSON.stringify(record) + '\n';
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

/** A sink that keeps records in memory, for tests and for the admin API's recent log. */
export function memorySink(records: Array<LogRecord & { time: string }>): LogSink {
  return (record) => void records.push(record);
}

/**
 * Structured log lines: one JSON object per line with a time, a level, a
 * message and the fields that identify what it is about (worker, request id,
 * instance, limit, value). A thin layer over pino, which writes them
 * (`{"level":"info","time":"<ISO 8601>",…fields,"msg":"…"}`), so the rest of
 * the daemon keeps this small API. Tests and embedders pass their own sink;
 * the admin API's tail taps every line as it is written.
 */
import { pino, type Logger as PinoLogger } from 'pino';
import { LineOutput } from './log-output.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

export interface LogRecord {
  level: Level;
  msg: string;
  worker?: string;
  requestId?: string;
  instance?: string;
  [field: string]: unknown;
}

export type LogSink = (record: LogRecord & { time: string }) => void;

/** Sees every line as written (the JSON text, newline included) and the worker it is about, if any. */
export type LogTap = (line: string, worker: string | undefined) => void;

interface Destination {
  write(line: string): unknown;
}

/** The fields of a request's accounting line (src/broker/broker.ts). */
export interface RequestLine {
  worker: string;
  requestId: string;
  instance: string | undefined;
  status: number;
  wallMs: number;
  cpuMs: number;
  childCpuMs: number | null;
}

export class Logger {
  readonly #pino: PinoLogger<never, false>;
  readonly #taps = new Set<LogTap>();
  readonly #out: Destination;

  /**
   * Without a sink, lines go to stdout, one write per turn of the event loop (log-output.ts). Lines
   * below `level` are dropped before they are formatted (`--log-level`).
   */
  constructor(sink?: LogSink, level: Level = 'debug') {
    const out: Destination = sink ? { write: (line: string) => sink(JSON.parse(line)) } : new LineOutput(1);
    this.#out = out;
    const taps = this.#taps;
    // pino hands a stream that asks for it the object it just serialised (lastObj): the
    // worker to filter on, without parsing the line back.
    const tee = {
      [pino.symbols.needsMetadataGsym]: true,
      lastObj: null as { worker?: unknown } | null,
      write(line: string): void {
        out.write(line);
        if (taps.size === 0) return;
        const worker = this.lastObj?.worker;
        for (const tap of taps) tap(line, typeof worker === 'string' ? worker : undefined);
      },
    };
    this.#pino = pino(
      {
        level,
        base: null,
        timestamp: isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      tee,
    );
  }

  /** Calls `tap` with every line written from now on; returns the function that stops it. */
  tap(tap: LogTap): () => void {
    const own = (line: string, worker: string | undefined) => tap(line, worker);
    this.#taps.add(own);
    return () => void this.#taps.delete(own);
  }

  write(record: LogRecord): void {
    const { level, msg, ...fields } = record;
    this.#pino[level](fields, msg);
  }

  debug(msg: string, fields: Omit<LogRecord, 'level' | 'msg'> = {}): void {
    this.#pino.debug(fields, msg);
  }

  /**
   * Hot path: the accounting line every request writes, formatted here in the shape pino gives
   * the others (`{"level":"info","time":…,fields…,"msg":"request"}`, an undefined field left
   * out). pino's generic formatting of it was ~5% of the daemon's CPU under wrk (perf), and
   * this line still cost the daemon ~6 µs a request (serving with --log-level warn: req/s ×1.17,
   * interleaved), far more than its ~1 µs alone in a loop; so no JSON.stringify of strings that
   * need no escaping, and no double-to-string conversion for figures in hundredths.
   */
  request(fields: RequestLine): void {
    if (!this.#pino.isLevelEnabled('info')) return;
    const instance = fields.instance === undefined ? '' : `,"instance":${jsonString(fields.instance)}`;
    const line =
      `{"level":"info"${isoTime()},"worker":${jsonString(fields.worker)},"requestId":${jsonString(fields.requestId)}${instance}` +
      `,"status":${number(fields.status)},"wallMs":${number(fields.wallMs)},"cpuMs":${number(fields.cpuMs)},"childCpuMs":${number(fields.childCpuMs)},"msg":"request"}\n`;
    this.#out.write(line);
    for (const tap of this.#taps) tap(line, fields.worker);
  }

  info(msg: string, fields: Omit<LogRecord, 'level' | 'msg'> = {}): void {
    this.#pino.info(fields, msg);
  }

  warn(msg: string, fields: Omit<LogRecord, 'level' | 'msg'> = {}): void {
    this.#pino.warn(fields, msg);
  }

  error(msg: string, fields: Omit<LogRecord, 'level' | 'msg'> = {}): void {
    this.#pino.error(fields, msg);
  }
}

/**
 * `,"time":"<ISO 8601>"` for pino, formatted once per millisecond: under load many lines
 * share a millisecond, and toISOString() was the largest single cost of a line.
 */
let stampMs = 0;
let stamp = '';
function isoTime(): string {
  const now = Date.now();
  if (now !== stampMs) {
    stampMs = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

/**
 * A number as JSON writes it (null for null, NaN and the infinities). The accounting line's
 * figures are rounded to hundredths: those are written from their integer parts, the same
 * text String() gives (test/observability/request-line.test.ts compares them).
 */
export function number(value: number | null): string {
  if (value === null) return 'null';
  if (value >= 0 && value < 1e9) {
    const hundredths = Math.round(value * 100);
    if (hundredths / 100 === value) {
      const whole = Math.floor(hundredths / 100);
      const cents = hundredths - whole * 100;
      if (cents === 0) return `${whole}`;
      if (cents % 10 === 0) return `${whole}.${cents / 10}`;
      return cents < 10 ? `${whole}.0${cents}` : `${whole}.${cents}`;
    }
  }
  return Number.isFinite(value) ? String(value) : 'null';
}

/** A string as JSON writes it; most names and ids need no escaping, so they are only checked. */
export function jsonString(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x22 || code === 0x5c || code > 0x7e) return JSON.stringify(text);
  }
  return `"${text}"`;
}

/** A sink that keeps records in memory, for tests. */
export function memorySink(records: Array<LogRecord & { time: string }>): LogSink {
  return (record) => void records.push(record);
}

/**
 * Where log lines go without a sink: a file descriptor (stdout), written with
 * one write(2) per turn of the event loop for every line that turn produced.
 *
 * pino's asynchronous destination handed each write to libuv's thread pool:
 * at one request every few milliseconds that was a thread wake-up, a
 * completion event and one more turn of the daemon's loop per accounting line
 * (strace: 3.5 futex calls and an extra epoll wake-up per request), each
 * costing tens of µs on these machines. Written here, in the turn that made
 * the line, the daemon wakes once less per request; under load, the lines of
 * one turn still leave together.
 *
 * The write blocks while a pipe reader is not reading, as Node's own
 * process.stdout does on Linux and pino's default destination does: the log is
 * never silently lost to a slow reader. A descriptor set non-blocking by
 * someone else (EAGAIN) keeps its lines and retries; past MAX_BACKLOG_BYTES,
 * new lines are dropped and counted, and a line says how many once the
 * output drains.
 */
import { writeSync } from 'node:fs';

/** Lines held while the descriptor cannot take them, at most (then they are dropped and counted). */
export const MAX_BACKLOG_BYTES = 16 * 1024 * 1024;
const RETRY_MS = 10;

export class LineOutput {
  readonly #fd: number;
  #pending: string[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  #retry: NodeJS.Timeout | null = null;
  #dropped = 0;
  readonly #flush = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  constructor(fd: number) {
    this.#fd = fd;
    // Lines of the last turn, and any backlog, are written before the process exits.
    process.on('exit', () => this.flush());
  }

  write(line: string): void {
    if (this.#pendingBytes + line.length > MAX_BACKLOG_BYTES) {
      this.#dropped++;
      return;
    }
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (!this.#scheduled && !this.#retry) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  /** Writes everything pending now; what the descriptor does not take is kept for a retry. */
  flush(): void {
    if (this.#pending.length === 0) return;
    if (this.#dropped > 0 && this.#pendingBytes < MAX_BACKLOG_BYTES / 2) {
      this.#pending.push(droppedLine(this.#dropped));
      this.#dropped = 0;
    }
    let text = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join('');
    this.#pending = [];
    this.#pendingBytes = 0;
    let bytes = Buffer.from(text);
    try {
      while (bytes.byteLength > 0) bytes = bytes.subarray(writeSync(this.#fd, bytes));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN') return; // EPIPE, EBADF: nobody reads the log any more; the daemon goes on.
      text = bytes.toString();
      this.#pending = [text];
      this.#pendingBytes = text.length;
      this.#retry ??= setTimeout(() => {
        this.#retry = null;
        this.flush();
      }, RETRY_MS).unref();
    }
  }
}

function droppedLine(count: number): string {
  return `${JSON.stringify({ level: 'warn', time: new Date().toISOString(), lines: count, msg: 'log lines dropped: the log output did not take them in time' })}\n`;
}

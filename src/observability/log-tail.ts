/**
 * Live log lines for `edgeproc tail`: GET /logs on the admin API streams every
 * line the daemon writes from the moment of connection (NDJSON, the same JSON
 * lines as the log), optionally only those about one worker.
 *
 * A follower that reads slowly, or not at all, must not grow the daemon's
 * memory: each one has a bounded queue behind the socket's own buffer. When
 * the socket pushes back, lines wait in the queue up to `maxQueuedBytes`;
 * past that they are dropped and counted, and once the follower catches up it
 * gets the queue and then one notice line saying how many it missed.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from '../log.js';

/** Queued bytes per follower beyond the socket's buffer; about a thousand typical lines. */
export const TAIL_QUEUE_BYTES = 256 * 1024;

export interface FollowerStats {
  worker: string | null;
  /** Lines waiting in the daemon's queue for this follower, in bytes (≤ maxQueuedBytes). */
  queuedBytes: number;
  /** Bytes in the socket's writable buffer, not yet taken by the kernel. */
  socketBytes: number;
  /** Lines dropped since the last notice. */
  dropped: number;
  droppedTotal: number;
}

class Follower {
  readonly #res: ServerResponse;
  readonly #maxQueuedBytes: number;
  readonly worker: string | null;
  #queue: string[] = [];
  #queuedBytes = 0;
  #blocked = false;
  #dropped = 0;
  #droppedTotal = 0;

  constructor(res: ServerResponse, worker: string | null, maxQueuedBytes: number) {
    this.#res = res;
    this.worker = worker;
    this.#maxQueuedBytes = maxQueuedBytes;
    res.on('drain', () => this.#drained());
  }

  // Hot path while someone tails: every log line, for every follower.
  push(line: string): void {
    if (!this.#blocked) {
      this.#blocked = !this.#res.write(line);
      return;
    }
    const bytes = Buffer.byteLength(line);
    if (this.#queuedBytes + bytes > this.#maxQueuedBytes) {
      this.#dropped++;
      this.#droppedTotal++;
      return;
    }
    this.#queue.push(line);
    this.#queuedBytes += bytes;
  }

  stats(): FollowerStats {
    return {
      worker: this.worker,
      queuedBytes: this.#queuedBytes,
      socketBytes: this.#res.writableLength,
      dropped: this.#dropped,
      droppedTotal: this.#droppedTotal,
    };
  }

  end(): void {
    this.#res.end();
  }

  /** The socket took what it had: send the queue, then say what was dropped (it came after the queue). */
  #drained(): void {
    let out = this.#queue.join('');
    this.#queue = [];
    this.#queuedBytes = 0;
    if (this.#dropped > 0) {
      out += JSON.stringify({
        level: 'warn',
        time: new Date().toISOString(),
        source: 'tail',
        dropped: this.#dropped,
        msg: `edgeproc tail: ${this.#dropped} log lines dropped: this client read more slowly than the daemon logged`,
      }) + '\n';
      this.#dropped = 0;
    }
    this.#blocked = out !== '' && !this.#res.write(out);
  }
}

export class LogTail {
  readonly #followers = new Set<Follower>();
  readonly #log: Logger;
  readonly #maxQueuedBytes: number;
  #untap: (() => void) | null = null;

  constructor(log: Logger, maxQueuedBytes = TAIL_QUEUE_BYTES) {
    this.#log = log;
    this.#maxQueuedBytes = maxQueuedBytes;
  }

  /** Streams every line from now on into `res` (its head not yet sent) until the client goes away. */
  follow(res: ServerResponse, worker: string | null): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' });
    // The head now, so the client knows it is following before the first line arrives.
    res.flushHeaders();
    const follower = new Follower(res, worker, this.#maxQueuedBytes);
    this.#followers.add(follower);
    // The log is tapped only while someone follows it.
    this.#untap ??= this.#log.tap((line, about) => {
      for (const f of this.#followers) if (f.worker === null || f.worker === about) f.push(line);
    });
    res.on('close', () => {
      this.#followers.delete(follower);
      if (this.#followers.size === 0) {
        this.#untap?.();
        this.#untap = null;
      }
    });
  }

  stats(): FollowerStats[] {
    return [...this.#followers].map((f) => f.stats());
  }

  /** Ends every stream (the daemon is shutting down). */
  close(): void {
    for (const f of this.#followers) f.end();
  }
}

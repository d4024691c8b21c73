/**
 * Credit-based flow control for one direction of one stream: the sender may
 * have at most STREAM_WINDOW_BYTES unacknowledged; the receiver returns
 * credit with WINDOW frames as its consumer takes the bytes. This is what
 * bounds memory when either end reads slowly.
 */
import { STREAM_WINDOW_BYTES } from './messages.js';

export class SendWindow {
  #credit = STREAM_WINDOW_BYTES;
  #waiter: (() => void) | null = null;
  #failed: Error | null = null;

  get credit(): number {
    return this.#credit;
  }

  /** Resolves once there is credit to send; rejects if the stream was aborted meanwhile. */
  ready(): Promise<void> | undefined {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#credit > 0) return undefined;
    return new Promise((resolve, reject) => {
      this.#waiter = () => (this.#failed ? reject(this.#failed) : resolve());
    });
  }

  spend(bytes: number): void {
    this.#credit -= bytes;
  }

  grant(bytes: number): void {
    this.#credit += bytes;
    this.#wake();
  }

  fail(error: Error): void {
    this.#failed ??= error;
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }
}

/** Tracks bytes the receiver consumed and says when to send credit back. */
export class ReceiveWindow {
  #unacknowledged = 0;

  /** Records consumed bytes; returns how many to acknowledge now (0 = wait for more). */
  consumed(bytes: number): number {
    this.#unacknowledged += bytes;
    // Acknowledge in half-window steps: fewer WINDOW frames, and the sender never stalls.
    if (this.#unacknowledged < STREAM_WINDOW_BYTES / 2) return 0;
    const ack = this.#unacknowledged;
    this.#unacknowledged = 0;
    return ack;
  }

  /** Acknowledges everything outstanding (the consumer is waiting for more). */
  flush(): number {
    const ack = this.#unacknowledged;
    this.#unacknowledged = 0;
    return ack;
  }
}

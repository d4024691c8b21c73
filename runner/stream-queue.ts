/**
 * Takes, in one go, what a tenant's ReadableStream holds queued, for a reader of the runner's.
 *
 * Node 20 keeps a stream's queue in an array and takes each chunk with Array.prototype.shift,
 * which V8 does in place only while the array is under 128 KiB (16,384 entries): past that,
 * every read moves the whole queue. A tenant that enqueued 20,000 pieces of a page before
 * returning its Response cost its child ~190 ms of CPU to send it (past the default 50 ms
 * limit), 40,000 ~600 ms, where 15,000 took 21.
 *
 * This reaches into Node's own state for the stream (its `kState` symbol, found on a stream of
 * the runner's at load); should Node's layout differ from what is checked here, it takes
 * nothing and every chunk is read as before. It leaves the last entry queued, so the read that
 * takes it goes through the stream itself: that read closes the stream if the source asked for
 * it, or calls the source's pull(), exactly as it would have.
 */

/** Below this many queued chunks, reading one at a time costs no more than this. */
const TAKE_FROM = 1024;
const NONE: readonly unknown[] = Object.freeze([]);

interface QueueEntry {
  value: unknown;
  size: number;
}

interface ControllerState {
  /** Replaced by a fresh array when the stream errors: read it each time, never keep it. */
  queue: QueueEntry[];
  queueTotalSize: number;
  closeRequested: boolean;
}

/** A stream's own state and its controller's, as Node keeps them; both objects live as long as the stream. */
export interface StreamQueue {
  readonly stream: { readonly state: string };
  readonly controller: ControllerState;
}

// Captured at load, before the tenant's global scope is built.
const DefaultController = ReadableStreamDefaultController;
const kState = findStateSymbol();

function findStateSymbol(): symbol | null {
  const probe = new ReadableStream({
    start(controller) {
      controller.enqueue('probe');
    },
  }).getReader();
  const symbol = Object.getOwnPropertySymbols(probe).find((s) => s.description === 'kState');
  if (!symbol) return null;
  const queue = lookUp(probe, symbol)?.controller.queue;
  return Array.isArray(queue) && queue.length === 1 && queue[0]?.value === 'probe' ? symbol : null;
}

function lookUp(reader: object, symbol: symbol): StreamQueue | null {
  const stream = (reader as Record<symbol, { stream?: object } | undefined>)[symbol]?.stream;
  const streamState = stream && (stream as Record<symbol, { state?: unknown; controller?: object } | undefined>)[symbol];
  // A byte stream's controller keeps another kind of queue: left alone.
  if (typeof streamState?.state !== 'string' || !(streamState.controller instanceof DefaultController)) return null;
  const controller = (streamState.controller as unknown as Record<symbol, ControllerState | undefined>)[symbol];
  if (!controller || !Array.isArray(controller.queue) || typeof controller.queueTotalSize !== 'number') return null;
  return { stream: streamState as StreamQueue['stream'], controller };
}

/**
 * The state of the stream `reader` reads, for readsAtOnce() and takeQueued(); null when it is
 * not a stream this can see into. Looked up once per stream, by the reader holding its lock.
 */
export function streamQueue(reader: ReadableStreamDefaultReader<unknown>): StreamQueue | null {
  return kState ? lookUp(reader, kState) : null;
}

/**
 * Whether the next read will be answered within this turn: a chunk is queued, or the stream is
 * closing, closed (after its last chunk was read, at once) or errored.
 */
export function readsAtOnce(queue: StreamQueue): boolean {
  return queue.stream.state !== 'readable' || queue.controller.queue.length > 0 || queue.controller.closeRequested;
}

/**
 * The chunks queued, all but the last, taken out of the queue in order (as that many reads
 * would have); none when there are few. Only between reads: a read waiting would be owed the
 * first chunk, and the caller holds the stream's lock, so no other read can be.
 */
export function takeQueued({ stream, controller }: StreamQueue): readonly unknown[] {
  if (stream.state !== 'readable' || controller.queue.length < TAKE_FROM) return NONE;
  const taken = controller.queue.splice(0, controller.queue.length - 1);
  let size = 0;
  const values = new Array<unknown>(taken.length);
  for (let i = 0; i < taken.length; i++) {
    size += taken[i]!.size;
    values[i] = taken[i]!.value;
  }
  controller.queueTotalSize = Math.max(0, controller.queueTotalSize - size);
  return values;
}

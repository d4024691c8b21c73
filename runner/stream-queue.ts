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

interface QueueEntry {
  value: unknown;
  size: number;
}

interface ControllerState {
  queue: QueueEntry[];
  queueTotalSize: number;
  closeRequested: boolean;
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
  const queue = controllerState(probe, symbol)?.queue;
  return Array.isArray(queue) && queue.length === 1 && queue[0]?.value === 'probe' ? symbol : null;
}

function controllerState(reader: object, symbol: symbol): ControllerState | null {
  const readerState = (reader as Record<symbol, { stream?: object; readRequests?: unknown[] } | undefined>)[symbol];
  // Only between reads: a read waiting would be owed the first chunk.
  if (!readerState?.stream || !Array.isArray(readerState.readRequests) || readerState.readRequests.length > 0) return null;
  const streamState = (readerState.stream as Record<symbol, { state?: string; controller?: object } | undefined>)[symbol];
  // A byte stream's controller keeps another kind of queue: left alone.
  if (streamState?.state !== 'readable' || !(streamState.controller instanceof DefaultController)) return null;
  const state = (streamState.controller as unknown as Record<symbol, ControllerState | undefined>)[symbol];
  return state && Array.isArray(state.queue) && typeof state.queueTotalSize === 'number' ? state : null;
}

/**
 * Whether the next read of `reader` will be answered within this turn: a chunk is queued, or the
 * source has closed the stream and the read will say so. False when it may wait, or the stream
 * is not one this can see into.
 */
export function readsAtOnce(reader: ReadableStreamDefaultReader<unknown>): boolean {
  const state = kState && controllerState(reader, kState);
  return state ? state.queue.length > 0 || state.closeRequested === true : false;
}

/**
 * The chunks queued in the stream `reader` reads, all but the last, taken out of its queue in
 * order (as that many reads would have); empty when there are few, or the stream is not one
 * this can see into.
 */
export function takeQueued(reader: ReadableStreamDefaultReader<unknown>): unknown[] {
  if (!kState) return [];
  const state = controllerState(reader, kState);
  if (!state || state.queue.length < TAKE_FROM) return [];
  const taken = state.queue.splice(0, state.queue.length - 1);
  let size = 0;
  const values = new Array<unknown>(taken.length);
  for (let i = 0; i < taken.length; i++) {
    size += taken[i]!.size;
    values[i] = taken[i]!.value;
  }
  state.queueTotalSize = Math.max(0, state.queueTotalSize - size);
  return values;
}

/**
 * Byte-level codec for the channel between daemon and child: length-prefixed
 * binary frames over a stream socket. Pure functions over Uint8Array so both
 * sides can import it; no I/O here.
 */
import type { IdTable } from './id-table.js';
import { FRAME_HEADER_BYTES, FrameType, MAX_FRAME_BYTES, type SettledMessage } from './messages.js';

export interface Frame {
  type: FrameType;
  stream: number;
  payload: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Small frames are carved out of a shared slab instead of each getting a buffer of its own.
 * A Uint8Array over 64 bytes has its memory outside V8's heap: malloc, free and a sweeper
 * entry per frame, ~1.2 µs more than a view into a slab for a 100-byte head on these VMs
 * (and a hello request makes one on each side). The slab's memory is never reused: a frame
 * waiting in a socket's queue keeps its slab alive, and a full slab is dropped for a fresh,
 * zeroed one, so no frame can see another's bytes.
 */
// Node's own Buffer pool is 8 KiB too: a larger slab would be memory an idle child keeps.
const SLAB_BYTES = 8 * 1024;
const SLAB_MAX_FRAME_BYTES = 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

export function allocFrame(bytes: number): Uint8Array {
  if (bytes > SLAB_MAX_FRAME_BYTES) return new Uint8Array(bytes);
  if (slabUsed + bytes > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, bytes);
  // Eight-byte aligned, as Node's own Buffer pool keeps its slices.
  slabUsed = (slabUsed + bytes + 7) & ~7;
  return out;
}

/** For the f64s of Settled and Turn frames: one DataView for the module, not one per frame. */
const scratch = new DataView(new ArrayBuffer(8));

function writeF64(out: Uint8Array, at: number, value: number): void {
  scratch.setFloat64(0, value);
  for (let i = 0; i < 8; i++) out[at + i] = scratch.getUint8(i);
}

function readF64(bytes: Uint8Array, at: number): number {
  for (let i = 0; i < 8; i++) scratch.setUint8(i, bytes[at + i]!);
  return scratch.getFloat64(0);
}

/** Encodes a frame header followed by `payload` into one buffer. */
export function encodeFrame(type: FrameType, stream: number, payload: Uint8Array): Uint8Array {
  const out = allocFrame(FRAME_HEADER_BYTES + payload.byteLength);
  writeHeader(out, type, stream, payload.byteLength);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Encodes just a header, for DATA frames whose payload is written separately (no copy). */
export function encodeHeader(type: FrameType, stream: number, payloadBytes: number): Uint8Array {
  const out = allocFrame(FRAME_HEADER_BYTES);
  writeHeader(out, type, stream, payloadBytes);
  return out;
}

/**
 * Hot path: every request head is one of these (and every response head but those of
 * one-frame responses). The JSON is encoded straight into the frame: TextEncoder.encode()
 * costs ~800 ns for a 120-character head in Node 20, encodeInto() ~55, and it saves the copy.
 */
export function encodeJsonFrame(type: FrameType, stream: number, message: unknown): Uint8Array {
  const { out, written } = jsonAfter(FRAME_HEADER_BYTES, message);
  writeHeader(out, type, stream, written);
  return out;
}

/**
 * `message` as JSON in UTF-8, after `offset` bytes left for a header: sized for one byte per
 * character first (heads are mostly ASCII), then, if the text does not fit, for the worst case
 * of three per UTF-16 unit. The buffer returned ends where the JSON does.
 */
export function jsonAfter(offset: number, message: unknown): { out: Uint8Array; written: number } {
  const text = JSON.stringify(message);
  let out = allocFrame(offset + text.length);
  let { read, written } = encoder.encodeInto(text, out.subarray(offset));
  if (read < text.length) {
    out = allocFrame(offset + text.length * 3);
    ({ written } = encoder.encodeInto(text, out.subarray(offset)));
  }
  return { out: written === out.byteLength - offset ? out : out.subarray(0, offset + written), written };
}

/**
 * Settled in 13 bytes: u32 waitUntilFailures, u8 waitUntilTimedOut, f64 cpuMs. Hot path: once
 * per request on both sides, where JSON's stringify and parse cost more than the frame's travel.
 */
const SETTLED_PAYLOAD_BYTES = 13;

export function encodeSettledFrame(stream: number, message: SettledMessage): Uint8Array {
  const out = allocFrame(FRAME_HEADER_BYTES + SETTLED_PAYLOAD_BYTES);
  writeHeader(out, FrameType.Settled, stream, SETTLED_PAYLOAD_BYTES);
  writeU32(out, FRAME_HEADER_BYTES, message.waitUntilFailures);
  out[FRAME_HEADER_BYTES + 4] = message.waitUntilTimedOut ? 1 : 0;
  writeF64(out, FRAME_HEADER_BYTES + 5, message.cpuMs);
  return out;
}

export function decodeSettled(frame: Frame): SettledMessage {
  const { payload } = frame;
  if (payload.byteLength !== SETTLED_PAYLOAD_BYTES) throw new Error(`a Settled frame of ${payload.byteLength} bytes, not ${SETTLED_PAYLOAD_BYTES}`);
  return { waitUntilFailures: readU32(payload, 0), waitUntilTimedOut: payload[4] === 1, cpuMs: readF64(payload, 5) };
}

/** One entry of a Turn frame: u32 stream, f64 CPU ms. */
const TURN_ENTRY_BYTES = 12;

/**
 * A Turn frame (see FrameType.Turn) with the child's CPU count of each request in `counts`
 * (stream → microseconds), in milliseconds.
 */
export function encodeTurnFrame(stream: number, counts: IdTable<number>): Uint8Array {
  const ids = counts.liveIds();
  const values = counts.live();
  const payloadBytes = ids.length * TURN_ENTRY_BYTES;
  const out = allocFrame(FRAME_HEADER_BYTES + payloadBytes);
  writeHeader(out, FrameType.Turn, stream, payloadBytes);
  for (let i = 0, at = FRAME_HEADER_BYTES; i < ids.length; i++, at += TURN_ENTRY_BYTES) {
    writeU32(out, at, ids[i]!);
    writeF64(out, at + 4, values[i]! / 1000);
  }
  return out;
}

/** Calls `visit` with each stream and CPU count (ms) of a Turn frame; a payload that is not whole entries is rejected. */
export function decodeTurnCounts(frame: Frame, visit: (stream: number, cpuMs: number) => void): void {
  const { payload } = frame;
  if (payload.byteLength % TURN_ENTRY_BYTES !== 0) throw new Error(`a Turn frame of ${payload.byteLength} bytes, not a multiple of ${TURN_ENTRY_BYTES}`);
  for (let at = 0; at < payload.byteLength; at += TURN_ENTRY_BYTES) {
    visit(readU32(payload, at), readF64(payload, at + 4));
  }
}

export function encodeWindowFrame(type: FrameType, stream: number, bytes: number): Uint8Array {
  const out = allocFrame(FRAME_HEADER_BYTES + 4);
  writeHeader(out, type, stream, 4);
  writeU32(out, FRAME_HEADER_BYTES, bytes);
  return out;
}

export function decodeJson<T>(frame: Frame): T {
  return JSON.parse(decoder.decode(frame.payload)) as T;
}

export function decodeWindow(frame: Frame): number {
  return readU32(frame.payload, 0);
}

// Big-endian, byte by byte: a DataView per frame was an object per header written or read.
export function writeHeader(out: Uint8Array, type: FrameType, stream: number, payloadBytes: number): void {
  writeU32(out, 0, payloadBytes);
  out[4] = type;
  writeU32(out, 5, stream);
}

export function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}

export function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

export class FrameTooLargeError extends Error {
  constructor(readonly bytes: number) {
    super(`frame of ${bytes} bytes exceeds the channel limit of ${MAX_FRAME_BYTES} bytes`);
  }
}

/**
 * Incremental decoder: feed it socket chunks, it calls `onFrame` for each
 * complete frame. Payloads are views into the received chunk when a frame
 * sits wholly inside one chunk (the common case), copies otherwise.
 */
export class FrameDecoder {
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  readonly #onFrame: (frame: Frame) => void;

  constructor(onFrame: (frame: Frame) => void) {
    this.#onFrame = onFrame;
  }

  // Hot path: every byte the channel receives passes here.
  push(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.#pendingBytes > 0) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.byteLength;
      if (this.#pendingBytes < FRAME_HEADER_BYTES) return;
      const needed = FRAME_HEADER_BYTES + this.#peekLength();
      if (this.#pendingBytes < needed) return;
      buf = concat(this.#pending, this.#pendingBytes);
      this.#pending = [];
      this.#pendingBytes = 0;
    }
    let offset = 0;
    while (buf.byteLength - offset >= FRAME_HEADER_BYTES) {
      const length = readU32(buf, offset);
      if (length > MAX_FRAME_BYTES) throw new FrameTooLargeError(length);
      const end = offset + FRAME_HEADER_BYTES + length;
      if (end > buf.byteLength) break;
      this.#onFrame({
        type: buf[offset + 4] as FrameType,
        stream: readU32(buf, offset + 5),
        payload: buf.subarray(offset + FRAME_HEADER_BYTES, end),
      });
      offset = end;
    }
    if (offset < buf.byteLength) {
      const rest = buf.subarray(offset);
      this.#pending.push(rest);
      this.#pendingBytes = rest.byteLength;
    }
  }

  #peekLength(): number {
    const head = concat(this.#pending, Math.min(this.#pendingBytes, 64));
    const length = readU32(head, 0);
    if (length > MAX_FRAME_BYTES) throw new FrameTooLargeError(length);
    return length;
  }
}

function concat(chunks: Uint8Array[], maxBytes: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.byteLength <= maxBytes) return chunks[0]!;
  const out = new Uint8Array(maxBytes);
  let at = 0;
  for (const c of chunks) {
    if (at >= maxBytes) break;
    const take = c.subarray(0, maxBytes - at);
    out.set(take, at);
    at += take.byteLength;
  }
  return out;
}

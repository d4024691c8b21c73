/**
 * Byte-level codec for the channel between daemon and child: length-prefixed
 * binary frames over a stream socket. Pure functions over Uint8Array so both
 * sides can import it; no I/O here.
 */
import { FRAME_HEADER_BYTES, FrameType, MAX_FRAME_BYTES, type SettledMessage } from './messages.js';

export interface Frame {
  type: FrameType;
  stream: number;
  payload: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a frame header followed by `payload` into one buffer. */
export function encodeFrame(type: FrameType, stream: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  writeHeader(out, type, stream, payload.byteLength);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Encodes just a header, for DATA frames whose payload is written separately (no copy). */
export function encodeHeader(type: FrameType, stream: number, payloadBytes: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES);
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
function jsonAfter(offset: number, message: unknown): { out: Uint8Array; written: number } {
  const text = JSON.stringify(message);
  let out = new Uint8Array(offset + text.length);
  let { read, written } = encoder.encodeInto(text, out.subarray(offset));
  if (read < text.length) {
    out = new Uint8Array(offset + text.length * 3);
    ({ written } = encoder.encodeInto(text, out.subarray(offset)));
  }
  return { out: written === out.byteLength - offset ? out : out.subarray(0, offset + written), written };
}

/**
 * The head of a frame whose payload is a JSON message followed by `bodyBytes` of body: frame
 * header, u32 JSON length, JSON. The body is sent after it as is (no copy).
 */
export function encodeJsonBodyHeader(type: FrameType, stream: number, message: unknown, bodyBytes: number): Uint8Array {
  const { out, written } = jsonAfter(FRAME_HEADER_BYTES + 4, message);
  writeHeader(out, type, stream, 4 + written + bodyBytes);
  new DataView(out.buffer, out.byteOffset).setUint32(FRAME_HEADER_BYTES, written);
  return out;
}

/** The JSON message and the body of a frame encoded by encodeJsonBodyHeader; throws if the lengths do not add up. */
export function decodeJsonBody<T>(frame: Frame): { message: T; body: Uint8Array } {
  const { payload } = frame;
  if (payload.byteLength < 4) throw new Error('a JSON-and-body frame shorter than its length field');
  const jsonBytes = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
  if (4 + jsonBytes > payload.byteLength) throw new Error('a JSON-and-body frame whose JSON runs past its end');
  const message = JSON.parse(decoder.decode(payload.subarray(4, 4 + jsonBytes))) as T;
  return { message, body: payload.subarray(4 + jsonBytes) };
}

/**
 * Settled in 13 bytes: u32 waitUntilFailures, u8 waitUntilTimedOut, f64 cpuMs. Hot path: once
 * per request on both sides, where JSON's stringify and parse cost more than the frame's travel.
 */
const SETTLED_PAYLOAD_BYTES = 13;

export function encodeSettledFrame(stream: number, message: SettledMessage): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + SETTLED_PAYLOAD_BYTES);
  writeHeader(out, FrameType.Settled, stream, SETTLED_PAYLOAD_BYTES);
  const view = new DataView(out.buffer, FRAME_HEADER_BYTES);
  view.setUint32(0, message.waitUntilFailures);
  view.setUint8(4, message.waitUntilTimedOut ? 1 : 0);
  view.setFloat64(5, message.cpuMs);
  return out;
}

export function decodeSettled(frame: Frame): SettledMessage {
  const { payload } = frame;
  if (payload.byteLength !== SETTLED_PAYLOAD_BYTES) throw new Error(`a Settled frame of ${payload.byteLength} bytes, not ${SETTLED_PAYLOAD_BYTES}`);
  const view = new DataView(payload.buffer, payload.byteOffset, SETTLED_PAYLOAD_BYTES);
  return { waitUntilFailures: view.getUint32(0), waitUntilTimedOut: view.getUint8(4) === 1, cpuMs: view.getFloat64(5) };
}

export function encodeWindowFrame(type: FrameType, stream: number, bytes: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + 4);
  writeHeader(out, type, stream, 4);
  new DataView(out.buffer).setUint32(FRAME_HEADER_BYTES, bytes);
  return out;
}

export function decodeJson<T>(frame: Frame): T {
  return JSON.parse(decoder.decode(frame.payload)) as T;
}

export function decodeWindow(frame: Frame): number {
  return new DataView(frame.payload.buffer, frame.payload.byteOffset, 4).getUint32(0);
}

function writeHeader(out: Uint8Array, type: FrameType, stream: number, payloadBytes: number): void {
  const view = new DataView(out.buffer, out.byteOffset, FRAME_HEADER_BYTES);
  view.setUint32(0, payloadBytes);
  view.setUint8(4, type);
  view.setUint32(5, stream);
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
      const view = new DataView(buf.buffer, buf.byteOffset + offset, FRAME_HEADER_BYTES);
      const length = view.getUint32(0);
      if (length > MAX_FRAME_BYTES) throw new FrameTooLargeError(length);
      const end = offset + FRAME_HEADER_BYTES + length;
      if (end > buf.byteLength) break;
      this.#onFrame({
        type: view.getUint8(4) as FrameType,
        stream: view.getUint32(5),
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
    const length = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
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

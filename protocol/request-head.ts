/**
 * The codec of RequestHead frames, the one frame every request sends the child: in binary,
 * not JSON. JSON.stringify in the daemon and JSON.parse in the child were ~2% and ~5% of
 * their CPU under wrk (perf), for a head that is a method, a URL and a list of header
 * strings: here each string is written and read byte by byte (Node hands the daemon every
 * one as latin1, a character per byte).
 *
 * Payload: u8 format, then for FORMAT_BINARY: u8 flags (bit 0: hasBody), u32 header
 * count, then the method, the URL and each header's name and value, every string as a u32
 * length and its latin1 bytes. FORMAT_JSON (the rest of the payload is the head as JSON)
 * carries what the binary form cannot: a scheduled event, or a character above U+00FF.
 */
import { Buffer } from 'node:buffer';
import { allocFrame, readU32, writeHeader, writeU32, type Frame } from './frames.js';
import { FRAME_HEADER_BYTES, FrameType, type HeaderList, type RequestHeadMessage } from './messages.js';

const FORMAT_JSON = 0;
const FORMAT_BINARY = 1;
const FLAG_HAS_BODY = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeRequestHeadFrame(stream: number, head: RequestHeadMessage): Uint8Array {
  return (head.scheduled === undefined && binaryFrame(stream, head)) || jsonFrame(stream, head);
}

/** Null when a string holds a character a byte cannot carry. */
function binaryFrame(stream: number, head: RequestHeadMessage): Uint8Array | null {
  const { method, url, headers } = head;
  let bytes = 1 + 1 + 4 + 4 + method.length + 4 + url.length;
  for (let i = 0; i < headers.length; i++) bytes += 8 + headers[i]![0].length + headers[i]![1].length;
  const out = allocFrame(FRAME_HEADER_BYTES + bytes);
  writeHeader(out, FrameType.RequestHead, stream, bytes);
  let at = FRAME_HEADER_BYTES;
  out[at++] = FORMAT_BINARY;
  out[at++] = head.hasBody ? FLAG_HAS_BODY : 0;
  writeU32(out, at, headers.length);
  at = writeString(out, at + 4, method);
  if (at < 0) return null;
  at = writeString(out, at, url);
  for (let i = 0; i < headers.length && at >= 0; i++) {
    at = writeString(out, at, headers[i]![0]);
    if (at >= 0) at = writeString(out, at, headers[i]![1]);
  }
  return at < 0 ? null : out;
}

/** Writes `text` as a u32 length and latin1 bytes at `at`; where it ends, or -1 past U+00FF. */
function writeString(out: Uint8Array, at: number, text: string): number {
  writeU32(out, at, text.length);
  at += 4;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) return -1;
    out[at + i] = code;
  }
  return at + text.length;
}

function jsonFrame(stream: number, head: RequestHeadMessage): Uint8Array {
  const json = encoder.encode(JSON.stringify(head));
  const out = allocFrame(FRAME_HEADER_BYTES + 1 + json.byteLength);
  writeHeader(out, FrameType.RequestHead, stream, 1 + json.byteLength);
  out[FRAME_HEADER_BYTES] = FORMAT_JSON;
  out.set(json, FRAME_HEADER_BYTES + 1);
  return out;
}

/** Throws on a payload that does not hold a whole head, as for any malformed frame. */
export function decodeRequestHead(frame: Frame): RequestHeadMessage {
  const payload = frame.payload;
  if (payload[0] === FORMAT_JSON) return JSON.parse(decoder.decode(payload.subarray(1))) as RequestHeadMessage;
  if (payload[0] !== FORMAT_BINARY || payload.byteLength < 10) throw new Error(`a RequestHead frame of unknown format ${payload[0]}`);
  const reader = new StringReader(payload, 6);
  const count = readU32(payload, 2);
  const method = reader.next();
  const url = reader.next();
  const headers: HeaderList = [];
  for (let i = 0; i < count; i++) headers.push([reader.next(), reader.next()]);
  if (reader.at !== payload.byteLength) throw new Error('a RequestHead frame with bytes after its last header');
  return { method, url, headers, hasBody: (payload[1]! & FLAG_HAS_BODY) !== 0 };
}

class StringReader {
  constructor(
    readonly bytes: Uint8Array,
    public at: number,
  ) {}

  next(): string {
    const { bytes } = this;
    if (this.at + 4 > bytes.byteLength) throw new Error('a RequestHead frame that ends inside a length');
    const length = readU32(bytes, this.at);
    const start = this.at + 4;
    const end = start + length;
    if (end > bytes.byteLength) throw new Error('a RequestHead frame whose string runs past its end');
    this.at = end;
    return latin1(bytes, start, end);
  }
}

/** Latin1, not TextDecoder('latin1'), which the Encoding standard makes windows-1252. */
const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string;
function latin1(bytes: Uint8Array, start: number, end: number): string {
  return latin1Slice.call(bytes, start, end);
}

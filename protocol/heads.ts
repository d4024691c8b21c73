/**
 * The codec of request and response heads, the frames every request sends each way: in
 * binary, not JSON. Under wrk, JSON.stringify and JSON.parse of the two heads (with their
 * TextEncoder and TextDecoder) were ~5% of the daemon's perf samples and ~9% of the child's,
 * for what is a few numbers and a list of strings that are bytes anyway: Node's parser hands
 * the daemon every request string as latin1, and a Response's status text and headers are
 * ByteStrings. Each string is a u32 length and its latin1 bytes, written in a loop and read
 * with Buffer's latin1Slice.
 *
 * Every head payload starts with a format byte. FORMAT_JSON: the rest is the head as JSON,
 * for what the binary form does not carry (a scheduled event; a character past U+00FF, which
 * only a runner its tenant subverted sends). FORMAT_BINARY:
 *   request:  u8 flags (bit 0 hasBody), u32 header count, method, URL, then each header's
 *             name and value;
 *   response: u8 flags (bit 0 hasBody, bit 1 bodyLength known), u16 status, u32 bodyLength,
 *             u32 header count, status text, then each header's name and value.
 * A decoder throws on a payload that does not hold exactly one head, as for any malformed
 * frame; the daemon still checks every field of a response head (src/broker/response-head.ts).
 */
import { Buffer } from 'node:buffer';
import { allocFrame, jsonAfter, readU32, writeHeader, writeU32, type Frame } from './frames.js';
import { FRAME_HEADER_BYTES, FrameType, type HeaderList, type RequestHeadMessage, type ResponseHeadMessage } from './messages.js';

const FORMAT_JSON = 0;
const FORMAT_BINARY = 1;
const FLAG_HAS_BODY = 1;
const FLAG_BODY_LENGTH = 2;
/** Format, flags, header count. */
const REQUEST_FIXED_BYTES = 1 + 1 + 4;
/** Format, flags, status, body length, header count. */
const RESPONSE_FIXED_BYTES = 1 + 1 + 2 + 4 + 4;

const decoder = new TextDecoder();

export function encodeRequestHeadFrame(stream: number, head: RequestHeadMessage): Uint8Array {
  return (head.scheduled === undefined && binaryRequestHead(stream, head)) || jsonHead(FrameType.RequestHead, stream, head, 0);
}

/** Throws on a payload that does not hold a whole head, as for any malformed frame. */
export function decodeRequestHead(frame: Frame): RequestHeadMessage {
  const payload = frame.payload;
  if (payload[0] === FORMAT_JSON) return JSON.parse(decoder.decode(payload.subarray(1))) as RequestHeadMessage;
  checkFormat(payload, 0, payload.byteLength, REQUEST_FIXED_BYTES);
  const reader = new StringReader(payload, REQUEST_FIXED_BYTES, payload.byteLength);
  const count = readU32(payload, 2);
  const method = reader.next();
  const url = reader.next();
  const headers = reader.headers(count);
  return { method, url, headers, hasBody: (payload[1]! & FLAG_HAS_BODY) !== 0 };
}

/** A ResponseHead frame: the head of a response whose body follows in DATA frames, or has none. */
export function encodeResponseHeadFrame(stream: number, head: ResponseHeadMessage): Uint8Array {
  return binaryResponseHead(FrameType.ResponseHead, stream, head, 0, 0) ?? jsonHead(FrameType.ResponseHead, stream, head, 0);
}

export function decodeResponseHead(frame: Frame): ResponseHeadMessage {
  return responseHeadAt(frame.payload, 0, frame.payload.byteLength);
}

/**
 * The start of a Response frame (a whole response in one frame): frame header, u32 length of
 * the head, the head; the body's `bodyBytes` are sent after it as they are (no copy).
 */
export function encodeResponseHeader(stream: number, head: ResponseHeadMessage, bodyBytes: number): Uint8Array {
  const out = binaryResponseHead(FrameType.Response, stream, head, 4, bodyBytes) ?? jsonHead(FrameType.Response, stream, head, 4, bodyBytes);
  writeU32(out, FRAME_HEADER_BYTES, out.byteLength - FRAME_HEADER_BYTES - 4);
  return out;
}

export function decodeResponse(frame: Frame): { message: ResponseHeadMessage; body: Uint8Array } {
  const { payload } = frame;
  if (payload.byteLength < 4) throw new Error('a Response frame shorter than its length field');
  const end = 4 + readU32(payload, 0);
  if (end > payload.byteLength) throw new Error('a Response frame whose head runs past its end');
  return { message: responseHeadAt(payload, 4, end), body: payload.subarray(end) };
}

/** Null when a string holds a character a byte cannot carry. */
function binaryRequestHead(stream: number, head: RequestHeadMessage): Uint8Array | null {
  const { method, url, headers } = head;
  const bytes = REQUEST_FIXED_BYTES + 4 + method.length + 4 + url.length + headerBytes(headers);
  if (Number.isNaN(bytes)) return null;
  const out = allocFrame(FRAME_HEADER_BYTES + bytes);
  writeHeader(out, FrameType.RequestHead, stream, bytes);
  let at = FRAME_HEADER_BYTES;
  out[at] = FORMAT_BINARY;
  out[at + 1] = head.hasBody ? FLAG_HAS_BODY : 0;
  writeU32(out, at + 2, headers.length);
  at = writeString(out, at + REQUEST_FIXED_BYTES, method);
  if (at >= 0) at = writeString(out, at, url);
  return writeHeaders(out, at, headers) < 0 ? null : out;
}

/**
 * A response head after the frame header and `prefix` bytes (the Response frame's length
 * field), in a frame whose payload also counts `bodyBytes` sent after it. Null when the
 * binary form cannot carry it.
 */
function binaryResponseHead(type: FrameType, stream: number, head: ResponseHeadMessage, prefix: number, bodyBytes: number): Uint8Array | null {
  const { status, statusText, headers, bodyLength } = head;
  if (!Number.isInteger(status) || status < 0 || status > 0xffff) return null;
  if (bodyLength !== null && (!Number.isInteger(bodyLength) || bodyLength < 0 || bodyLength > 0xffffffff)) return null;
  if (typeof statusText !== 'string' || typeof head.hasBody !== 'boolean') return null;
  const bytes = RESPONSE_FIXED_BYTES + 4 + statusText.length + headerBytes(headers);
  if (Number.isNaN(bytes)) return null;
  const out = allocFrame(FRAME_HEADER_BYTES + prefix + bytes);
  writeHeader(out, type, stream, prefix + bytes + bodyBytes);
  let at = FRAME_HEADER_BYTES + prefix;
  out[at] = FORMAT_BINARY;
  out[at + 1] = (head.hasBody ? FLAG_HAS_BODY : 0) | (bodyLength === null ? 0 : FLAG_BODY_LENGTH);
  out[at + 2] = status >>> 8;
  out[at + 3] = status;
  writeU32(out, at + 4, bodyLength ?? 0);
  writeU32(out, at + 8, headers.length);
  at = writeString(out, at + RESPONSE_FIXED_BYTES, statusText);
  return writeHeaders(out, at, headers) < 0 ? null : out;
}

function responseHeadAt(payload: Uint8Array, start: number, end: number): ResponseHeadMessage {
  if (payload[start] === FORMAT_JSON) return JSON.parse(decoder.decode(payload.subarray(start + 1, end))) as ResponseHeadMessage;
  checkFormat(payload, start, end, RESPONSE_FIXED_BYTES);
  const flags = payload[start + 1]!;
  const reader = new StringReader(payload, start + RESPONSE_FIXED_BYTES, end);
  const statusText = reader.next();
  const headers = reader.headers(readU32(payload, start + 8));
  return {
    status: (payload[start + 2]! << 8) | payload[start + 3]!,
    statusText,
    headers,
    hasBody: (flags & FLAG_HAS_BODY) !== 0,
    bodyLength: flags & FLAG_BODY_LENGTH ? readU32(payload, start + 4) : null,
  };
}

function jsonHead(type: FrameType, stream: number, head: object, prefix: number, bodyBytes = 0): Uint8Array {
  const { out, written } = jsonAfter(FRAME_HEADER_BYTES + prefix + 1, head);
  writeHeader(out, type, stream, prefix + 1 + written + bodyBytes);
  out[FRAME_HEADER_BYTES + prefix] = FORMAT_JSON;
  return out;
}

function checkFormat(payload: Uint8Array, start: number, end: number, fixedBytes: number): void {
  if (payload[start] !== FORMAT_BINARY) throw new Error(`a head of unknown format ${payload[start]}`);
  if (end - start < fixedBytes) throw new Error('a head shorter than its fixed fields');
}

/** Their size in the binary form, or NaN when they are not a list of two strings each (JSON carries those). */
function headerBytes(headers: HeaderList): number {
  if (!Array.isArray(headers)) return NaN;
  let bytes = 0;
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i];
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return NaN;
    bytes += 8 + pair[0].length + pair[1].length;
  }
  return bytes;
}

/** Where the headers end, or -1 as soon as a string (or `at`) is -1. */
function writeHeaders(out: Uint8Array, at: number, headers: HeaderList): number {
  for (let i = 0; i < headers.length && at >= 0; i++) {
    at = writeString(out, at, headers[i]![0]);
    if (at >= 0) at = writeString(out, at, headers[i]![1]);
  }
  return at;
}

/** Writes `text` as a u32 length and latin1 bytes at `at`; where it ends, or -1 past U+00FF. */
function writeString(out: Uint8Array, at: number, text: string): number {
  if (at < 0) return -1;
  writeU32(out, at, text.length);
  at += 4;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) return -1;
    out[at + i] = code;
  }
  return at + text.length;
}

/** Latin1, not TextDecoder('latin1'), which the Encoding standard makes windows-1252. */
const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string;

class StringReader {
  #at: number;
  readonly #bytes: Uint8Array;
  readonly #end: number;

  constructor(bytes: Uint8Array, at: number, end: number) {
    this.#bytes = bytes;
    this.#at = at;
    this.#end = end;
  }

  next(): string {
    const at = this.#at;
    if (at + 4 > this.#end) throw new Error('a head that ends inside a length');
    const start = at + 4;
    const end = start + readU32(this.#bytes, at);
    if (end > this.#end) throw new Error('a head whose string runs past its end');
    this.#at = end;
    return latin1Slice.call(this.#bytes, start, end);
  }

  /** `count` name and value pairs, which must be the last of the head. */
  headers(count: number): HeaderList {
    const headers: HeaderList = [];
    for (let i = 0; i < count; i++) headers.push([this.next(), this.next()]);
    if (this.#at !== this.#end) throw new Error('a head with bytes after its last header');
    return headers;
  }
}

import { describe, expect, it } from 'vitest';
import { decodeJson, decodeSettled, encodeJsonFrame, encodeSettledFrame, FrameDecoder, type Frame } from '../../protocol/frames.js';
import { FRAME_HEADER_BYTES, FrameType, type RequestHeadMessage, type ResponseHeadMessage } from '../../protocol/messages.js';
import { decodeRequestHead, decodeResponse, decodeResponseHead, encodeRequestHeadFrame, encodeResponseHeader, encodeResponseHeadFrame } from '../../protocol/heads.js';

function decodeAll(bytes: Uint8Array, chunk = bytes.byteLength): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame));
  for (let at = 0; at < bytes.byteLength; at += chunk) decoder.push(bytes.subarray(at, at + chunk));
  return frames;
}

describe('JSON frames', () => {
  const messages = {
    ascii: { status: 200, statusText: 'OK', headers: [['content-type', 'text/plain']], hasBody: true, bodyLength: 21 },
    latin: { status: 200, statusText: 'Très bien', headers: [['x-name', 'Zoë']], hasBody: false, bodyLength: null },
    wide: { text: '日本語のテキスト', emoji: '🙂🙃', mixed: `a${'é'.repeat(500)}z` },
    empty: {},
    loneSurrogate: { s: 'a\ud800b' },
  };

  for (const [name, message] of Object.entries(messages)) {
    it(`carries a ${name} message intact, with a length that matches its payload, whole or in pieces`, () => {
      const frame = encodeJsonFrame(FrameType.ResponseHead, 7, message);
      const payloadBytes = new DataView(frame.buffer, frame.byteOffset, FRAME_HEADER_BYTES).getUint32(0);
      expect(frame.byteLength).toBe(FRAME_HEADER_BYTES + payloadBytes);
      // What the payload must be: the UTF-8 of the JSON (a lone surrogate becomes U+FFFD, as everywhere).
      expect(Buffer.from(frame.subarray(FRAME_HEADER_BYTES)).toString()).toBe(Buffer.from(JSON.stringify(message)).toString());
      for (const chunk of [frame.byteLength, 5, 1]) {
        const frames = decodeAll(frame, chunk);
        expect(frames.map((f) => [f.type, f.stream])).toEqual([[FrameType.ResponseHead, 7]]);
        expect(decodeJson(frames[0]!)).toEqual(JSON.parse(JSON.stringify(message)));
      }
    });
  }

  it('keeps frames apart when several arrive in one chunk', () => {
    const a = encodeJsonFrame(FrameType.RequestHead, 1, { n: 'é' });
    const b = encodeJsonFrame(FrameType.Settled, 3, { cpuMs: 0.5 });
    const both = new Uint8Array(a.byteLength + b.byteLength);
    both.set(a, 0);
    both.set(b, a.byteLength);
    expect(decodeAll(both).map((f) => [f.stream, decodeJson(f)])).toEqual([[1, { n: 'é' }], [3, { cpuMs: 0.5 }]]);
  });
});

describe('Response frames (a whole response)', () => {
  const heads: Array<[string, ResponseHeadMessage]> = [
    ['a binary head', { status: 200, statusText: 'Tr\u00e8s bien', headers: [['x-name', 'Zo\u00eb'], ['content-type', 'text/plain']], hasBody: true, bodyLength: 5 }],
    ['a head with a character past U+00FF (sent as JSON)', { status: 200, statusText: 'OK', headers: [['x-name', 'Zo\u00eb \u{1f642}']], hasBody: true, bodyLength: 5 }],
  ];
  for (const [name, head] of heads) {
    for (const body of [new Uint8Array(0), new TextEncoder().encode('h\u00e9llo'), new Uint8Array(70_000).fill(7)]) {
      it(`carries ${name} and a body of ${body.byteLength} bytes intact, whole or in pieces`, () => {
        const header = encodeResponseHeader(9, head, body.byteLength);
        const bytes = new Uint8Array(header.byteLength + body.byteLength);
        bytes.set(header, 0);
        bytes.set(body, header.byteLength);
        for (const chunk of [bytes.byteLength, 7, 1]) {
          const frames = decodeAll(bytes, chunk);
          expect(frames.map((f) => [f.type, f.stream])).toEqual([[FrameType.Response, 9]]);
          const decoded = decodeResponse(frames[0]!);
          expect(decoded.message).toEqual(head);
          expect(Buffer.from(decoded.body).equals(Buffer.from(body))).toBe(true);
        }
      });
    }
  }

  it('refuses a payload whose head runs past its end', () => {
    const header = encodeResponseHeader(9, heads[0]![1], 0);
    new DataView(header.buffer, header.byteOffset).setUint32(FRAME_HEADER_BYTES, 10_000);
    const [frame] = decodeAll(header);
    expect(() => decodeResponse(frame!)).toThrow('a Response frame whose head runs past its end');
  });
});

describe('ResponseHead frames', () => {
  for (const head of [
    { status: 404, statusText: 'Not Found', headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2']], hasBody: true, bodyLength: null },
    { status: 204, statusText: '', headers: [], hasBody: false, bodyLength: null },
    { status: 200, statusText: 'OK', headers: [['x-big', 'v'.repeat(100_000)]], hasBody: true, bodyLength: 4_000_000_000 },
    // What a subverted runner may send: the daemon must see it as it was, to refuse it.
    { status: 101, statusText: 'OK\r\nx: y', headers: [['bad name', '\u0000']], hasBody: true, bodyLength: 3 },
    { status: '200', statusText: 'OK', headers: 'x-evil: 1', hasBody: 'yes', bodyLength: -1 } as unknown as ResponseHeadMessage,
    { status: 200, statusText: 'OK', headers: 'x-evil: 1', hasBody: true, bodyLength: 1 } as unknown as ResponseHeadMessage,
    { status: 200, statusText: 'OK', headers: [[1, 2]], hasBody: 'yes', bodyLength: 1 } as unknown as ResponseHeadMessage,
    { status: 200, statusText: 'OK', headers: [['a', 'b', 'c']], hasBody: true, bodyLength: 1 } as unknown as ResponseHeadMessage,
  ] as ResponseHeadMessage[]) {
    it(`carry ${JSON.stringify(head).slice(0, 80)} exactly`, () => {
      const [frame] = decodeAll(encodeResponseHeadFrame(3, head));
      expect(frame!.type).toBe(FrameType.ResponseHead);
      expect(decodeResponseHead(frame!)).toEqual(head);
    });
  }

  it('refuse a binary head with bytes after its last header', () => {
    const [frame] = decodeAll(encodeResponseHeadFrame(3, { status: 200, statusText: '', headers: [], hasBody: false, bodyLength: null }));
    const longer = new Uint8Array(frame!.payload.byteLength + 1);
    longer.set(frame!.payload);
    expect(() => decodeResponseHead({ ...frame!, payload: longer })).toThrow(/bytes after its last header/);
  });
});

describe('Settled frames', () => {
  for (const message of [
    { waitUntilFailures: 0, waitUntilTimedOut: false, cpuMs: 0.0375 },
    { waitUntilFailures: 3, waitUntilTimedOut: true, cpuMs: 49.99 },
  ]) {
    it(`carry ${JSON.stringify(message)} exactly, whole or in pieces`, () => {
      const frame = encodeSettledFrame(5, message);
      for (const chunk of [frame.byteLength, 3, 1]) {
        const frames = decodeAll(frame, chunk);
        expect(frames.map((f) => [f.type, f.stream])).toEqual([[FrameType.Settled, 5]]);
        expect(decodeSettled(frames[0]!)).toEqual(message);
      }
    });
  }

  it('refuse a payload of the wrong size', () => {
    const [frame] = decodeAll(encodeJsonFrame(FrameType.Settled, 5, { cpuMs: 1 }));
    expect(() => decodeSettled(frame!)).toThrow(/a Settled frame of \d+ bytes, not 13/);
  });
});

describe('frames made one after another', () => {
  it('keep their own bytes while later ones are made (small frames share slabs of memory)', () => {
    // Small frames are views into shared slabs: each must stay intact while it waits in a
    // socket's queue and thousands more are made, across slab boundaries and past 2^31 in ids.
    const sent: Array<{ frame: Uint8Array; stream: number; message: unknown }> = [];
    for (let i = 0; i < 3000; i++) {
      const stream = i % 2 ? i : 2 ** 32 - 1 - i;
      const message = { i, text: 'x'.repeat(i % 300), wide: i % 7 === 0 ? 'é'.repeat(i % 200) : '' };
      const frame = i % 5 === 0 ? encodeSettledFrame(stream, { waitUntilFailures: i, waitUntilTimedOut: i % 2 === 0, cpuMs: i / 3 }) : encodeJsonFrame(FrameType.ResponseHead, stream, message);
      sent.push({ frame, stream, message });
    }
    for (const [i, { frame, stream, message }] of sent.entries()) {
      const [decoded] = decodeAll(frame);
      expect(decoded!.stream).toBe(stream);
      if (i % 5 === 0) expect(decodeSettled(decoded!)).toEqual({ waitUntilFailures: i, waitUntilTimedOut: i % 2 === 0, cpuMs: i / 3 });
      else expect(decodeJson(decoded!)).toEqual(message);
    }
  });
});

describe('RequestHead frames', () => {
  const heads: Array<[string, RequestHeadMessage]> = [
    ['a GET with a header', { method: 'GET', url: 'http://hello.localhost:8787/?q=1', headers: [['Host', 'hello.localhost:8787']], hasBody: false }],
    ['a POST with latin1 bytes and an empty value', { method: 'POST', url: 'http://a.localhost/caf\u00e9', headers: [['x-latin', '\u00ff\u00e9\u0080 ok'], ['x-empty', '']], hasBody: true }],
    ['no headers', { method: 'DELETE', url: 'http://a.localhost/', headers: [], hasBody: false }],
    ['a long header', { method: 'GET', url: 'http://a.localhost/', headers: [['cookie', 'c'.repeat(20_000)]], hasBody: false }],
    ['a character past U+00FF (sent as JSON)', { method: 'GET', url: 'http://a.localhost/\u65e5\u672c', headers: [['x-wide', '\u{1f642}']], hasBody: false }],
    ['a scheduled event (sent as JSON)', { method: 'GET', url: 'http://a.localhost/', headers: [], hasBody: false, scheduled: { cron: '* * * * *', scheduledTime: 1_700_000_000_000 } }],
  ];
  for (const [name, head] of heads) {
    it(`carry ${name} exactly, whole or in pieces`, () => {
      const frame = encodeRequestHeadFrame(21, head);
      for (const chunk of [frame.byteLength, 7, 1]) {
        const frames = decodeAll(frame, chunk);
        expect(frames.map((f) => [f.type, f.stream])).toEqual([[FrameType.RequestHead, 21]]);
        expect(decodeRequestHead(frames[0]!)).toEqual(head);
      }
    });
  }

  it('refuse a payload that is cut short, runs on, or has an unknown format', () => {
    const [frame] = decodeAll(encodeRequestHeadFrame(1, heads[0]![1]));
    const payload = frame!.payload;
    const cut = { ...frame!, payload: payload.subarray(0, payload.byteLength - 3) };
    expect(() => decodeRequestHead(cut)).toThrow(/runs past its end|ends inside a length/);
    const longer = new Uint8Array(payload.byteLength + 2);
    longer.set(payload);
    expect(() => decodeRequestHead({ ...frame!, payload: longer })).toThrow(/bytes after its last header/);
    const unknown = payload.slice();
    unknown[0] = 9;
    expect(() => decodeRequestHead({ ...frame!, payload: unknown })).toThrow(/unknown format 9/);
    const lying = payload.slice();
    lying[5] = 200; // header count 200, with one header's bytes behind it
    expect(() => decodeRequestHead({ ...frame!, payload: lying })).toThrow(/ends inside a length|runs past its end/);
  });
});

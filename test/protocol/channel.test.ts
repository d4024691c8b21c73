import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameChannel } from '../../protocol/channel.js';
import { decodeJson, type Frame } from '../../protocol/frames.js';
import { FrameType, MAX_DATA_FRAME_BYTES } from '../../protocol/messages.js';

/** Two real sockets on loopback: the daemon's end (a 'batched' FrameChannel) and a peer that collects frames. */
async function pair(): Promise<{ socket: Socket; received: Frame[] }> {
  const server = createServer();
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as { port: number };
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const socket = connect(address.port, '127.0.0.1');
  await once(socket, 'connect');
  const [peer] = await accepted;
  sockets.push(socket, peer);
  const received: Frame[] = [];
  // The child's end: decodes what arrives (each payload copied out of the chunk it is a view of).
  new FrameChannel(peer, (frame) => received.push({ ...frame, payload: Uint8Array.from(frame.payload) }), () => {}, 'per-turn');
  return { socket, received };
}

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) server.close();
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(condition()).toBe(true);
}

describe("the daemon's frame channel ('batched')", () => {
  it("hands a turn's first frame to the kernel at once, and holds the rest of the turn's frames for one write", async () => {
    const { socket, received } = await pair();
    const channel = new FrameChannel(socket, () => {}, () => {}, 'batched');
    channel.sendJson(FrameType.RequestHead, 1, { n: 1 });
    // A lone request does not wait for the rest of its turn (the watchdog, the timers, the parser).
    expect(socket.writableLength).toBe(0);
    channel.sendJson(FrameType.RequestHead, 3, { n: 2 });
    channel.sendJson(FrameType.RequestHead, 5, { n: 3 });
    expect(socket.writableLength).toBeGreaterThan(0);
    await until(() => received.length === 3);
    expect(received.map((frame) => [frame.stream, decodeJson<{ n: number }>(frame).n])).toEqual([
      [1, 1],
      [3, 2],
      [5, 3],
    ]);
  });

  it('keeps every frame whole and in order across turns, batches and bodies split into many frames', async () => {
    const { socket, received } = await pair();
    const channel = new FrameChannel(socket, () => {}, () => {}, 'batched');
    const big = new Uint8Array(MAX_DATA_FRAME_BYTES * 2 + 17).map((_, i) => i % 251);
    const sent: Array<[FrameType, number]> = [];
    for (let turn = 0; turn < 3; turn++) {
      for (let i = 0; i < 12; i++) {
        const stream = turn * 100 + i * 2 + 1;
        channel.sendJson(FrameType.RequestHead, stream, { turn, i });
        sent.push([FrameType.RequestHead, stream]);
        if (i % 4 === 0) {
          channel.sendData(stream, big);
          sent.push([FrameType.Data, stream], [FrameType.Data, stream], [FrameType.Data, stream]);
        }
        channel.sendResponse(stream, { status: 200, statusText: '', headers: [['x-i', String(i)]], hasBody: true, bodyLength: 2 }, new Uint8Array([turn, i]));
        sent.push([FrameType.Response, stream]);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => received.length === sent.length);
    expect(received.map((frame) => [frame.type, frame.stream])).toEqual(sent);
    const data = received.filter((frame) => frame.type === FrameType.Data && frame.stream === 1);
    expect(Buffer.concat(data.map((frame) => frame.payload))).toEqual(Buffer.from(big));
  });
});

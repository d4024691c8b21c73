/**
 * The only runner code that touches the channel to the daemon: opens the
 * socket on fd 3 and routes frames to the runtime. If the daemon goes away,
 * the child has no reason to live and exits at once.
 */
import { Socket } from 'node:net';
import process from 'node:process';
import { FrameChannel, type FrameHandler } from '../protocol/channel.js';
import { CHANNEL_FD } from '../protocol/messages.js';

export type Channel = FrameChannel;

export function openChannel(onFrame: FrameHandler): Channel {
  const socket = new Socket({ fd: CHANNEL_FD, readable: true, writable: true });
  return new FrameChannel(socket, onFrame, () => process.exit(0), 'per-turn');
}

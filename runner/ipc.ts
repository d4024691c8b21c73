/**
 * The only runner code that touches the channel to the daemon: opens the
 * socket on fd 3 and routes frames to the runtime. If the daemon goes away,
 * the child has no reason to live and exits at once.
 */
import { Socket } from 'node:net';
import process from 'node:process';
import { FrameChannel, type FrameHandler } from '../protocol/channel.js';
import { CHANNEL_FD } from '../protocol/messages.js';
import { describeError } from './describe.js';

export type Channel = FrameChannel;

/** Exit code of a child whose runner failed handling a frame (EX_SOFTWARE, as a failed boot). */
export const FRAME_FAILURE_EXIT_CODE = 70;

export function openChannel(onFrame: FrameHandler): Channel {
  const socket = new Socket({ fd: CHANNEL_FD, readable: true, writable: true });
  return new FrameChannel(
    socket,
    onFrame,
    (error) => {
      // Closed, or a socket error (it has a code): the daemon went away.
      if (!error || typeof (error as NodeJS.ErrnoException).code === 'string') process.exit(0);
      // Handling a frame threw: the runner's own machinery is broken (a tenant that replaced
      // Promise.prototype.then gets here). Say why on stderr, which the daemon logs, instead of
      // exiting 0 as if the daemon had gone away.
      process.stderr.write(`edgeproc runner: handling a frame from the daemon failed: ${describeError(error)}\n`);
      process.exit(FRAME_FAILURE_EXIT_CODE);
    },
    'per-turn',
  );
}

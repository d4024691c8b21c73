import { createServer } from 'node:net';

/** A loopback TCP port that was free a moment ago (for workerd, which cannot listen on port 0 and say which port it got). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

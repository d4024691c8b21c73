/**
 * A reference for the throughput benchmark: one bare `node:http` process that
 * answers every request with the hello example's body, with nothing of
 * edgeproc in it. It is the most any design with a Node.js front door can serve
 * here, so it shows what is left for edgeproc's daemon, channel and child to
 * win, and whether a target stated as a multiple of workerd is within reach.
 */
import { answering, freePort, start, type RunningServer } from './processes.js';

const SERVER = `
const http = require('node:http');
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('Hello from edgeproc!\\n');
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

export async function startBareNode(logPath: string): Promise<RunningServer> {
  const port = await freePort();
  return answering(start(process.execPath, ['-e', SERVER, String(port)], logPath), `http://127.0.0.1:${port}`);
}

/**
 * A WebSocket load generator in a process of its own (as wrk is for HTTP, so that its CPU is not
 * the benchmark's): `node ws-load.js URL HOST CONNECTIONS SECONDS` opens CONNECTIONS sockets, each
 * sending a 64-byte text message and waiting for its echo, back to back, for SECONDS; prints one
 * JSON line with the count and the round trips' percentiles in milliseconds.
 */
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { percentile } from './stats.js';

export interface WsLoadResult {
  messages: number;
  perSec: number;
  rttMs: { p50: number; p99: number; max: number };
  errors: number;
}

const MESSAGE = 'x'.repeat(64);

async function main(url: string, host: string, connections: number, seconds: number): Promise<WsLoadResult> {
  const sockets = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(url, { headers: { host } });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );
  const rtts: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          let sentAt = 0;
          const send = () => {
            if (performance.now() >= deadline) return resolve();
            sentAt = performance.now();
            ws.send(MESSAGE);
          };
          ws.on('message', (data: Buffer) => {
            if (data.byteLength !== MESSAGE.length) errors++;
            rtts.push(performance.now() - sentAt);
            send();
          });
          ws.on('close', () => resolve());
          ws.on('error', () => errors++);
          send();
        }),
    ),
  );
  const elapsed = (performance.now() - started) / 1000;
  for (const ws of sockets) ws.terminate();
  const round = (ms: number) => Math.round(ms * 1000) / 1000;
  return {
    messages: rtts.length,
    perSec: rtts.length / elapsed,
    rttMs: { p50: round(percentile(rtts, 50)), p99: round(percentile(rtts, 99)), max: round(rtts.reduce((a, b) => Math.max(a, b), 0)) },
    errors,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [url, host, connections, seconds] = process.argv.slice(2);
  main(url!, host!, Number(connections), Number(seconds)).then(
    (result) => console.log(JSON.stringify(result)),
    (error: Error) => {
      console.error(error.message);
      process.exit(1);
    },
  );
}

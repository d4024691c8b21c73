/**
 * workerd, Cloudflare's runtime, serving one service-worker script on a
 * loopback port from a Cap'n Proto text config written next to a copy of it.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, start, type Started } from './processes.js';
import { tempDir } from './tmp.js';

export const WORKERD_BIN = fileURLToPath(new URL('../../../node_modules/.bin/workerd', import.meta.url));

export interface RunningWorkerd {
  process: Started;
  url: string;
  stop(): Promise<void>;
}

export async function startWorkerd(scriptPath: string, logPath: string): Promise<RunningWorkerd> {
  const dir = tempDir('workerd');
  copyFileSync(scriptPath, join(dir, 'worker.js'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  serviceWorkerScript = embed "worker.js",
  compatibilityDate = "2024-01-01",
);
`,
  );
  const proc = start(WORKERD_BIN, ['serve', join(dir, 'config.capnp'), '--experimental'], logPath);
  const url = `http://127.0.0.1:${port}`;
  try {
    await untilAnswers(url, proc);
  } catch (error) {
    await proc.stop();
    throw error;
  }
  return { process: proc, url, stop: () => proc.stop() };
}

/** workerd prints nothing when it is listening, so poll until it answers 200. */
async function untilAnswers(url: string, proc: Started, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`workerd exited with ${proc.child.exitCode} while starting`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`workerd did not answer on ${url} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * workerd, Cloudflare's runtime, serving one service-worker script on a
 * loopback port from a Cap'n Proto text config written next to a copy of it.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answering, freePort, start, type RunningServer } from './processes.js';
import { tempDir } from './tmp.js';

export const WORKERD_BIN = fileURLToPath(new URL('../../../node_modules/.bin/workerd', import.meta.url));

export type RunningWorkerd = RunningServer;

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
  // workerd prints nothing when it is listening.
  return answering(start(WORKERD_BIN, ['serve', join(dir, 'config.capnp'), '--experimental'], logPath), `http://127.0.0.1:${port}`);
}

/**
 * Hostile tenants for the limits tests: a daemon target holding the chosen
 * fixtures of test/fixtures/hostile/ beside the well-behaved neighbour, and a
 * neighbour load that runs for exactly as long as the hostile request does.
 */
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestDaemon, TextResult } from './daemon.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** A fresh directory with `hostile/NAME.mjs` for each name, plus `neighbour.mjs`. */
export function hostileTarget(...names: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-hostile-'));
  copyFileSync(join(FIXTURES, 'neighbour.mjs'), join(dir, 'neighbour.mjs'));
  for (const name of names) copyFileSync(join(FIXTURES, 'hostile', `${name}.mjs`), join(dir, `${name}.mjs`));
  return dir;
}

/**
 * Sends neighbour requests on `lanes` concurrent connections, back to back, until
 * `during` settles (each lane sends at least one), and returns every response.
 * The hostile request is thus always in flight while the neighbour is served.
 */
export async function neighbourDuring(daemon: TestDaemon, during: Promise<unknown>, lanes = 3): Promise<TextResult[]> {
  let settled = false;
  const done = during.then(
    () => (settled = true),
    () => (settled = true),
  );
  const results: TextResult[] = [];
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      do {
        results.push(await daemon.fetchText('neighbour'));
      } while (!settled);
    }),
  );
  await done;
  return results;
}

/** Brings the neighbour's instance up, so that its cold start does not race the hostile request. */
export async function warmNeighbour(daemon: TestDaemon): Promise<void> {
  const res = await daemon.fetchText('neighbour');
  if (res.status !== 200) throw new Error(`the neighbour answered ${res.status}: ${res.text}`);
}

/** The request id a response carries in its header, checked against the end of its body. */
export function requestIdOf(res: TextResult): string {
  const id = res.headers['edgeproc-request-id'];
  if (typeof id !== 'string' || !res.text.endsWith(`\n\nrequest id: ${id}\n`)) {
    throw new Error(`the response does not end with its request id (header ${String(id)}): ${JSON.stringify(res.text)}`);
  }
  return id;
}

/**
 * Packages the daemon needs only for some configurations or on some requests (a config file, a
 * cron, a bundle step, a WebSocket, a script that does not parse), loaded on first use instead of
 * when the daemon starts. Imported eagerly, they were ~200 ms of a ~380 ms import of the daemon
 * (esbuild 52, ws 69, cron-parser with luxon ~50, jsonc-parser and smol-toml ~40): every
 * `edgeproc` command and every daemon a test file started paid for them. Each has a CommonJS
 * build, so it is loaded synchronously where its caller is synchronous.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A getter for package `name`, loaded the first time it is called. */
export function lazyPackage<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}

/**
 * Per-worker limits for the workers of a served directory: an optional
 * `edgeproc.json` beside them,
 *
 *   { "workers": { "NAME": { "cpuMs": 200, "memoryMb": 256 } } }
 *
 * with the same keys and validation as a deploy's query (PER_WORKER_LIMITS).
 * Every mistake names the file, the worker and the key, and stops `serve`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EdgeprocError } from '../errors.js';
import { workerLimits, type Limits } from '../limits.js';
import type { Target } from './target.js';

export const LIMITS_FILE = 'edgeproc.json';

/**
 * Each worker's limits: its own from the file over the global ones, or the global ones.
 * `base` gives a worker its own starting point (a Workers project's `[limits]`); the file's still win.
 */
export function readWorkerLimits(target: Target, global: Limits, base: (name: string) => Limits = () => global): Map<string, Limits> {
  const limits = new Map(target.workers.map((w) => [w.name, base(w.name)]));
  const file = join(target.path, LIMITS_FILE);
  if (target.kind !== 'directory' || !existsSync(file)) return limits;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    // Not "not valid JSON": the file may be fine and only unreadable (permissions, a directory).
    throw new EdgeprocError('ERR_CONFIG', `${file}: cannot read it (${(error as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new EdgeprocError('ERR_CONFIG', `${file}: not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(parsed)) throw new EdgeprocError('ERR_CONFIG', `${file}: expected an object like {"workers": {"NAME": {"cpuMs": 200}}}`);
  for (const key of Object.keys(parsed)) {
    if (key !== 'workers') throw new EdgeprocError('ERR_CONFIG', `${file}: unknown field "${key}"; the only field is "workers"`);
  }
  const workers = parsed.workers ?? {};
  if (!isObject(workers)) throw new EdgeprocError('ERR_CONFIG', `${file}: "workers" must be an object of worker name → limits`);
  for (const [name, own] of Object.entries(workers)) {
    if (!limits.has(name)) {
      throw new EdgeprocError('ERR_CONFIG', `${file}: "workers.${name}" names no worker of ${target.path}; its workers: ${[...limits.keys()].join(', ')}`);
    }
    if (!isObject(own)) throw new EdgeprocError('ERR_CONFIG', `${file}: "workers.${name}" must be an object of limits, e.g. {"cpuMs": 200}`);
    try {
      limits.set(name, workerLimits(limits.get(name)!, own));
    } catch (error) {
      throw new EdgeprocError('ERR_CONFIG', `${file}: "workers.${name}": ${(error as Error).message}`);
    }
  }
  return limits;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

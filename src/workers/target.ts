/**
 * Reads what `edgeproc serve <target>` points at: one script (every request
 * goes to it), one Workers project (a folder with a wrangler config: every
 * request goes to it too), or a directory in which each NAME.js / NAME.mjs
 * file and each NAME/ folder with an index.js or index.mjs is a worker called
 * NAME, and each folder with a wrangler config is a worker called by its
 * config's `name`. A project's source is filled in when it is bundled
 * (projects/load.ts).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { EdgeprocError } from '../errors.js';
import { findConfigFile } from '../projects/config-file.js';
import { readProjectConfig, type ProjectConfig } from '../projects/project-config.js';
import { WORKER_NAME } from './registry.js';

export interface TargetWorker {
  name: string;
  /** The script, or once bundled, the name a project's bundle runs under. */
  path: string;
  source: string;
  /** Set for a Workers project (a folder with a wrangler config). */
  project?: ProjectConfig;
}

export interface Target {
  kind: 'file' | 'directory' | 'project';
  path: string;
  workers: TargetWorker[];
}

export interface TargetOptions {
  /** `serve --env NAME`: the `[env.NAME]` of every project's config. */
  env?: string | null;
}

const SCRIPT_EXTENSIONS = ['.js', '.mjs'];

export function readTarget(path: string, maxScriptBytes: number, options: TargetOptions = {}): Target {
  const full = resolve(path);
  let stats;
  try {
    stats = statSync(full);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw unreadable(path, error);
    throw new EdgeprocError('ERR_TARGET_NOT_FOUND', `${path}: no such file or directory; give a worker script or a directory of them`);
  }
  if (stats.isFile()) {
    const name = toWorkerName(basename(full, extname(full)));
    return { kind: 'file', path: full, workers: [readWorker(name, full, maxScriptBytes)] };
  }
  if (!stats.isDirectory()) {
    throw new EdgeprocError('ERR_CONFIG', `${path} is neither a file nor a directory; give a worker script or a directory of them`);
  }
  const own = findConfigFile(full);
  if (own) return { kind: 'project', path: full, workers: [projectWorker(own, options)] };
  let entries;
  try {
    entries = readdirSync(full, { withFileTypes: true });
  } catch (error) {
    throw unreadable(path, error);
  }
  const workers: TargetWorker[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const entryPath = join(full, entry.name);
    if (entry.isFile() && SCRIPT_EXTENSIONS.includes(extname(entry.name))) {
      const stem = basename(entry.name, extname(entry.name));
      if (!WORKER_NAME.test(stem)) continue;
      workers.push(readWorker(stem, entryPath, maxScriptBytes));
    } else if (entry.isDirectory() && findConfigFile(entryPath)) {
      workers.push(projectWorker(findConfigFile(entryPath)!, options));
    } else if (entry.isDirectory() && WORKER_NAME.test(entry.name)) {
      const index = SCRIPT_EXTENSIONS.map((ext) => join(entryPath, `index${ext}`)).find(isFile);
      if (index) workers.push(readWorker(entry.name, index, maxScriptBytes));
    }
  }
  const names = new Map<string, string>();
  for (const worker of workers) {
    const other = names.get(worker.name);
    if (other) {
      throw new EdgeprocError('ERR_CONFIG', `two scripts claim the worker name "${worker.name}": ${other} and ${worker.path}; rename one`);
    }
    names.set(worker.name, worker.path);
  }
  if (workers.length === 0) {
    throw new EdgeprocError(
      'ERR_NO_WORKERS',
      `${path} holds no workers: add NAME.js, NAME.mjs, NAME/index.js or a folder with a wrangler.toml (names: lower-case letters, digits, dashes)`,
    );
  }
  return { kind: 'directory', path: full, workers };
}

function projectWorker(file: string, options: TargetOptions): TargetWorker {
  const project = readProjectConfig(file, options.env ?? null);
  return { name: project.name, path: project.main, source: '', project };
}

function readWorker(name: string, path: string, maxScriptBytes: number): TargetWorker {
  try {
    const size = statSync(path).size;
    if (size > maxScriptBytes) {
      throw new EdgeprocError('ERR_SCRIPT_TOO_LARGE', `${path} is ${size} bytes; the script limit is ${maxScriptBytes} bytes`);
    }
    return { name, path, source: readFileSync(path, 'utf8') };
  } catch (error) {
    if (error instanceof EdgeprocError) throw error;
    throw unreadable(path, error);
  }
}

/** A target that exists but cannot be read was an "unexpected failure" with a stack trace; say what and why instead. */
function unreadable(path: string, error: unknown): EdgeprocError {
  const { code, syscall } = error as NodeJS.ErrnoException;
  const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (error as Error).message;
  return new EdgeprocError('ERR_CONFIG', `cannot read ${path} (${syscall ?? 'read'}: ${why}${code ? `, ${code}` : ''}); check its permissions`, { cause: error });
}

function toWorkerName(stem: string): string {
  const name = stem.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'worker';
  return name.slice(0, 63);
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

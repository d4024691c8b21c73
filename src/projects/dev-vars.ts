/**
 * A project's local secrets: `.dev.vars` beside its wrangler config (or
 * `.dev.vars.ENV` with `--env ENV`, when it exists), in dotenv format, as
 * `wrangler dev` reads them. They join `env` over `vars`; their values are
 * never logged and never listed — only their names are known outside `env`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'dotenv';
import { EdgeprocError } from '../errors.js';

export interface DevVars {
  file: string | null;
  values: Record<string, string>;
}

export function readDevVars(dir: string, envName: string | null): DevVars {
  const candidates = envName ? [`.dev.vars.${envName}`, '.dev.vars'] : ['.dev.vars'];
  const file = candidates.map((name) => join(dir, name)).find((path) => existsSync(path)) ?? null;
  if (!file) return { file: null, values: {} };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    // The message names the file and the reason, never its contents.
    throw new EdgeprocError('ERR_CONFIG', `${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'read error'})`);
  }
  return { file, values: { ...parse(text) } };
}

/**
 * Finds and parses a Workers project's wrangler config: `wrangler.json`,
 * `wrangler.jsonc` or `wrangler.toml`, in wrangler's own order of preference.
 * Parsing only; what the fields mean is project-config.ts's. A file that does
 * not parse stops `serve` with the file, line and column.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParseError } from 'jsonc-parser';
import { EdgeprocError } from '../errors.js';
import { lazyPackage } from '../lazy-package.js';

const jsoncParser = lazyPackage<typeof import('jsonc-parser')>('jsonc-parser');
const smolToml = lazyPackage<typeof import('smol-toml')>('smol-toml');

export const CONFIG_FILES = ['wrangler.json', 'wrangler.jsonc', 'wrangler.toml'] as const;

/** The wrangler config of `dir`, or null when it has none. */
export function findConfigFile(dir: string): string | null {
  for (const name of CONFIG_FILES) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return null;
}

export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new EdgeprocError('ERR_CONFIG', `${file}: cannot read it (${(error as Error).message})`);
  }
  const parsed = file.endsWith('.toml') ? toml(file, text) : jsonc(file, text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new EdgeprocError('ERR_CONFIG', `${file}: expected an object of fields like {"name": "api", "main": "src/index.ts"}`);
  }
  return parsed as Record<string, unknown>;
}

function toml(file: string, text: string): unknown {
  try {
    return smolToml().parse(text);
  } catch (error) {
    if (error instanceof smolToml().TomlError) {
      const reason = error.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw new EdgeprocError('ERR_CONFIG', `${file}:${error.line}:${error.column}: not valid TOML (${reason})`);
    }
    throw error;
  }
}

/** JSON with comments and trailing commas, as wrangler reads both `.json` and `.jsonc`. */
function jsonc(file: string, text: string): unknown {
  const errors: ParseError[] = [];
  const value: unknown = jsoncParser().parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  const [first] = errors;
  if (first) {
    const before = text.slice(0, first.offset).split('\n');
    const at = `${before.length}:${before.at(-1)!.length + 1}`;
    throw new EdgeprocError('ERR_CONFIG', `${file}:${at}: not valid JSON (${jsoncParser().printParseErrorCode(first.error)})`);
  }
  return value;
}

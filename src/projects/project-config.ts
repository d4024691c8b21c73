/**
 * A Workers project's wrangler config → one validated ProjectConfig. The
 * fields edgeproc honours are checked here, each named in its error as the
 * file and the field's path (`wrangler.toml: "limits.cpu_ms" must be …`);
 * fields it records but does not act on yet, fields it ignores and
 * compatibility flags it does not honour become warnings.
 *
 * `--env NAME` picks `[env.NAME]`, as wrangler does: `name`, `main`, the
 * compatibility fields, `routes`, `triggers` and `limits` are inherited from
 * the top level unless the environment sets them; `vars` and
 * `kv_namespaces` are not inherited; the worker is called `NAME-ENV` unless
 * the environment names it.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { EdgeprocError } from '../errors.js';
import { lazyPackage } from '../lazy-package.js';
import { WORKER_NAME } from '../workers/registry.js';
import { readConfigFile } from './config-file.js';

const cronParser = lazyPackage<typeof import('cron-parser')>('cron-parser');

export interface ProjectRoute {
  /** `host/path` with `*` at the start of the host or the end of the path, e.g. `*.example.com/api/*`. */
  pattern: string;
  zoneName: string | null;
  customDomain: boolean;
}

export interface KvNamespace {
  binding: string;
  id: string | null;
  previewId: string | null;
}

export interface ConfigWarning {
  field: string;
  message: string;
}

export interface ProjectConfig {
  /** The wrangler config this came from. */
  file: string;
  dir: string;
  name: string;
  /** Absolute path of the entry point. */
  main: string;
  compatibilityDate: string | null;
  compatibilityFlags: readonly string[];
  vars: Readonly<Record<string, unknown>>;
  /** The worker's own limits, in edgeproc's names (validated against the daemon's in limits.ts). */
  limits: { cpuMs?: number; subrequests?: number };
  routes: readonly ProjectRoute[];
  /** Fired on schedule by serve (src/scheduled/scheduler.ts), in UTC. */
  crons: readonly string[];
  /** Recorded only: KV bindings are not in `env` yet. */
  kvNamespaces: readonly KvNamespace[];
  /** The `--env` chosen, when the file has it. */
  envName: string | null;
  warnings: readonly ConfigWarning[];
}

/** The top-level fields an environment inherits unless it sets its own (wrangler's "inheritable keys"). */
const INHERITED = ['main', 'compatibility_date', 'compatibility_flags', 'routes', 'route', 'triggers', 'limits'];
/** Fields edgeproc reads; any other is named in a warning. */
const KNOWN = new Set(['name', ...INHERITED, 'vars', 'kv_namespaces', 'env', '$schema']);
const LIMIT_FIELDS: Record<string, 'cpuMs' | 'subrequests'> = { cpu_ms: 'cpuMs', subrequests: 'subrequests' };
/** Compatibility flags edgeproc acts on. None yet: every flag given is recorded and named in a warning. */
const HONOURED_FLAGS = new Set<string>();
const ENV_NAME = /^[A-Za-z0-9_-]+$/;
/** A JavaScript identifier, as a binding's name becomes a property of `env`. */
const BINDING = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

export function readProjectConfig(file: string, envName: string | null = null): ProjectConfig {
  const dir = dirname(file);
  const top = readConfigFile(file);
  const at = new Fields(file);
  const warnings: ConfigWarning[] = [];
  for (const key of Object.keys(top)) {
    if (!KNOWN.has(key)) warnings.push({ field: key, message: `unknown field "${key}": edgeproc ignores it` });
  }

  // 1. The environment, if one is chosen: its fields over the inheritable top-level ones.
  let fields: Record<string, unknown> = top;
  let prefix = '';
  let chosen: string | null = null;
  let fromEnv = new Set<string>();
  if (envName !== null) {
    if (!ENV_NAME.test(envName)) throw new EdgeprocError('ERR_CONFIG', `--env must be an environment name like "staging", got ${JSON.stringify(envName)}`);
    const envs = top.env === undefined ? {} : at.object('env', top.env);
    if (envs[envName] === undefined) {
      warnings.push({ field: 'env', message: `no [env.${envName}] in this file: serving its top-level config` });
    } else {
      prefix = `env.${envName}.`;
      chosen = envName;
      const own = at.object(`env.${envName}`, envs[envName]);
      fromEnv = new Set(Object.keys(own));
      for (const key of Object.keys(own)) {
        if (!KNOWN.has(key) || key === 'env') warnings.push({ field: prefix + key, message: `unknown field "${prefix + key}": edgeproc ignores it` });
      }
      fields = { ...Object.fromEntries(INHERITED.filter((k) => k in top).map((k) => [k, top[k]])), ...own };
      if (own.name === undefined && top.name !== undefined) fields.name = `${at.string('name', top.name)}-${envName}`;
    }
  }
  // An error names the field where it was written: `env.staging.vars` or `vars`.
  const field = (key: string) => (fromEnv.has(key) ? prefix + key : key);

  // 2. Each field, validated.
  const name = fields.name === undefined ? basename(dir) : at.string(field('name'), fields.name);
  if (!WORKER_NAME.test(name)) {
    throw at.invalid(field('name'), 'a worker name of 1–63 lower-case letters, digits and dashes (it becomes a host label)', name);
  }
  if (fields.main === undefined) throw at.invalid('main', 'the entry point of the worker, e.g. "src/index.ts"', undefined);
  const main = resolve(dir, at.string(field('main'), fields.main));
  if (!existsSync(main) || !statSync(main).isFile()) throw at.invalid(field('main'), `a file that exists (resolved to ${main})`, fields.main);

  const compatibilityDate = fields.compatibility_date === undefined ? null : at.string(field('compatibility_date'), fields.compatibility_date);
  if (compatibilityDate !== null && !isDate(compatibilityDate)) throw at.invalid(field('compatibility_date'), 'a date as YYYY-MM-DD', compatibilityDate);
  const compatibilityFlags = fields.compatibility_flags === undefined ? [] : at.strings(field('compatibility_flags'), fields.compatibility_flags);
  for (const flag of compatibilityFlags) {
    if (HONOURED_FLAGS.has(flag)) continue;
    const why = flag === 'nodejs_compat' || flag.startsWith('nodejs_') ? ': tenants get no Node.js APIs in edgeproc' : '';
    warnings.push({ field: field('compatibility_flags'), message: `compatibility flag "${flag}" is not honoured by edgeproc${why}` });
  }

  const vars = fields.vars === undefined ? {} : at.object(field('vars'), fields.vars);
  for (const [key, value] of Object.entries(vars)) {
    if (value === null) throw at.invalid(`${field('vars')}.${key}`, 'a string, number, boolean, array or table', null);
  }
  if (chosen !== null && fields.vars === undefined && top.vars !== undefined) {
    warnings.push({ field: `env.${chosen}.vars`, message: `[env.${chosen}] sets no vars and vars are not inherited (as in wrangler): env has none of the top-level vars` });
  }

  const limits: ProjectConfig['limits'] = {};
  if (fields.limits !== undefined) {
    for (const [key, value] of Object.entries(at.object(field('limits'), fields.limits))) {
      const own = LIMIT_FIELDS[key];
      if (!own) {
        warnings.push({ field: `${field('limits')}.${key}`, message: `unknown field "${field('limits')}.${key}": edgeproc honours limits.cpu_ms and limits.subrequests` });
        continue;
      }
      if (typeof value !== 'number' || !Number.isInteger(value)) throw at.invalid(`${field('limits')}.${key}`, 'a whole number', value);
      limits[own] = value;
    }
  }

  const routes = readRoutes(at, fields, field);

  const crons: string[] = [];
  if (fields.triggers !== undefined) {
    const triggers = at.object(field('triggers'), fields.triggers);
    for (const key of Object.keys(triggers)) {
      if (key !== 'crons') warnings.push({ field: `${field('triggers')}.${key}`, message: `unknown field "${field('triggers')}.${key}": edgeproc ignores it` });
    }
    if (triggers.crons !== undefined) {
      for (const cron of at.strings(`${field('triggers')}.crons`, triggers.crons)) {
        if (!isCron(cron)) throw at.invalid(`${field('triggers')}.crons`, 'cron expressions of five fields, e.g. "*/5 * * * *"', cron);
        crons.push(cron);
      }
    }
  }

  const kvNamespaces = readKv(at, fields, field);

  return Object.freeze({
    file,
    dir,
    name,
    main,
    compatibilityDate,
    compatibilityFlags: Object.freeze(compatibilityFlags),
    vars: Object.freeze({ ...vars }),
    limits,
    routes: Object.freeze(routes),
    crons: Object.freeze(crons),
    kvNamespaces: Object.freeze(kvNamespaces),
    envName: chosen,
    warnings: Object.freeze(warnings),
  });
}

function readRoutes(at: Fields, fields: Record<string, unknown>, field: (key: string) => string): ProjectRoute[] {
  const list: Array<[string, unknown]> = [];
  if (fields.route !== undefined) list.push([field('route'), fields.route]);
  if (fields.routes !== undefined) {
    if (!Array.isArray(fields.routes)) throw at.invalid(field('routes'), 'an array of route patterns like "example.com/api/*"', fields.routes);
    fields.routes.forEach((route, i) => list.push([`${field('routes')}[${i}]`, route]));
  }
  return list.map(([name, route]) => {
    const expected = 'a route pattern like "example.com/api/*" or { pattern, zone_name }';
    let pattern: unknown = route;
    let zoneName: string | null = null;
    let customDomain = false;
    if (typeof route === 'object' && route !== null && !Array.isArray(route)) {
      const own = route as Record<string, unknown>;
      pattern = own.pattern;
      if (own.zone_name !== undefined) zoneName = at.string(`${name}.zone_name`, own.zone_name);
      if (own.custom_domain !== undefined) {
        if (typeof own.custom_domain !== 'boolean') throw at.invalid(`${name}.custom_domain`, 'true or false', own.custom_domain);
        customDomain = own.custom_domain;
      }
    }
    if (typeof pattern !== 'string') throw at.invalid(name, expected, route);
    const normal = normaliseRoute(pattern, customDomain);
    if (normal === null) throw at.invalid(name, `${expected}; "*" only at the start of the host or the end of the path, no port`, pattern);
    return { pattern: normal, zoneName, customDomain };
  });
}

/** `https://Example.com/api/*` → `example.com/api/*`; a pattern without a path covers the whole host only as a custom domain. */
export function normaliseRoute(pattern: string, customDomain: boolean): string | null {
  let rest = pattern.trim().replace(/^https?:\/\//i, '');
  if (customDomain && !rest.includes('/')) rest += '/*';
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const host = rest.slice(0, slash).toLowerCase();
  const path = rest.slice(slash);
  if (!/^(\*\.?)?[a-z0-9.-]*[a-z0-9]$|^\*$/.test(host)) return null;
  if (path.slice(0, -1).includes('*')) return null;
  return host + path;
}

function readKv(at: Fields, fields: Record<string, unknown>, field: (key: string) => string): KvNamespace[] {
  if (fields.kv_namespaces === undefined) return [];
  const name = field('kv_namespaces');
  if (!Array.isArray(fields.kv_namespaces)) throw at.invalid(name, 'an array of { binding, id }', fields.kv_namespaces);
  return fields.kv_namespaces.map((entry, i) => {
    const own = at.object(`${name}[${i}]`, entry);
    const binding = at.string(`${name}[${i}].binding`, own.binding);
    if (!BINDING.test(binding)) throw at.invalid(`${name}[${i}].binding`, 'a JavaScript identifier (it becomes a property of env)', binding);
    return {
      binding,
      id: own.id === undefined ? null : at.string(`${name}[${i}].id`, own.id),
      previewId: own.preview_id === undefined ? null : at.string(`${name}[${i}].preview_id`, own.preview_id),
    };
  });
}

/** Builds the one-line errors: the file, the field, what was expected and what was found. */
class Fields {
  constructor(readonly file: string) {}

  invalid(field: string, expected: string, got: unknown): EdgeprocError {
    const shown = got === undefined ? 'nothing' : JSON.stringify(got);
    return new EdgeprocError('ERR_CONFIG', `${this.file}: "${field}" must be ${expected}, got ${shown.length > 80 ? `${shown.slice(0, 77)}...` : shown}`);
  }

  string(field: string, value: unknown): string {
    if (typeof value !== 'string' || value === '') throw this.invalid(field, 'a non-empty string', value);
    return value;
  }

  strings(field: string, value: unknown): string[] {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw this.invalid(field, 'an array of strings', value);
    return [...value] as string[];
  }

  object(field: string, value: unknown): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.invalid(field, 'a table (an object)', value);
    return value as Record<string, unknown>;
  }
}

function isDate(text: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return false;
  const date = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(text);
}

/**
 * Five fields of digits, names, `*`, `/`, `,`, `-`, `?`, `L`, `W` and `#`, as Cloudflare's cron
 * triggers take, that the scheduler's parser accepts (so `99 * * * *` fails here, not when serving).
 */
function isCron(text: string): boolean {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 5 || !parts.every((part) => /^[0-9A-Za-z*/,?#-]+$/.test(part))) return false;
  try {
    cronParser().CronExpressionParser.parse(text, { tz: 'UTC' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Wrangler configs: each field edgeproc reads, the warnings for what it does
 * not do, one-line errors naming the file and the field, `--env`, and
 * `.dev.vars` secrets that reach `env` and nothing else.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { readProjectConfig } from '../../src/projects/project-config.js';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

const BIN = fileURLToPath(new URL('../../bin/edgeproc.js', import.meta.url));
const MAIN = 'export default { fetch: (request, env) => Response.json(env) };\n';

afterAll(() => closeDaemons());

function project(config: Record<string, string>, extra: Record<string, string> = {}): string {
  return writeScripts({ 'src/index.js': MAIN, ...config, ...extra });
}

/** `edgeproc serve DIR`'s exit code and stderr, for configs that must stop it before it listens. */
function serveFails(dir: string, args: string[] = []): { status: number; stderr: string } {
  try {
    execFileSync(process.execPath, [BIN, 'serve', dir, '--port', '0', '--admin-port', '0', ...args], { stdio: 'pipe', timeout: 10_000 });
  } catch (error) {
    const { status, stderr } = error as { status: number; stderr: Buffer };
    return { status, stderr: stderr.toString() };
  }
  throw new Error('serve did not fail');
}

describe('reading wrangler configs', () => {
  it('reads every honoured field of a wrangler.toml', () => {
    const dir = project({
      'wrangler.toml': `
name = "api"
main = "src/index.js"
compatibility_date = "2024-09-23"
compatibility_flags = ["nodejs_compat", "streams_enable_constructors"]
routes = ["example.com/api/*", { pattern = "shop.example.com/*", zone_name = "example.com" }]
[vars]
GREETING = "hello"
FEATURES = { beta = true, max = 3 }
[limits]
cpu_ms = 200
subrequests = 10
[triggers]
crons = ["*/5 * * * *"]
[[kv_namespaces]]
binding = "CACHE"
id = "abc123"
`,
    });
    const config = readProjectConfig(join(dir, 'wrangler.toml'));
    expect(config).toMatchObject({
      name: 'api',
      main: join(dir, 'src/index.js'),
      compatibilityDate: '2024-09-23',
      compatibilityFlags: ['nodejs_compat', 'streams_enable_constructors'],
      vars: { GREETING: 'hello', FEATURES: { beta: true, max: 3 } },
      limits: { cpuMs: 200, subrequests: 10 },
      routes: [
        { pattern: 'example.com/api/*', zoneName: null, customDomain: false },
        { pattern: 'shop.example.com/*', zoneName: 'example.com', customDomain: false },
      ],
      crons: ['*/5 * * * *'],
      kvNamespaces: [{ binding: 'CACHE', id: 'abc123', previewId: null }],
      envName: null,
    });
    expect(config.warnings.map((w) => w.message)).toEqual([
      'compatibility flag "nodejs_compat" is not honoured by edgeproc: tenants get no Node.js APIs in edgeproc',
      'compatibility flag "streams_enable_constructors" is not honoured by edgeproc',
    ]);
  });

  it('reads wrangler.jsonc with comments and trailing commas, and names unknown fields in warnings', () => {
    const dir = project({
      'wrangler.jsonc': `{
  // the API
  "$schema": "node_modules/wrangler/config-schema.json",
  "name": "api",
  "main": "src/index.js",
  "workers_dev": true,
  "vars": { "N": 1, },
}`,
    });
    const config = readProjectConfig(join(dir, 'wrangler.jsonc'));
    expect(config.vars).toEqual({ N: 1 });
    expect(config.warnings).toEqual([{ field: 'workers_dev', message: 'unknown field "workers_dev": edgeproc ignores it' }]);
  });

  it.each([
    ['name = "Api"\nmain = "src/index.js"', '"name" must be a worker name of 1–63 lower-case letters, digits and dashes (it becomes a host label), got "Api"'],
    ['name = "api"', '"main" must be the entry point of the worker, e.g. "src/index.ts", got nothing'],
    ['name = "api"\nmain = "src/missing.ts"', '"main" must be a file that exists'],
    ['name = "api"\nmain = "src/index.js"\ncompatibility_date = "2024-13-01"', '"compatibility_date" must be a date as YYYY-MM-DD, got "2024-13-01"'],
    ['name = "api"\nmain = "src/index.js"\n[limits]\ncpu_ms = "fast"', '"limits.cpu_ms" must be a whole number, got "fast"'],
    ['name = "api"\nmain = "src/index.js"\nroutes = ["example.com:8080/*"]', '"routes[0]" must be a route pattern like "example.com/api/*" or { pattern, zone_name }; "*" only at the start of the host or the end of the path, no port, got "example.com:8080/*"'],
    ['name = "api"\nmain = "src/index.js"\n[triggers]\ncrons = ["every minute"]', '"triggers.crons" must be cron expressions of five fields, e.g. "*/5 * * * *", got "every minute"'],
    ['name = "api"\nmain = "src/index.js"\n[[kv_namespaces]]\nid = "x"', '"kv_namespaces[0].binding" must be a non-empty string, got nothing'],
    ['name = "api"\nmain = "src/index.js"\nvars = "x"', '"vars" must be a table (an object), got "x"'],
  ])('stops on an invalid field: %s', (toml, expected) => {
    const dir = project({ 'wrangler.toml': toml });
    const file = join(dir, 'wrangler.toml');
    expect(() => readProjectConfig(file)).toThrow(`${file}: ${expected}`);
  });

  it('names the line and column of a file that does not parse', () => {
    const dir = project({ 'wrangler.toml': 'name = "api"\nmain = \n' });
    expect(() => readProjectConfig(join(dir, 'wrangler.toml'))).toThrow(`${join(dir, 'wrangler.toml')}:2:8: not valid TOML`);
  });

  it('--env NAME: inherits main, limits and routes, not vars; names the worker NAME-ENV', () => {
    const dir = project({
      'wrangler.toml': `
name = "api"
main = "src/index.js"
routes = ["example.com/*"]
[vars]
MODE = "production"
[limits]
cpu_ms = 100
[env.staging]
routes = ["staging.example.com/*"]
[env.staging.vars]
MODE = "staging"
[env.bare]
`,
    });
    const file = join(dir, 'wrangler.toml');
    expect(readProjectConfig(file, 'staging')).toMatchObject({
      name: 'api-staging',
      vars: { MODE: 'staging' },
      limits: { cpuMs: 100 },
      routes: [{ pattern: 'staging.example.com/*' }],
      envName: 'staging',
    });
    const bare = readProjectConfig(file, 'bare');
    expect(bare.vars).toEqual({});
    expect(bare.warnings.map((w) => w.message)).toEqual([
      '[env.bare] sets no vars and vars are not inherited (as in wrangler): env has none of the top-level vars',
    ]);
    expect(readProjectConfig(file, 'nope').warnings.map((w) => w.message)).toEqual(['no [env.nope] in this file: serving its top-level config']);
    expect(() => readProjectConfig(join(project({ 'wrangler.toml': 'name = "api"\nmain = "src/index.js"\n[env.x]\nvars = 3' }), 'wrangler.toml'), 'x')).toThrow(
      '"env.x.vars" must be a table (an object), got 3',
    );
  });
});

describe('serve with a wrangler project', () => {
  it('stops with exit 2 and one line naming the file and the field', () => {
    const dir = project({ 'wrangler.toml': 'name = "api"\nmain = "src/index.js"\n[limits]\ncpu_ms = 0\n' });
    const { status, stderr } = serveFails(dir);
    expect(status).toBe(2);
    expect(stderr).toBe(`edgeproc: ${join(dir, 'wrangler.toml')}: "limits.cpu_ms": limits.cpuMs must be an integer ≥ 1, got 0\n`);
  });

  it('puts vars and .dev.vars secrets in env, logs neither secret name nor value, lists no secret in GET /workers, and applies [limits]', async () => {
    const dir = project(
      {
        'wrangler.toml': `name = "api"\nmain = "src/index.js"\nshiny = 1\n[vars]\nGREETING = "hello"\nLIST = [1, 2]\n[limits]\ncpu_ms = 1500\nsubrequests = 7\n`,
        '.dev.vars': '# local secrets\nAPI_TOKEN=tok-5f1e9c\nGREETING="from secrets"\n',
      },
      {},
    );
    const daemon = await startTestDaemon(dir);
    const res = await daemon.fetchText('anything');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ GREETING: 'from secrets', LIST: [1, 2], API_TOKEN: 'tok-5f1e9c' });
    expect(daemon.registry.get('api')!.limits).toMatchObject({ cpuMs: 1500, subrequests: 7 });

    const listed = await request(`${daemon.adminUrl}/workers`);
    const listing = await listed.body.text();
    expect(listing).toContain('"api"');
    const everything = JSON.stringify(daemon.logs) + listing;
    expect(everything).not.toContain('tok-5f1e9c');
    expect(everything).not.toContain('API_TOKEN');
    expect(daemon.logs).toContainEqual(expect.objectContaining({ level: 'warn', worker: 'api', field: 'shiny', msg: `${join(dir, 'wrangler.toml')}: unknown field "shiny": edgeproc ignores it` }));
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'secrets loaded into env', worker: 'api', count: 2 }));
  });

  it('serve --env staging: the environment\'s vars and .dev.vars.staging', async () => {
    const dir = project({
      'wrangler.toml': `name = "api"\nmain = "src/index.js"\n[vars]\nMODE = "production"\n[env.staging.vars]\nMODE = "staging"\n`,
      '.dev.vars': 'KEY=prod-key\n',
      '.dev.vars.staging': 'KEY=staging-key\n',
    });
    const daemon = await startTestDaemon(dir, { env: 'staging' });
    expect(daemon.registry.list().map((w) => w.name)).toEqual(['api-staging']);
    const res = await daemon.fetchText('x');
    expect(JSON.parse(res.text)).toEqual({ MODE: 'staging', KEY: 'staging-key' });
  });
});

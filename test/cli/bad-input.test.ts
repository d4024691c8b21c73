/**
 * `edgeproc serve` given something it cannot serve exits 2 with one line on
 * stderr saying what is wrong (no stack trace), prints nothing else and starts
 * nothing: scripts that do not parse, paths it cannot read, a malformed
 * edgeproc.json, bad flags, a port already taken.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

const BIN = fileURLToPath(new URL('../../bin/edgeproc.js', import.meta.url));
const GOOD = `export default { fetch() { return new Response('good'); } };\n`;
const ROOT = process.getuid?.() === 0;

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `edgeproc serve ARGS` to its end. With `obeyPermissions` under root, without the
 * capabilities that let root read and list anything (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH),
 * so that file permissions apply: still root, so it reads the checkout wherever it is (a CI
 * clone in a private mktemp directory is closed to any other user).
 */
function serve(args: string[], obeyPermissions = false): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const argv = [process.execPath, BIN, 'serve', ...args];
    const drop = '-dac_override,-dac_read_search';
    const [command, ...rest] = obeyPermissions && ROOT ? ['setpriv', `--inh-caps=${drop}`, `--bounding-set=${drop}`, '--', ...argv] : argv;
    const proc = spawn(command!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    proc.stdout.setEncoding('utf8').on('data', (text: string) => (out.stdout += text));
    proc.stderr.setEncoding('utf8').on('data', (text: string) => (out.stderr += text));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`edgeproc serve ${args.join(' ')} did not exit: it should have refused to start\n${out.stderr}`));
    }, 20_000);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...out });
    });
  });
}

/** Exit code 2, exactly `line` on stderr and nothing on stdout (no daemon log: nothing started). */
function expectRefused(exit: Exit, line: string | RegExp): void {
  expect(exit.stderr).not.toMatch(/\n\s+at /);
  expect(exit.stderr.split('\n')).toHaveLength(2);
  if (typeof line === 'string') expect(exit.stderr).toBe(`edgeproc: ${line}\n`);
  else expect(exit.stderr).toMatch(line);
  expect(exit).toMatchObject({ code: 2, stdout: '' });
}

/** A temp directory anyone can enter (mkdtemp makes it private). */
function openDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-test-'));
  chmodSync(dir, 0o755);
  return dir;
}

describe('edgeproc serve refuses what it cannot serve', () => {
  it('a script that does not parse, naming the file, line and column', async () => {
    const dir = writeScripts({ 'app.js': `addEventListener('fetch', (e) => {\n  e.respondWith(new Response('x'))\n  let = ;\n});\n` });
    expectRefused(await serve([join(dir, 'app.js'), '--port', '0', '--admin-port', '0']), `worker "app" failed to load: SyntaxError: Unexpected token ';' at ${dir}/app.js:3:9`);
  });

  it('a module that does not parse among good workers in a directory', async () => {
    const dir = writeScripts({ 'good.mjs': GOOD, 'broken.mjs': `export default {\n  fetch() {\n    return new Response('x';\n  },\n};\n` });
    expectRefused(
      await serve([dir, '--port', '0', '--admin-port', '0']),
      `worker "broken" failed to load: SyntaxError: missing ) after argument list at ${dir}/broken.mjs:3:28`,
    );
  });

  it('a script it may not read', async () => {
    const dir = openDir();
    writeFileSync(join(dir, 'good.mjs'), GOOD);
    writeFileSync(join(dir, 'secret.mjs'), GOOD);
    chmodSync(join(dir, 'secret.mjs'), 0o000);
    expectRefused(await serve([dir, '--port', '0', '--admin-port', '0'], true), `cannot read ${dir}/secret.mjs (open: permission denied, EACCES); check its permissions`);
  });

  it('a directory it may not list', async () => {
    const dir = openDir();
    writeFileSync(join(dir, 'good.mjs'), GOOD);
    chmodSync(dir, 0o311);
    expectRefused(await serve([dir, '--port', '0', '--admin-port', '0'], true), `cannot read ${dir} (scandir: permission denied, EACCES); check its permissions`);
  });

  it('a target that is neither a file nor a directory', async () => {
    const fifo = join(openDir(), 'worker.js');
    execFileSync('mkfifo', [fifo]);
    expectRefused(await serve([fifo, '--port', '0', '--admin-port', '0']), `${fifo} is neither a file nor a directory; give a worker script or a directory of them`);
  });

  it.each([
    ['not JSON', '{"workers": {', /^edgeproc: \S+\/edgeproc\.json: not valid JSON \(.+\)\n$/],
    ['an unknown field', '{"worker": {}}', /^edgeproc: \S+\/edgeproc\.json: unknown field "worker"; the only field is "workers"\n$/],
    ['a bad value', '{"workers": {"good": {"cpuMs": "fast"}}}', /^edgeproc: \S+\/edgeproc\.json: "workers\.good": limits\.cpuMs must be an integer ≥ 1, got "fast"\n$/],
  ])('an edgeproc.json that is %s', async (_what, json, line) => {
    const dir = writeScripts({ 'good.mjs': GOOD, 'edgeproc.json': json });
    expectRefused(await serve([dir, '--port', '0', '--admin-port', '0']), line);
  });

  it.each([
    [['--cpu-ms', '-5'], '--cpu-ms must be a whole number, got "-5"'],
    [['--request-body-mb', '0'], '--request-body-mb must be at least 1 (MiB), got 0'],
    [['--port', '70000'], '--port must be a port number from 0 to 65535, got "70000"'],
    [['--bogus'], "unknown option '--bogus' (run `edgeproc --help` for usage)"],
    [['--memory-mb'], "option '--memory-mb <mb>' argument missing (run `edgeproc --help` for usage)"],
    [['--log-level', 'loud'], '--log-level must be one of debug, info, warn, error, got "loud"'],
    [['--kv-url', 'http://127.0.0.1:6379'], '--kv-url must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), got "http://127.0.0.1:6379"'],
  ])('a bad flag: %j', async (flags, line) => {
    const dir = writeScripts({ 'good.mjs': GOOD });
    expectRefused(await serve([dir, '--admin-port', '0', ...flags]), line);
  });

  it.each([
    ['that does not exist', null, /^edgeproc: --cf \S+: cannot read it \(ENOENT\); give a JSON object of request\.cf fields, e\.g\. \{"country": "DE", "colo": "FRA"\}\n$/],
    ['that is not JSON', '{"country": ', /^edgeproc: --cf \S+: it is not JSON \(.+\); give a JSON object of request\.cf fields/],
    ['that holds an array', '[{"country": "DE"}]', /^edgeproc: --cf \S+: it holds an array, not an object; give a JSON object of request\.cf fields/],
  ])('a --cf file %s', async (_what, content, line) => {
    const dir = writeScripts({ 'good.mjs': GOOD });
    const file = join(openDir(), 'cf.json');
    if (content !== null) writeFileSync(file, content);
    expectRefused(await serve([dir, '--port', '0', '--admin-port', '0', '--cf', file]), line);
  });

  it('no target at all', async () => {
    expectRefused(await serve([]), "missing required argument 'target' (run `edgeproc --help` for usage)");
  });

  it('an admin port another daemon holds, which goes on serving unchanged', async () => {
    const other = await startTestDaemon(writeScripts({ 'app.mjs': `export default { fetch() { return new Response('other'); } };` }));
    expect(await other.fetchText('app')).toMatchObject({ status: 200, text: 'other' });
    const list = async () => ((await (await request(`${other.adminUrl}/workers`)).body.json()) as { workers: unknown[] }).workers;
    const before = await list();
    const dir = writeScripts({ 'good.mjs': GOOD });
    expectRefused(
      await serve([dir, '--port', '0', '--admin-port', String(other.adminPort)]),
      `127.0.0.1:${other.adminPort} is already in use: pick another --admin-port or stop what listens there`,
    );
    expect(await list()).toEqual(before);
    expect(await other.fetchText('app')).toMatchObject({ status: 200, text: 'other' });
  });
});

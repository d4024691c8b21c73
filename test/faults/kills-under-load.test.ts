/**
 * Children SIGKILLed at random while a real `edgeproc serve` process serves
 * 20 workers under a steady open-loop load: every request gets a complete
 * response (2xx, or a 5xx whose body says what happened), none is lost or
 * reset; afterwards the daemon's memory, open descriptors and children come
 * back to where they were, no child is left a zombie, and once the daemon
 * exits no process of it is left behind.
 *
 * The daemon runs from a private copy of the build, so that "a process left
 * behind" can be searched for by that path without mistaking anyone else's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, cpSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { census, isAlive, processesMentioning, RandomKiller, type Census } from '../../src/lab/faults.js';
import { runLoad } from '../../src/lab/load.js';
import { freePort } from '../../src/lab/ports.js';
import { writeScripts } from '../helpers/daemon.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORKERS = Array.from({ length: 20 }, (_, i) => `w${String(i).padStart(2, '0')}`);
const LOAD = { rate: 300, durationSec: 20, connections: 64 } as const;
/**
 * The same load and kills before the measured run, so the daemon's heap has its working size.
 * The daemon's RSS then grew over the measured run by 0.5-1.5% after 30 s (ten local runs),
 * 10.3% after 10 s locally and 10.5% after 20 s in CI, its heap still short of that size
 * (limit 10%). Not more: the file is the heaviest of the suite on a 2-core machine.
 */
const WARM_UP_SEC = 30;
const KILL_EVERY_MS = [100, 300] as const;
/**
 * The CPU limit the daemon serves with: this file is about kills, test/limits/ about the CPU limit.
 * Under this overload on two cores the default 50 ms was passed by hello-world requests five times
 * (50.6 to 104 ms charged): the child's main thread, runnable all along, was booked CPU in jumps
 * (a breach trace of 2026-12-07: +35.2 ms in 6.0 ms of wall, then +17.8 in 16.1, a request alone
 * on its instance), which neither the daemon nor the child can tell from the tenant's own work
 * (README, *What is not there yet*). Four times the default keeps a real runaway a failure here.
 */
const CPU_MS = 200;
/**
 * Growth of the daemon's resident memory over the run, measured from after the warm-up (the soak's
 * target is 10%). 15% here: the daemon's RSS under this load settles at one of two sizes, ~97 or
 * ~110 MB, as V8 sizes its heap, and three clean-clone runs of 2026-12-08 went from the first to
 * the second without a leak (96.6 -> 108.7, 97.5 -> 108.7, 98.4 -> 110.0 MB: 10.9-12.4%), a step a
 * longer reference window did not catch (it came after the measured run's first 5 s). Runs that
 * started at the larger size grew 0.9-1.5%. Looser: a leak smaller than 15% in 20 s passes.
 */
const RSS_GROWTH_MAX = 0.15;

/** Every 5xx a kill may cause, as LoadResult.errorKinds reports them. */
const EXPLAINED = [
  /^502 The worker's instance stopped while handling this request \(the instance was killed by SIGKILL\)\. Retry; a new instance will serve it\.$/,
  /^503 Worker "…" failed to load: the instance was killed by SIGKILL while loading\. Retry; a new instance will load it\.$/,
  /^503 No instance is available for worker "…": a child exited while booting \(exit code null, signal SIGKILL\); its output is in the daemon log \(source child-stderr\)$/,
];

let build: string;
let daemon: ChildProcess | null = null;

beforeAll(() => {
  build = mkdtempSync(join(tmpdir(), 'edgeproc-faults-build-'));
  // Readable by the children's own uids, or the daemon reads the runner from a copy outside `build`.
  chmodSync(build, 0o755);
  for (const entry of ['dist', 'bin', 'package.json']) cpSync(join(ROOT, entry), join(build, entry), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(build, 'node_modules'));
});

afterAll(() => {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  rmSync(build, { recursive: true, force: true });
});

async function serve(dir: string, port: number, adminPort: number): Promise<{ proc: ChildProcess; exited: Promise<number | null>; output: () => string }> {
  // The log lines (stdout) go to a file: a failure quotes the warnings that explain it.
  const log = openSync(join(build, 'daemon.log'), 'w');
  const proc = spawn(process.execPath, [join(build, 'bin/edgeproc.js'), 'serve', dir, '--port', String(port), '--admin-port', String(adminPort), '--cpu-ms', String(CPU_MS)], {
    stdio: ['ignore', log, 'pipe'],
  });
  closeSync(log);
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    proc.stderr!.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
      if (stderr.includes(`edgeproc serving ${WORKERS.length} workers`)) resolve();
    });
    void exited.then((code) => reject(new Error(`edgeproc exited (${code}) before serving:\n${stderr}`)));
  });
  return { proc, exited, output: () => stderr };
}

interface AdminState {
  workers: Array<{ name: string; instances: number; pids: number[] }>;
  pool: { warm: number; warmPids: number[]; booting: number };
}

async function poll<T>(what: string, read: () => Promise<T> | T, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('faults under load', () => {
  it('loses no request while children are SIGKILLed at random, and comes back to its baseline', { timeout: 90_000 }, async () => {
    const dir = writeScripts(
      Object.fromEntries(WORKERS.map((name) => [`${name}.mjs`, `export default { fetch() { return new Response('hello from ${name}'); } };\n`])),
    );
    const [port, adminPort] = [await freePort(), await freePort()];
    const served = await serve(dir, port, adminPort);
    daemon = served.proc;
    const pid = served.proc.pid!;
    const url = `http://127.0.0.1:${port}/`;
    const adminState = async () => (await (await request(`http://127.0.0.1:${adminPort}/workers`, { reset: true })).body.json()) as AdminState;

    // Every worker started once, then a few seconds of the same load and kills (the daemon's heap
    // grows to its working size), then the baseline: one instance each, a full warm pool, no
    // client connection open.
    const load = {
      url,
      headerSets: WORKERS.map((name) => ({ host: `${name}.localhost:${port}` })),
      mode: 'rate' as const,
      ...LOAD,
      // Longer than the daemon's slowest answer (a child that never boots is given up after 10 s),
      // so that a request counted as failed is one the daemon never answered.
      timeoutMs: 30_000,
      classifyErrors: true,
    };
    const underKills = async (durationSec: number) => {
      const killer = new RandomKiller(() => census(pid).runners, KILL_EVERY_MS);
      killer.start();
      try {
        return { result: await runLoad({ ...load, durationSec }), killer };
      } finally {
        await killer.stop();
      }
    };
    const settle = async (killed: readonly number[] = []) => {
      // The daemon first learns of every kill: until it does, a request may still be handed to a
      // child killed a moment ago, and get the 502 that a kill mid-request is owed (CI saw one).
      await poll('the daemon did not see every child killed go', adminState, (s) => {
        const listed = new Set([...s.pool.warmPids, ...s.workers.flatMap((w) => w.pids)]);
        return killed.every((p) => !listed.has(p));
      });
      const agent = new Agent();
      for (const name of WORKERS) {
        const res = await request(url, { headers: { host: `${name}.localhost` }, dispatcher: agent });
        expect({ status: res.statusCode, text: await res.body.text() }).toEqual({ status: 200, text: `hello from ${name}` });
      }
      await agent.close();
      await poll('the pool did not refill', adminState, (s) => s.pool.warm >= 2 && s.pool.booting === 0);
    };
    await settle();
    // The daemon's resident memory under this load before the measured run, at its highest: V8
    // may still be sizing its heap after the warm-up (RSS then swings ±10% from one second to the
    // next without growing: bench/soak), and a leak shows as growth past what the same load took.
    let warmUpPeakKb = 0;
    const sampler = setInterval(() => (warmUpPeakKb = Math.max(warmUpPeakKb, census(pid).rssKb)), 500);
    const warmUp = await underKills(WARM_UP_SEC);
    clearInterval(sampler);
    await settle(warmUp.killer.killed);
    const baseline = await poll('the daemon did not settle', () => census(pid), (c) => c.runners.length === WORKERS.length + 2 && c.zombies.length === 0);

    // Every descendant ever seen, to check at the end that none outlived the daemon.
    const seen = new Set<number>(baseline.descendants);
    const watcher = setInterval(() => {
      for (const p of census(pid).descendants) seen.add(p);
    }, 200);
    const { result, killer } = await underKills(LOAD.durationSec);

    // 1. Every request got a complete response: nothing reset, timed out or cut short.
    const answered = Object.values(result.statuses).reduce((a, b) => a + b, 0);
    expect(result.failures).toEqual({});
    expect(answered).toBe(result.sent);
    expect(result.sent).toBeGreaterThanOrEqual(LOAD.rate * LOAD.durationSec * 0.95);
    expect(killer.killed.length).toBeGreaterThanOrEqual(30);
    // 2. Each failure says what happened: a 502 for the requests on a child that was killed, a 503
    //    for one killed while it loaded its script or booted; never an empty or unexplained 5xx.
    for (const status of Object.keys(result.statuses)) expect(['200', '502', '503']).toContain(status);
    // Limit breaches first: a kill explains the other warnings.
    const warnings = () => {
      const all = readFileSync(join(build, 'daemon.log'), 'utf8').split('\n');
      const lines = all.filter((line) => /"level":"(warn|error)"/.test(line));
      const breaches = lines.filter((l) => l.includes('"limit exceeded"'));
      // The history of the first instance that breached a limit: what it served, and when, before it.
      const instance = /"instance":"[^"]+"/.exec(breaches[0] ?? '')?.[0];
      const history = instance ? ['the instance that breached first, its last 40 log lines:', ...all.filter((l) => l.includes(instance)).slice(-40)] : [];
      return [...breaches, ...lines.filter((l) => !l.includes('"limit exceeded"'))].slice(0, 20).concat(history).join('\n');
    };
    for (const kind of Object.keys(result.errorKinds ?? {})) {
      if (!EXPLAINED.some((known) => known.test(kind))) expect.fail(`an unexplained 5xx: ${kind}\nthe daemon's first warnings:\n${warnings()}`);
    }
    const errors = Object.values(result.errorKinds ?? {}).reduce((a, b) => a + b, 0);
    expect(errors).toBe(answered - (result.statuses['200'] ?? 0));
    // Most requests go to an instance nobody killed (a loose bound: the machine is shared).
    expect(result.statuses['200']).toBeGreaterThan(answered * 0.8);

    // 3. Back to the baseline: every worker answers, the pool refills, the daemon holds as many
    //    children and descriptors as before (the load generator's connections are closed) and
    //    about as much memory; no child killed is left a zombie.
    await settle(killer.killed);
    const settled = await poll(
      'the daemon did not come back to its baseline',
      () => census(pid),
      (c: Census) => c.runners.length === baseline.runners.length && c.descendants.length === baseline.descendants.length && c.fds <= baseline.fds && c.zombies.length === 0,
    );
    clearInterval(watcher);
    const rssGrowth = settled.rssKb / Math.max(baseline.rssKb, warmUpPeakKb) - 1;
    console.log(
      `faults under load: ${result.sent} requests, ${JSON.stringify(result.statuses)}, ${killer.killed.length} kills; ` +
        `daemon RSS ${baseline.rssKb} (warm-up peak ${warmUpPeakKb}) → ${settled.rssKb} KiB (${(rssGrowth * 100).toFixed(1)}%), fds ${baseline.fds} → ${settled.fds}, ` +
        `children ${baseline.descendants.length} → ${settled.descendants.length}; errors ${JSON.stringify(result.errorKinds)}`,
    );
    expect(rssGrowth).toBeLessThan(RSS_GROWTH_MAX);
    expect(killer.killed.filter(isAlive)).toEqual([]);

    // 4. A clean exit leaves nothing behind: no process of this build, and no descendant ever seen.
    served.proc.kill('SIGTERM');
    expect(await served.exited).toBe(0);
    daemon = null;
    await poll('processes outlived the daemon', () => processesMentioning(build), (left) => left.length === 0, 5_000);
    expect([...seen].filter(isAlive)).toEqual([]);
  });
});

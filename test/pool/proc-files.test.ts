import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { heldOn } from '../helpers/proc.js';
import { ProcFiles } from '../../src/pool/proc-files.js';

// The task clock needs the native addon (built by `npm run build` where there is a compiler).
const taskClockBuilt = existsSync(fileURLToPath(new URL('../../dist/task_clock.node', import.meta.url)));

// A child that burns ~70 ms of CPU on its main thread (CPU, not wall time: on a loaded machine
// 60 ms of wall time can be far less CPU), says so, then idles.
const BURNER = `const start = process.cpuUsage(); while (process.cpuUsage(start).user < 70_000); process.stdout.write('burnt\\n'); setInterval(() => {}, 1000);`;

describe('ProcFiles', () => {
  let child: ChildProcess | undefined;
  afterEach(() => child?.kill('SIGKILL'));

  it("reads a live child's CPU and memory through descriptors, and nothing once it has exited", async () => {
    child = spawn(process.execPath, ['-e', BURNER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(child.stdout!, 'data');
    const pid = child.pid!;
    const files = new ProcFiles(pid);

    expect(files.mainCpuNs()).toBeGreaterThan(50e6);
    expect(files.processCpuMs()).toBeGreaterThanOrEqual(50);
    expect(files.threadsCpuNs()).toBeGreaterThanOrEqual(0);
    expect(files.memoryMb()).toBeGreaterThan(1);
    // Opened once, then read again through the same descriptors.
    const held = heldOn(pid);
    expect(held).toBeGreaterThanOrEqual(4);
    files.mainCpuNs();
    files.threadsCpuNs();
    files.memoryMb();
    expect(heldOn(pid)).toBe(held);
    // Idle, it keeps only /proc/PID/stat, and reopens the rest when read again.
    files.closeBusy();
    expect(heldOn(pid)).toBe(1);
    expect(files.processCpuMs()).toBeGreaterThanOrEqual(50);
    expect(files.mainCpuNs()).toBeGreaterThan(50e6);
    expect(files.threadsCpuNs()).toBeGreaterThanOrEqual(0);
    expect(heldOn(pid)).toBe(held - 1);

    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(files.mainCpuNs()).toBeNull();
    expect(files.processCpuMs()).toBeNull();
    expect(files.memoryMb()).toBeNull();
    expect(files.threadsCpuNs()).toBeNull();

    files.close();
    expect(heldOn(pid)).toBe(0);
  });

  it("reads utime + stime as proc(5) lays them out, whatever the process's name holds", async () => {
    // The name sits in parentheses and may hold spaces and parentheses of its own: a tenant
    // cannot rename its process, but the parse must not depend on that.
    child = spawn(process.execPath, ['-e', `process.title = 'a) (b c'; ${BURNER}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(child.stdout!, 'data');
    const files = new ProcFiles(child.pid!);
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'latin1');
    expect(stat).toContain('(a) (b c)');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuMs = files.processCpuMs();
    // The child idles now: the ticks move by one at most between the two reads.
    expect(cpuMs).toBeGreaterThanOrEqual((Number(fields[11]) + Number(fields[12])) * 10);
    expect(cpuMs).toBeLessThanOrEqual((Number(fields[11]) + Number(fields[12]) + 1) * 10);
    files.close();
  });

  it('tells a child that spins (running or runnable) from one that is gone', async () => {
    child = spawn(process.execPath, ['-e', "process.stdout.write('spinning\\n'); for (;;);"], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(child.stdout!, 'data');
    const files = new ProcFiles(child.pid!);
    expect(files.running()).toBe(true);
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(files.running()).toBe(false);
    files.close();
  });

  it.skipIf(!taskClockBuilt)("reads the main thread's CPU through its task clock, tied to schedstat's figure", async () => {
    // Spins for 60 ms each time it reads a line, then sleeps. Timed by Date.now, which makes no
    // system call: one that reads the process's own CPU time brings the count up to date itself.
    const spinner = `process.stdin.on('data', () => { const end = Date.now() + 60; while (Date.now() < end); process.stdout.write('done\\n'); }); process.stdout.write('idle\\n');`;
    child = spawn(process.execPath, ['-e', spinner], { stdio: ['pipe', 'pipe', 'inherit'] });
    await once(child.stdout!, 'data');
    const files = new ProcFiles(child.pid!);
    expect(files.exactMainCpuNs()).toBeNull();
    // Tied while the child sleeps (a try may find it on a CPU, finishing its start: tried again).
    await expect.poll(() => (files.anchorTaskClock(), files.exactMainCpuNs()), { interval: 20 }).not.toBeNull();
    // Asleep, both are exact: the same figure, within what the two clocks differ by (0.05-0.1 ms
    // idle, 0.3 ms once under load, not growing with the CPU used), far below a 4 ms tick.
    const before = files.exactMainCpuNs()!;
    expect(Math.abs(before - files.mainCpuNs()!)).toBeLessThan(1e6);

    child.stdin!.write('spin\n');
    const done = once(child.stdout!, 'data');
    let finished = false;
    void done.then(() => (finished = true));
    let reads = 0;
    while (!finished) {
      // Never behind schedstat's figure, which moves only at the scheduler's ticks (how far ahead
      // it reads depends on whether the child shares its CPU: a switch books its time at once,
      // so on a loaded machine both may read alike).
      const schedstat = files.mainCpuNs()!;
      expect(files.exactMainCpuNs()!).toBeGreaterThanOrEqual(schedstat - 1e6);
      reads++;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(reads).toBeGreaterThan(5);
    // Asleep again: the counter moved with the thread's CPU, and reads as schedstat does.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const after = files.exactMainCpuNs()!;
    expect(after - before).toBeGreaterThan(5e6);
    expect(Math.abs(after - files.mainCpuNs()!)).toBeLessThan(1e6);
    files.close();
  });

  it('answers null for a process that does not exist, holding nothing open', () => {
    const files = new ProcFiles(2 ** 22 + 1);
    expect(files.mainCpuNs()).toBeNull();
    expect(files.memoryMb()).toBeNull();
    files.close();
    expect(heldOn(2 ** 22 + 1)).toBe(0);
  });

  it("leaves out the threads the process had when marked (node's own), and counts every thread started later", async () => {
    // Worker threads stand in for both: one started before the mark (as V8's compiler helpers
    // are there when a child boots), one after (as libuv's pool starts on a request's first job).
    // Each burns ~80 ms of its own CPU when told, then idles.
    const script = `
      const { Worker } = require('node:worker_threads');
      const burn = \`const { parentPort } = require('node:worker_threads');
        parentPort.on('message', () => { const t = process.hrtime.bigint(); const s = require('node:process').cpuUsage();
          let x = 0; while (Number(process.hrtime.bigint() - t) < 400e6) { x++; if ((x & 0xffff) === 0 && require('node:process').cpuUsage(s).user > 80000) break; }
          parentPort.postMessage('burnt'); });
        setInterval(() => {}, 1000);\`;
      const start = () => { const w = new Worker(burn, { eval: true }); w.on('message', () => process.stdout.write('burnt\\n')); return w; };
      const early = start();
      let late = null;
      require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
        if (line === 'early') early.postMessage('go');
        if (line === 'late') { late = start(); late.postMessage('go'); }
      });
      setTimeout(() => process.stdout.write('ready\\n'), 300);
    `;
    child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = child.stdout!.setEncoding('utf8');
    const next = () => once(lines, 'data');
    await next();
    const files = new ProcFiles(child.pid!);
    expect(files.markRuntimeThreads()).toBe(true);
    const before = files.threadsCpuNs()!;

    child.stdin!.write('early\n');
    await next();
    const afterEarly = files.threadsCpuNs()!;
    // The early worker's burn is not counted (only whatever node's own threads did meanwhile).
    expect((afterEarly - before) / 1e6).toBeLessThan(30);

    child.stdin!.write('late\n');
    await next();
    // The late worker's thread is found by the listing, and all of its CPU since it started counts.
    expect((files.threadsCpuNs()! - afterEarly) / 1e6).toBeGreaterThanOrEqual(60);
    files.close();
  });
});

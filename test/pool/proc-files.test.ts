import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { heldOn } from '../helpers/proc.js';
import { ProcFiles } from '../../src/pool/proc-files.js';

// A child that burns ~60 ms of CPU on its main thread, says so, then idles.
const BURNER = `const end = Date.now() + 60; while (Date.now() < end); process.stdout.write('burnt\\n'); setInterval(() => {}, 1000);`;

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

  it('answers null for a process that does not exist, holding nothing open', () => {
    const files = new ProcFiles(2 ** 22 + 1);
    expect(files.mainCpuNs()).toBeNull();
    expect(files.memoryMb()).toBeNull();
    files.close();
    expect(heldOn(2 ** 22 + 1)).toBe(0);
  });
});

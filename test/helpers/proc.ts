/**
 * What tests read of a child from /proc, as the kernel holds it, and the escape probe as a
 * child of another uid can read it.
 */
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** How many of this process's descriptors are open on /proc/PID/... of `pid` (the watchdog's, in a test daemon). */
export function heldOn(pid: number): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`/proc/${pid}/`);
    } catch {
      return false;
    }
  }).length;
}

/** Fields of /proc/PID/stat after the command: 0 state, 1 ppid, 11 utime, 12 stime (ticks), 16 nice. */
export function procStat(pid: number): string[] {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
}

export const niceOf = (pid: number): number => Number(procStat(pid)[16]);

/**
 * The scheduling policy of every thread of `pid` (/proc/PID/task/TID/stat field 41), by name:
 * 'other' or 'idle'. A thread that ended while listed is left out.
 */
export function threadPolicies(pid: number): Set<string> {
  const names: Record<string, string> = { '0': 'other', '3': 'batch', '5': 'idle' };
  const policies = new Set<string>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const policy = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[38]!;
      policies.add(names[policy] ?? policy);
    } catch {
      // Ended meanwhile.
    }
  }
  return policies;
}

/** The process's CPU in ms, in the kernel's 10 ms ticks. */
export function cpuMsOf(pid: number): number {
  const fields = procStat(pid);
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * A copy of test/fixtures/escape-probe.cjs in a new directory readable by all: a child of
 * another uid cannot read it from a checkout that may sit under a closed directory.
 */
export function readableProbe(): { dir: string; entry: string } {
  const dir = mkdtempSync(join(tmpdir(), 'edgeproc-probe-'));
  chmodSync(dir, 0o755);
  const entry = join(dir, 'escape-probe.cjs');
  copyFileSync(fileURLToPath(new URL('../fixtures/escape-probe.cjs', import.meta.url)), entry);
  chmodSync(entry, 0o444);
  return { dir, entry };
}

/**
 * Bytes of WebAssembly memory `pid` has made accessible: V8 reserves each 32-bit memory with its
 * guard region (8 GiB here) and opens the front of it read-write as the memory grows, so the
 * memory is the read-write mapping just before an inaccessible one of at least 4 GiB. Summed,
 * should there be more than one.
 */
export function wasmMemoryBytes(pid: number): number {
  let bytes = 0;
  let previous: { start: bigint; end: bigint; perms: string } | null = null;
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    if (!line) continue;
    const [range, perms] = line.split(' ') as [string, string];
    const [start, end] = range.split('-').map((hex) => BigInt(`0x${hex}`)) as [bigint, bigint];
    if (perms.startsWith('---') && end - start >= 4n << 30n && previous?.end === start && previous.perms.startsWith('rw')) {
      bytes += Number(previous.end - previous.start);
    }
    previous = { start, end, perms };
  }
  return bytes;
}

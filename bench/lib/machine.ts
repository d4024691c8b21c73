/** The facts every benchmark prints with its figures: CPU, cores, load, Node and workerd versions. */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { WORKERD_BIN } from './workerd.js';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryMiB: number;
  node: string;
  workerd: string;
  wrk: string;
  loadAvgAtStart: number[];
  date: string;
  /** The code measured: HEAD, and any uncommitted changes to it (others work in this tree). */
  commit: string;
  uncommitted: string[];
}

export function machine(): Machine {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    workerd: versionOf(WORKERD_BIN, ['--version']),
    wrk: versionOf('wrk', ['--version']).split('\n')[0] ?? 'unknown',
    loadAvgAtStart: loadavg().map((n) => Math.round(n * 100) / 100),
    date: new Date().toISOString(),
    commit: git(['rev-parse', '--short', 'HEAD']),
    uncommitted: git(['status', '--short', '--', 'src', 'runner', 'protocol']).split('\n').filter(Boolean),
  };
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function versionOf(bin: string, args: string[]): string {
  try {
    // wrk prints its version with a usage text and exits 1.
    return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    const out = (error as { stdout?: string }).stdout?.trim();
    return out || 'not installed';
  }
}

export function describeMachine(m: Machine): string {
  return `machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryMiB} MiB; Node ${m.node}; ${m.workerd}; ${m.wrk}; load avg ${m.loadAvgAtStart.join(' ')} at start\ncode: ${m.commit}${m.uncommitted.length ? ` with uncommitted changes in ${m.uncommitted.map((l) => l.replace(/^\s*\S+\s+/, '')).join(', ')}` : ''}`;
}

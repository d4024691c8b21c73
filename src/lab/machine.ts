/** The facts printed next to every lab result: the machine, its load, and the versions measured. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

const ROOT = new URL(import.meta.url.includes('/dist/src/') ? '../../../' : '../../', import.meta.url);
export const WORKERD_BIN = fileURLToPath(new URL('node_modules/.bin/workerd', ROOT));

export interface LabMachine {
  cpuModel: string;
  cores: number;
  memoryMiB: number;
  kernel: string;
  node: string;
  workerd: string;
  isolatedVm: string;
  edgeproc: string;
  loadAvgAtStart: number[];
  date: string;
}

export function labMachine(): LabMachine {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    kernel: release(),
    node: process.version,
    workerd: existsSync(WORKERD_BIN) ? run(WORKERD_BIN, ['--version']) : 'not installed',
    isolatedVm: packageVersion('isolated-vm'),
    edgeproc: `${packageVersion('.')} (${run('git', ['-C', fileURLToPath(ROOT), 'rev-parse', '--short', 'HEAD'])})`,
    loadAvgAtStart: loadavg().map((n) => Math.round(n * 100) / 100),
    date: new Date().toISOString(),
  };
}

export function describeLabMachine(m: LabMachine): string {
  return `machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryMiB} MiB, Linux ${m.kernel}; Node ${m.node}; workerd ${m.workerd}; isolated-vm ${m.isolatedVm}; edgeproc ${m.edgeproc}; load avg ${m.loadAvgAtStart.join(' ')} at start`;
}

function packageVersion(name: string): string {
  const path = name === '.' ? new URL('package.json', ROOT) : new URL(`node_modules/${name}/package.json`, ROOT);
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function run(bin: string, args: string[]): string {
  try {
    return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/**
 * Faults under load, shared by test/faults and bench/soak: a killer that
 * SIGKILLs random children of a daemon while it serves, and a census of what
 * the daemon process holds, read from /proc (resident memory, open
 * descriptors, descendants, zombies), so that a run can tell whether
 * everything came back once the faults stopped. Linux only.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** One /proc/PID/stat: parent and state (R, S, Z…), or null if the process is gone. */
function stat(pid: number): { ppid: number; state: string } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

function allPids(): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);
}

/** Every process under `pid` (children, their children…), from one pass over /proc. */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of allPids()) {
    const s = stat(p);
    if (!s) continue;
    const list = children.get(s.ppid);
    if (list) list.push(p);
    else children.set(s.ppid, [p]);
  }
  const out: number[] = [];
  const walk = (parent: number) => {
    for (const child of children.get(parent) ?? []) {
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/** A tenant or warm-pool child (the runner bundle), not the fork server. */
export function isRunner(pid: number): boolean {
  return commandLine(pid).includes('runner.cjs');
}

export function isAlive(pid: number): boolean {
  const s = stat(pid);
  return s !== null && s.state !== 'Z';
}

export interface Census {
  /** Resident memory of the process itself (VmRSS), in KiB. */
  rssKb: number;
  /** Entries in /proc/PID/fd. */
  fds: number;
  /** Live descendants: the fork server and the runner children under it. */
  descendants: number[];
  runners: number[];
  /** Descendants that died and were never reaped. */
  zombies: number[];
}

export function census(pid: number): Census {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const all = descendantsOf(pid);
  const zombies = all.filter((p) => stat(p)?.state === 'Z');
  const descendants = all.filter((p) => !zombies.includes(p));
  return { rssKb, fds, descendants, runners: descendants.filter(isRunner), zombies };
}

/**
 * Processes whose command line contains `marker` (a daemon's private build
 * directory), other than `except`: after that daemon exited, any one left is an orphan.
 */
export function processesMentioning(marker: string, except: readonly number[] = []): Array<{ pid: number; ppid: number; command: string }> {
  const found = [];
  for (const pid of allPids()) {
    if (pid === process.pid || except.includes(pid)) continue;
    const command = commandLine(pid);
    const s = stat(pid);
    if (s && s.state !== 'Z' && command.includes(marker)) found.push({ pid, ppid: s.ppid, command });
  }
  return found;
}

/**
 * SIGKILLs a random pid from `victims()` every `everyMs[0]`–`everyMs[1]` ms until
 * stopped. Every pid it ever killed is kept, to check afterwards that each one is gone.
 */
export class RandomKiller {
  readonly killed: number[] = [];
  readonly #victims: () => number[] | Promise<number[]>;
  readonly #everyMs: readonly [number, number];
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #pending: Promise<void> = Promise.resolve();

  constructor(victims: () => number[] | Promise<number[]>, everyMs: readonly [number, number]) {
    this.#victims = victims;
    this.#everyMs = everyMs;
  }

  start(): void {
    this.#running = true;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#pending;
  }

  #schedule(): void {
    const [min, max] = this.#everyMs;
    this.#timer = setTimeout(() => {
      this.#pending = this.#killOne().finally(() => {
        if (this.#running) this.#schedule();
      });
    }, min + Math.random() * (max - min));
  }

  async #killOne(): Promise<void> {
    const victims = await this.#victims();
    const victim = victims[Math.floor(Math.random() * victims.length)];
    if (victim === undefined || !this.#running) return;
    try {
      process.kill(victim, 'SIGKILL');
      this.killed.push(victim);
    } catch {
      // Gone already.
    }
  }
}

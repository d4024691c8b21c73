/** Memory of one process from /proc/PID/smaps_rollup, in kB as the kernel reports it. */
import { readFileSync } from 'node:fs';

export interface ProcessMemory {
  pid: number;
  rssKb: number;
  pssKb: number;
  /** Unique set size: pages no other process maps (Private_Clean + Private_Dirty). */
  ussKb: number;
}

export function processMemory(pid: number): ProcessMemory {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string): number => {
    const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    if (!m) throw new Error(`/proc/${pid}/smaps_rollup has no ${field} line`);
    return Number(m[1]);
  };
  return { pid, rssKb: kb('Rss'), pssKb: kb('Pss'), ussKb: kb('Private_Clean') + kb('Private_Dirty') };
}

/**
 * The last few events of an instance's CPU accounting, for the log line of a CPU breach: which
 * samples found what, whose turns the child announced and what that moved, which requests were
 * sent. A false breach (a hello-world request stopped at 104 ms of CPU under a loaded CI run)
 * could only be explained until now by instrumenting the daemon and waiting for it to happen
 * again; with this, the warning line that reports it carries its own explanation.
 *
 * A fixed ring of numbers, written on every sample and every request: no allocation, no string
 * until a breach asks for one.
 */

export const CpuEvent = {
  /** A watchdog sample that found CPU used: a = how much (ms), b = wall time since the last (ms), c = flags, d = the top request's charge after it. */
  Sample: 1,
  /** A Turn frame's counts were taken: a = the request's own count, b = its charge before, c = after, d = requests in flight. */
  Turn: 2,
  /** A request was sent to the child: a = requests in flight now. */
  Sent: 3,
  /** A request settled: a = the child's own count of it, b = requests still in flight. */
  Settled: 4,
  /** A held charge was judged: a = 1 kept / 0 taken back, b = ms taken back. */
  Judged: 5,
} as const;
export type CpuEvent = (typeof CpuEvent)[keyof typeof CpuEvent];

/** Flags of a Sample event. */
export const SAMPLE_RUNNING = 1;
export const SAMPLE_LATE = 2;
export const SAMPLE_STALL = 4;
/** Charged to no request: the startup's, or spared (Instance.chargeCpu). */
export const SAMPLE_UNCHARGED = 8;

const ENTRIES = 32;
const FIELDS = 6;

export class CpuTrace {
  readonly #ring = new Float64Array(ENTRIES * FIELDS);
  #next = 0;
  #count = 0;

  /** `at`: when it happened (performance.now()), which the callers on per-request paths have read already. */
  record(event: CpuEvent, at: number, a = 0, b = 0, c = 0, d = 0): void {
    const ring = this.#ring;
    // Samples in a row that found nothing (a child waiting for a CPU) are one entry, their time summed.
    if (event === CpuEvent.Sample && a === 0 && this.#count > 0) {
      const last = ((this.#next - 1 + ENTRIES) % ENTRIES) * FIELDS;
      if (ring[last] === CpuEvent.Sample && ring[last + 2] === 0 && ring[last + 4] === c) {
        ring[last + 1] = at;
        ring[last + 3]! += b;
        return;
      }
    }
    const slot = this.#next * FIELDS;
    ring[slot] = event;
    ring[slot + 1] = at;
    ring[slot + 2] = a;
    ring[slot + 3] = b;
    ring[slot + 4] = c;
    ring[slot + 5] = d;
    this.#next = (this.#next + 1) % ENTRIES;
    if (this.#count < ENTRIES) this.#count++;
  }

  /**
   * The events oldest first, one short line each, timed in ms before `now`, e.g.
   * `-12.3 sample +4.1 in 5.0 R -> 23.4` or `-7.0 turn own 0.4: 23.4 -> 23.4 (3 in flight)`.
   */
  lines(now = performance.now()): string[] {
    const out: string[] = [];
    const ring = this.#ring;
    for (let i = 0; i < this.#count; i++) {
      const at = ((this.#next - this.#count + i + ENTRIES) % ENTRIES) * FIELDS;
      const [a, b, c, d] = [ring[at + 2]!, ring[at + 3]!, ring[at + 4]!, ring[at + 5]!];
      const when = `-${(now - ring[at + 1]!).toFixed(1)}`;
      switch (ring[at]) {
        case CpuEvent.Sample: {
          const flags = [c & SAMPLE_RUNNING ? 'R' : 'S', c & SAMPLE_LATE ? 'late' : '', c & SAMPLE_STALL ? 'stall' : '', c & SAMPLE_UNCHARGED ? 'uncharged' : '']
            .filter(Boolean)
            .join(' ');
          out.push(`${when} sample +${a.toFixed(1)} in ${b.toFixed(1)} ${flags} -> ${d.toFixed(1)}`);
          break;
        }
        case CpuEvent.Turn:
          out.push(`${when} turn own ${a.toFixed(1)}: ${b.toFixed(1)} -> ${c.toFixed(1)} (${d} in flight)`);
          break;
        case CpuEvent.Sent:
          out.push(`${when} sent (${a} in flight)`);
          break;
        case CpuEvent.Settled:
          out.push(`${when} settled own ${a.toFixed(1)} (${b} in flight)`);
          break;
        case CpuEvent.Judged:
          out.push(`${when} held ${a ? 'kept' : `taken back ${b.toFixed(1)}`}`);
          break;
      }
    }
    return out;
  }
}

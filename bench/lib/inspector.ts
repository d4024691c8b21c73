/**
 * A minimal Chrome DevTools Protocol client over the inspector WebSocket,
 * enough to start and stop the V8 sampling profiler in another process.
 */
import { WebSocket } from 'undici';

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export class InspectorSession {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextId = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
      const waiter = message.id === undefined ? undefined : this.#pending.get(message.id);
      if (!waiter) return;
      this.#pending.delete(message.id!);
      if (message.error) waiter.reject(new Error(message.error.message));
      else waiter.resolve(message.result);
    });
  }

  static open(url: string): Promise<InspectorSession> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.addEventListener('open', () => resolve(new InspectorSession(socket)), { once: true });
      socket.addEventListener('error', () => reject(new Error(`cannot open inspector session ${url}`)), { once: true });
    });
  }

  send<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#socket.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.#socket.close();
  }
}

/** The WebSocket URL of the first target of an inspector listening on `port`. */
export async function inspectorUrl(port: number, timeoutMs = 5_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/json/list`);
      const targets = (await res.json()) as Array<{ webSocketDebuggerUrl: string }>;
      if (targets[0]) return targets[0].webSocketDebuggerUrl;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`no inspector on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface SelfTime {
  functionName: string;
  location: string;
  selfMs: number;
  percent: number;
}

/** Self time per function (samples grouped by name and source location), highest first; idle time left out. */
export function selfTimes(profile: CpuProfile): { top: SelfTime[]; totalMs: number; idleMs: number } {
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, SelfTime>();
  let totalMs = 0;
  let idleMs = 0;
  profile.samples.forEach((nodeId, i) => {
    const delta = (profile.timeDeltas[i] ?? 0) / 1000;
    const frame = byNode.get(nodeId)!.callFrame;
    if (frame.functionName === '(idle)') {
      idleMs += delta;
      return;
    }
    totalMs += delta;
    const location = frame.url ? `${frame.url.replace(/^.*\//, '')}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName}@${location}`;
    const entry = ms.get(key) ?? { functionName: frame.functionName || '(anonymous)', location, selfMs: 0, percent: 0 };
    entry.selfMs += delta;
    ms.set(key, entry);
  });
  const top = [...ms.values()].sort((a, b) => b.selfMs - a.selfMs);
  for (const t of top) t.percent = (100 * t.selfMs) / totalMs;
  return { top, totalMs, idleMs };
}

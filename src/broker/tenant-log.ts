/**
 * Tenant log lines (Log frames) into the daemon's log, bounded per instance.
 *
 * The runner keeps every instance within its log budget (runner/log-budget.ts)
 * and says once when it drops lines. A tenant can subvert its own runner,
 * though (test/hostile/forged-response-head.test.ts shows how it rewrites
 * frames), and the daemon's log is shared by every tenant: so the daemon
 * applies the same budget, with twice the burst for timing slack, and drops
 * whatever a child sends past it, with one warning a second.
 */
import type { LogMessage } from '../../protocol/messages.js';
import { LOG_BURST_TOKENS, LOG_TOKENS_PER_SECOND, MAX_LOG_LINE_CHARS } from '../../protocol/messages.js';
import type { Level, Logger } from '../log.js';
import type { Instance } from '../pool/instance.js';

const TENANT_LEVEL: Record<string, Level> = { debug: 'debug', info: 'info', log: 'info', warn: 'warn', error: 'error' };
const BURST = 2 * LOG_BURST_TOKENS;
const WARN_EVERY_MS = 1000;

interface Bucket {
  tokens: number;
  at: number;
  dropped: number;
  warnedAt: number;
}

/** `rewrite` maps a bundled worker's stack frames back to its sources (projects/source-maps.ts). */
export function tenantLogSink(
  log: Logger,
  rewrite: (text: string) => string = (text) => text,
): (instance: Instance, stream: number, message: LogMessage) => void {
  const buckets = new WeakMap<Instance, Bucket>();
  // Hot path: every tenant log line.
  return (instance, stream, message) => {
    const now = performance.now();
    let bucket = buckets.get(instance);
    if (!bucket) buckets.set(instance, (bucket = { tokens: BURST, at: now, dropped: 0, warnedAt: -Infinity }));
    bucket.tokens = Math.min(BURST, bucket.tokens + ((now - bucket.at) * LOG_TOKENS_PER_SECOND) / 1000);
    bucket.at = now;
    const text = typeof message.text === 'string' ? message.text.slice(0, MAX_LOG_LINE_CHARS + 100) : String(message.text);
    const cost = 1 + Math.floor(text.length / 1024);
    if (bucket.tokens < cost) {
      bucket.dropped++;
      if (now - bucket.warnedAt >= WARN_EVERY_MS) {
        log.warn('tenant log lines dropped: the instance sent more than its log budget allows (its runner should have dropped them)', {
          worker: instance.worker ?? undefined,
          instance: instance.id,
          dropped: bucket.dropped,
        });
        bucket.warnedAt = now;
        bucket.dropped = 0;
      }
      return;
    }
    bucket.tokens -= cost;
    log.write({
      level: TENANT_LEVEL[message.level] ?? 'info',
      msg: rewrite(text),
      source: 'tenant',
      worker: instance.worker ?? undefined,
      instance: instance.id,
      requestId: instance.requestIdOf(stream),
    });
  };
}
